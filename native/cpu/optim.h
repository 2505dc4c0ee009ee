// Optimizer updates on the CPU, each one fused pass over the elements that writes its targets in place:
// AdamW, the teacher's exponential moving average, and the L2 norm used for per-tensor gradient clipping.
#pragma once
#include <cstdint>

namespace dino::cpu {

struct AdamWConfig {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weight_decay;
  int64_t step;  // 1-based: the bias corrections use beta ** step
};

// param, exp_avg, exp_avg_sq (n) updated in place from grad (n): one step of decoupled-weight-decay Adam.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamWConfig& c);

// teacher (n) = momentum * teacher + (1 - momentum) * student (n)
void ema_update(float* teacher, const float* student, int64_t n, double momentum);

// sum of x[i]^2 over x (n), accumulated in double
double sum_squares(const float* x, int64_t n);

}  // namespace dino::cpu
