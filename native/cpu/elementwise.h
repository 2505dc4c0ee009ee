// Elementwise kernels, reductions and dtype casts on the CPU. Broadcasting is resolved by the op layer
// into per-input strides (0 along a broadcast dimension); the kernels only walk the output.
#pragma once
#include <cstdint>
#include <vector>

namespace dino::cpu {

enum class BinaryOp { kAdd, kSub, kMul, kDiv };

// out (shape) = a op b, where a and b are read through strides sa, sb (same rank as shape, 0 = broadcast).
void binary_forward(BinaryOp op, float* out, const float* a, const float* b, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& sa, const std::vector<int64_t>& sb);

// out (shape) = x read through strides sx (0 = broadcast).
void broadcast_copy(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& sx);

// out (n) = alpha * x + beta
void affine_forward(float* out, const float* x, int64_t n, float alpha, float beta);

// out (outer, inner) = sum over r of x (outer, R, inner), accumulated in double.
void sum_axis_forward(float* out, const float* x, int64_t outer, int64_t R, int64_t inner, float scale);

// Casts between float32 and the 16-bit storage types (round to nearest even).
void f32_to_bf16(uint16_t* out, const float* x, int64_t n);
void bf16_to_f32(float* out, const uint16_t* x, int64_t n);
void f32_to_f16(uint16_t* out, const float* x, int64_t n);
void f16_to_f32(float* out, const uint16_t* x, int64_t n);

}  // namespace dino::cpu
