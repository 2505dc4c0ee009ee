// L2 normalisation along the last axis of a (rows, C) matrix on the GPU: the launchers mirror
// native/cpu/l2norm.h (y = x / max(||x||, eps), the norm summed in double).
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (rows, C) -> y (rows, C), norm (rows) = ||x|| (before the eps clamp)
Status l2_normalize_forward(int device, float* y, float* norm, const float* x, int64_t rows, int64_t C, float eps);

// dy (rows, C), x (rows, C), norm (rows) -> dx (rows, C): dy / n - x sum(dy x) / n^3 where norm >= eps,
// dy / eps where it is not (NaN norms included, as on the CPU).
Status l2_normalize_backward(int device, float* dx, const float* dy, const float* x, const float* norm, int64_t rows,
                             int64_t C, float eps);

}  // namespace dino::cuda
