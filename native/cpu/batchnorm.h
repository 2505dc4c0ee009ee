// Batch normalisation of a (N, C) matrix over its rows, as torch.nn.BatchNorm1d(C) on 2-D input: each
// column is centred and scaled by 1 / sqrt(variance + eps), then multiplied by weight and shifted by
// bias. In training the statistics are the batch's (biased variance) and the running statistics are
// updated with the unbiased variance; in evaluation the running statistics are used as they are.
#pragma once
#include <cstdint>

namespace dino::cpu {

// x (N, C), weight (C), bias (C) -> y (N, C), mean (C), rstd (C) saved for the backward pass; updates
// running_mean and running_var (C) in place: r = momentum * batch + (1 - momentum) * r. Needs N >= 2.
void batchnorm_forward_train(float* y, float* mean, float* rstd, float* running_mean, float* running_var,
                             const float* x, const float* weight, const float* bias, int64_t N, int64_t C,
                             double eps, double momentum);

// The same with the running statistics: mean = running_mean, rstd = 1 / sqrt(running_var + eps).
void batchnorm_forward_eval(float* y, float* mean, float* rstd, const float* x, const float* weight,
                            const float* bias, const float* running_mean, const float* running_var, int64_t N,
                            int64_t C, double eps);

// dy (N, C), x (N, C), weight (C), mean (C), rstd (C) from the forward pass -> dx (N, C), dweight (C),
// dbias (C), all written. In training the batch statistics depend on x, which adds two terms to dx;
// in evaluation dx = dy * weight * rstd. Each column is summed over the rows in order, so the results
// do not depend on the number of threads.
void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool training);

}  // namespace dino::cpu
