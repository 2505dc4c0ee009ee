// Elementwise kernels, reductions and dtype casts on the GPU: the launchers mirror native/cpu/elementwise.h
// and give bitwise the CPU's results, except sums, whose double accumulation may round differently.
#pragma once
#include <cstdint>
#include <vector>

#include "dino/status.h"

namespace dino::cuda {

enum class BinaryOp { kAdd, kSub, kMul, kDiv };

// a, b read through strides sa, sb (0 = broadcast) -> out (shape) = a op b. Runs of dims that stay
// contiguous in both inputs are merged first; more than 8 dims left after that is refused.
Status binary_forward(int device, BinaryOp op, float* out, const float* a, const float* b,
                      const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                      const std::vector<int64_t>& sb);

// x read through strides sx (0 = broadcast) -> out (shape) = x + 0 (as the CPU: -0 comes out as +0)
Status broadcast_copy(int device, float* out, const float* x, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& sx);

// x (n) -> out (n) = alpha * x + beta, rounded after the product and after the sum (no fused multiply-add)
Status affine_forward(int device, float* out, const float* x, int64_t n, float alpha, float beta);

// How many chunks sum_axis_forward cuts R into. Long reductions with few outputs are split so that they
// occupy the GPU; each chunk's double partial sums go to scratch and are then added in chunk order.
// Fixed constants, not the device's SM count, decide the cut, so a given shape is summed in the same
// order on every GPU. Inline (plain C++) so that the op can size the scratch in any build.
inline int64_t sum_axis_chunks(int64_t outer, int64_t R, int64_t inner) {
  constexpr int64_t kRowUnitsTarget = 2048;       // (row, chunk) units wanted for row sums (inner == 1)
  constexpr int64_t kRowChunkMin = 8192;          // elements a unit adds at least
  constexpr int64_t kColThreadsTarget = 1 << 18;  // (outer, chunk, inner) threads wanted for column sums
  constexpr int64_t kColChunkMin = 32;            // rows a thread adds at least
  if (outer <= 0 || inner <= 0 || R <= 0) return 1;
  int64_t S = 1;
  if (inner == 1) {
    if (outer < kRowUnitsTarget && R >= 2 * kRowChunkMin) {
      S = (kRowUnitsTarget + outer - 1) / outer;
      if (S > R / kRowChunkMin) S = R / kRowChunkMin;
    }
  } else if (outer * inner < kColThreadsTarget && R >= 2 * kColChunkMin) {
    S = (kColThreadsTarget + outer * inner - 1) / (outer * inner);
    if (S > R / kColChunkMin) S = R / kColChunkMin;
  }
  if (S <= 1) return 1;
  const int64_t chunk = (R + S - 1) / S;
  return (R + chunk - 1) / chunk;  // no empty chunk
}

// Bytes of scratch sum_axis_forward needs for these sizes (0 when it reduces in one pass).
inline int64_t sum_axis_scratch_bytes(int64_t outer, int64_t R, int64_t inner) {
  const int64_t S = sum_axis_chunks(outer, R, inner);
  return S > 1 ? outer * S * inner * static_cast<int64_t>(sizeof(double)) : 0;
}

// x (outer, R, inner) -> out (outer, inner) = scale * sum over r, accumulated in double; scratch holds at
// least sum_axis_scratch_bytes(outer, R, inner) bytes, aligned to 8 (may be null when that is 0).
Status sum_axis_forward(int device, float* out, const float* x, int64_t outer, int64_t R, int64_t inner,
                        float scale, void* scratch);

// Casts between float32 and the 16-bit storage types (round to nearest even), bit for bit the CPU's.
Status f32_to_bf16(int device, uint16_t* out, const float* x, int64_t n);
Status bf16_to_f32(int device, float* out, const uint16_t* x, int64_t n);
Status f32_to_f16(int device, uint16_t* out, const float* x, int64_t n);
Status f16_to_f32(int device, float* out, const uint16_t* x, int64_t n);

}  // namespace dino::cuda
