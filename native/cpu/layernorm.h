// Layer normalisation over the last axis of a (rows, C) matrix, as torch.nn.LayerNorm(C, eps): each
// row is centred and scaled by 1 / sqrt(biased variance + eps), then multiplied by weight and shifted
// by bias. The forward pass saves the row means and reciprocal standard deviations for the backward.
#pragma once
#include <cstdint>

namespace dino::cpu {

// x (rows, C), weight (C), bias (C) -> y (rows, C), mean (rows), rstd (rows)
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                       int64_t rows, int64_t C, float eps);

// dy (rows, C), x (rows, C), weight (C), mean (rows), rstd (rows) -> dx (rows, C), dweight (C), dbias (C).
// All three are written, not accumulated. dweight and dbias are sums over the rows taken in a fixed
// order, so they do not depend on the number of threads.
void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                        const float* mean, const float* rstd, int64_t rows, int64_t C);

}  // namespace dino::cpu
