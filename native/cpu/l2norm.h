// L2 normalisation along the last axis of a (rows, C) matrix, as
// torch.nn.functional.normalize(x, p=2, dim=-1, eps): y = x / max(||x||, eps). The DINO head normalises
// its bottleneck features this way, and evaluation normalises the backbone features.
#pragma once
#include <cstdint>

namespace dino::cpu {

// x (rows, C) -> y (rows, C), norm (rows) = ||x|| (before the eps clamp)
void l2_normalize_forward(float* y, float* norm, const float* x, int64_t rows, int64_t C, float eps);

// dy (rows, C), x (rows, C), norm (rows) -> dx (rows, C). Where norm >= eps the denominator is ||x||
// and dx = dy / n - x sum(dy x) / n^3; where norm < eps it is the constant eps and dx = dy / eps
// (PyTorch's clamp_min passes the gradient at norm == eps).
void l2_normalize_backward(float* dx, const float* dy, const float* x, const float* norm, int64_t rows, int64_t C,
                           float eps);

}  // namespace dino::cpu
