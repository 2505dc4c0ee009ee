// Patch embedding on the CPU: a Conv2d whose stride equals its kernel (ViT's PatchEmbed), done as
// im2col + GEMM. Patches do not overlap, so im2col is a gather and col2im a scatter with no sums.
//   x (B, C, H, W), weight (D, C, p, p) viewed as (D, K) with K = C*p*p, bias (D)
//   y (B, N, D) with N = (H/p) * (W/p) patches in row-major order (floor: trailing pixels unused)
#pragma once
#include <cstdint>

namespace dino::cpu {

struct PatchGeometry {
  int64_t B, C, H, W, p;
  int64_t rows() const { return H / p; }
  int64_t cols() const { return W / p; }
  int64_t patches() const { return rows() * cols(); }  // N
  int64_t patch_size() const { return C * p * p; }     // K
};

// Floats of scratch (the im2col matrix, B*N*K) forward and backward need.
int64_t patch_embed_scratch(const PatchGeometry& g);

// x (B, C, H, W), weight (D, K), bias (D) -> y (B, N, D)
void patch_embed_forward(float* y, const float* x, const float* weight, const float* bias, float* scratch,
                         const PatchGeometry& g, int64_t D);

// dy (B, N, D), x, weight -> dx (B, C, H, W) (0 where no patch reads; skipped when dx is null),
// dweight (D, K), dbias (D)
void patch_embed_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                          const float* weight, float* scratch, const PatchGeometry& g, int64_t D);

}  // namespace dino::cpu
