#include "optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dino::cpu {
namespace {

constexpr int64_t kParallelMin = 32768;

}  // namespace

// The arithmetic is PyTorch's single-tensor AdamW in float32, operation for operation: the scalars are
// computed in double and rounded to float once, and each tensor op becomes one float expression. The
// only difference is that PyTorch's vectorised lerp and addcmul use fused multiply-adds where these
// round twice, which moves exp_avg and exp_avg_sq by at most an ulp of their inputs (and its lerp
// rewrites itself as g - (g - m) * beta1 when beta1 <= 0.5, with the same kind of difference).
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamWConfig& c) {
  const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(c.step));
  const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(c.step));
  const float decay = static_cast<float>(1.0 - c.lr * c.weight_decay);  // param.mul_(1 - lr * wd)
  const float w1 = static_cast<float>(1.0 - c.beta1);                    // exp_avg.lerp_(grad, 1 - beta1)
  const float b2 = static_cast<float>(c.beta2);                          // exp_avg_sq.mul_(beta2)
  const float w2 = static_cast<float>(1.0 - c.beta2);                    //   .addcmul_(grad, grad, 1 - beta2)
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));             // sqrt(v) / sqrt(bc2) + eps
  const float eps = static_cast<float>(c.eps);
  const float neg_step = static_cast<float>(-(c.lr / bc1));             // param.addcdiv_(m, denom, -lr / bc1)
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float m = exp_avg[i] + w1 * (g - exp_avg[i]);
    const float v = exp_avg_sq[i] * b2 + (w2 * g) * g;
    const float denom = std::sqrt(v) / bc2_sqrt + eps;
    param[i] = param[i] * decay + (neg_step * m) / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

// DINO's `teacher.mul_(m).add_((1 - m) * student)`, with both factors rounded to float as PyTorch does.
void ema_update(float* teacher, const float* student, int64_t n, double momentum) {
  const float m = static_cast<float>(momentum), w = static_cast<float>(1.0 - momentum);
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) teacher[i] = teacher[i] * m + w * student[i];
}

// Fixed blocks summed in a fixed order: the result (which sets the clipping factor) must not depend
// on the thread count, which an OpenMP reduction's would.
double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kBlock = 8192;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  }
  std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b * kBlock; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    partial[b] = s;
  }
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace dino::cpu
