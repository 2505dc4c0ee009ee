// GELU, exact form (torch.nn.GELU() default, not the tanh approximation): y = x * Phi(x), with Phi
// the standard normal CDF, Phi(x) = (1 + erf(x / sqrt 2)) / 2.
#pragma once
#include <cstdint>

namespace dino::cpu {

// y (n) = x * Phi(x)
void gelu_forward(float* y, const float* x, int64_t n);

// dx (n) = dy * (Phi(x) + x * phi(x)), phi the standard normal density.
void gelu_backward(float* dx, const float* dy, const float* x, int64_t n);

}  // namespace dino::cpu
