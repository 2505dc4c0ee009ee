// Optimizer updates and the L2 norm on a CUDA device, mirroring native/cpu/optim.h: AdamW, the teacher's
// exponential moving average, the norm, its backward, and per-tensor gradient clipping, which runs
// entirely on the device (the norm never comes back to the host).
#pragma once
#include <cstdint>

#include "../cpu/optim.h"
#include "dino/status.h"

namespace dino::cuda {

using AdamWConfig = cpu::AdamWConfig;

// param, exp_avg, exp_avg_sq (n) updated in place from grad (n), with the CPU's float arithmetic.
Status adamw_step(int device, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWConfig& c);

// teacher (n) = momentum * teacher + (1 - momentum) * student (n)
Status ema_update(int device, float* teacher, const float* student, int64_t n, double momentum);

// The norm's first stage: this many threads per block, each block summing a strided share of x into one
// double partial. The block count depends on n only, never on the GPU, so the order of the sums (and the
// result) is the same on every device.
constexpr int kNormThreads = 256;
constexpr int64_t kNormMaxBlocks = 1024;
inline int64_t norm_partials(int64_t n) {
  const int64_t per_block = 4 * kNormThreads;
  const int64_t b = (n + per_block - 1) / per_block;
  return b < 1 ? 1 : (b > kNormMaxBlocks ? kNormMaxBlocks : b);
}
// Floats of scratch to allocate for the partials (two per double).
inline int64_t norm_scratch_floats(int64_t n) { return 2 * norm_partials(n); }

// x (n) -> norm (0-d) = sqrt(sum of x^2), summed in double in a fixed order; partials: scratch
Status norm(int device, float* norm, double* partials, const float* x, int64_t n);

// x (n), norm (0-d), dy (0-d) -> dx (n) = (dy / norm) * x, or 0 * x where norm is 0
Status norm_backward(int device, float* dx, const float* x, const float* norm, const float* dy, int64_t n);

// grad (n) -> norm (0-d), the norm before clipping; grad scaled in place by
// max_norm / (norm + 1e-6) when that is below 1. partials: scratch as for norm().
Status clip_grad_norm(int device, float* grad, float* norm, double* partials, int64_t n, double max_norm);

}  // namespace dino::cuda
