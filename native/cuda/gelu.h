// GELU, exact erf form, on the GPU: the launchers mirror native/cpu/gelu.h.
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (n) -> y (n) = x * Phi(x)
Status gelu_forward(int device, float* y, const float* x, int64_t n);

// dy (n), x (n) -> dx (n) = dy * (Phi(x) + x * phi(x))
Status gelu_backward(int device, float* dx, const float* dy, const float* x, int64_t n);

}  // namespace dino::cuda
