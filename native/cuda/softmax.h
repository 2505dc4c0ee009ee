// Softmax and log-softmax over the last axis of a (rows, N) matrix on the GPU, forward and backward: the
// launchers mirror native/cpu/softmax.h, with the same non-finite semantics (-inf entries get
// probability 0 while the row has a finite entry; a row of only -inf, or holding +inf or NaN, comes out
// all NaN) and row sums accumulated in double.
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (rows, N) -> y (rows, N) = exp(x - max) / sum(exp(x - max)) per row
Status softmax_forward(int device, float* y, const float* x, int64_t rows, int64_t N);

// dy (rows, N), y (rows, N) -> dx (rows, N) = y * (dy - sum(dy * y)) per row; y the forward output
Status softmax_backward(int device, float* dx, const float* dy, const float* y, int64_t rows, int64_t N);

// x (rows, N) -> y (rows, N) = (x - max) - log(sum(exp(x - max))) per row
Status log_softmax_forward(int device, float* y, const float* x, int64_t rows, int64_t N);

// dy (rows, N), y (rows, N) -> dx (rows, N) = dy - exp(y) * sum(dy) per row; y the forward output
Status log_softmax_backward(int device, float* dx, const float* dy, const float* y, int64_t rows, int64_t N);

}  // namespace dino::cuda
