// Patch embedding on a GPU with the layouts and results of native/cpu/patch_embed.h: im2col, one GEMM
// (cuBLAS) and the bias; backward the same GEMMs the CPU does, a deterministic column sum for the bias.
//   x (B, C, H, W), weight (D, C, p, p) viewed as (D, K) with K = C*p*p, bias (D)
//   y (B, N, D) with N = (H/p) * (W/p) patches in row-major order (floor: trailing pixels unused)
#pragma once
#include <cstdint>

#include "../cpu/patch_embed.h"  // PatchGeometry (plain C++)
#include "dino/status.h"

namespace dino::cuda {

// Rows of dy each first-stage block of the bias gradient sums (in double) before the second stage adds
// the per-block partials in a fixed order.
constexpr int64_t kPatchBiasRows = 256;

// Floats of scratch: the im2col matrix (B*N*K) forward; backward also the bias partials, doubles placed
// after it at an even float offset (the tensor's base is aligned far beyond 8 bytes). Inline: the op
// sizes its scratch with them even in a build without CUDA.
inline int64_t patch_embed_forward_scratch(const cpu::PatchGeometry& g) { return g.B * g.patches() * g.patch_size(); }
inline int64_t patch_embed_bias_offset(const cpu::PatchGeometry& g) {
  const int64_t n = patch_embed_forward_scratch(g);
  return n + (n & 1);
}
inline int64_t patch_embed_backward_scratch(const cpu::PatchGeometry& g, int64_t D) {
  const int64_t blocks = (g.B * g.patches() + kPatchBiasRows - 1) / kPatchBiasRows;
  return patch_embed_bias_offset(g) + 2 * blocks * D;
}

// x (B, C, H, W), weight (D, K), bias (D) -> y (B, N, D); scratch: patch_embed_forward_scratch(g) floats.
Status patch_embed_forward(int device, float* y, const float* x, const float* weight, const float* bias,
                           float* scratch, const cpu::PatchGeometry& g, int64_t D);

// dy (B, N, D), x, weight -> dx (B, C, H, W) (0 where no patch reads; skipped when dx is null),
// dweight (D, K), dbias (D), all written (not accumulated); scratch: patch_embed_backward_scratch(g, D).
Status patch_embed_backward(int device, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                            const float* weight, float* scratch, const cpu::PatchGeometry& g, int64_t D);

}  // namespace dino::cuda
