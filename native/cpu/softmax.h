// Softmax and log-softmax over the last axis of a (rows, N) matrix, forward and backward. One row is one softmax: attention rows
// are a few hundred long, the DINO loss rows 65,536; each row is a few unit-stride passes, and rows are
// spread over the threads.
//
// Non-finite inputs follow PyTorch: -inf entries get probability 0 (log-probability -inf) as long as
// the row has a finite entry; a row of only -inf, or one holding +inf or NaN, comes out all NaN.
#pragma once
#include <cstdint>

namespace dino::cpu {

// y (rows, N) = exp(x - max) / sum(exp(x - max)) along each row of x (rows, N).
void softmax_forward(float* y, const float* x, int64_t rows, int64_t N);

// dx (rows, N) = y * (dy - sum(dy * y)) along each row; y is the forward output.
void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N);

// y (rows, N) = (x - max) - log(sum(exp(x - max))) along each row of x (rows, N).
void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t N);

// dx (rows, N) = dy - exp(y) * sum(dy) along each row; y is the forward output.
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N);

}  // namespace dino::cpu
