// Batch normalisation of a (N, C) matrix over its rows on a CUDA device: the launchers mirror
// native/cpu/batchnorm.h (same arguments and meaning), plus the scratch the GPU passes need. Each
// column's statistics are summed over the rows in order, in double, by one thread, so the results are
// deterministic and equal to the CPU's (bit for bit where the CPU does not fuse multiply-adds, which
// its AVX-512 build does).
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (N, C), weight (C), bias (C) -> y (N, C), mean (C), rstd (C); running_mean and running_var (C)
// updated in place as on the CPU, and num_batches_tracked (0-d) incremented by one. lo (C floats of
// scratch) holds what the float mean lost, for the normalising pass. Needs N >= 2.
Status batchnorm_forward_train(int device, float* y, float* mean, float* rstd, float* running_mean,
                               float* running_var, float* num_batches_tracked, float* lo, const float* x,
                               const float* weight, const float* bias, int64_t N, int64_t C, double eps,
                               double momentum);

// x (N, C), weight, bias, running_mean, running_var (C) -> y (N, C), mean (C) = running_mean,
// rstd (C) = 1 / sqrt(running_var + eps)
Status batchnorm_forward_eval(int device, float* y, float* mean, float* rstd, const float* x, const float* weight,
                              const float* bias, const float* running_mean, const float* running_var, int64_t N,
                              int64_t C, double eps);

// Floats of scratch batchnorm_backward needs: three per column.
inline int64_t batchnorm_backward_scratch(int64_t C) { return 3 * C; }

// dy (N, C), x (N, C), weight, mean, rstd (C) -> dx (N, C), dweight (C), dbias (C), all written.
Status batchnorm_backward(int device, float* dx, float* dweight, float* dbias, float* scratch, const float* dy,
                          const float* x, const float* weight, const float* mean, const float* rstd, int64_t N,
                          int64_t C, bool training);

}  // namespace dino::cuda
