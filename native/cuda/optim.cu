// Optimizer kernels: elementwise updates in float with the CPU's exact operation order (explicit _rn
// intrinsics, so that nvcc fuses no multiply-add the CPU rounds twice: results are bitwise the CPU's),
// and a two-stage sum of squares in double for the norm and gradient clipping.
#include "optim.h"

#include <algorithm>
#include <cmath>

#include "common.cuh"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

int grid_for(int64_t n) { return static_cast<int>(std::min(ceil_div(n, kThreads), kMaxBlocks)); }

// The float scalars of one step, computed on the host exactly as native/cpu/optim.cpp computes them.
struct AdamWScalars {
  float decay, w1, b2, w2, bc2_sqrt, eps, neg_step;
};

__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ exp_avg,
                             float* __restrict__ exp_avg_sq, int64_t n, AdamWScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = grad[i];
    const float m0 = exp_avg[i];
    const float m = __fadd_rn(m0, __fmul_rn(s.w1, __fsub_rn(g, m0)));
    const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], s.b2), __fmul_rn(__fmul_rn(s.w2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bc2_sqrt), s.eps);
    param[i] = __fadd_rn(__fmul_rn(param[i], s.decay), __fdiv_rn(__fmul_rn(s.neg_step, m), denom));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

__global__ void ema_kernel(float* __restrict__ teacher, const float* __restrict__ student, int64_t n, float m,
                           float w) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    teacher[i] = __fadd_rn(__fmul_rn(teacher[i], m), __fmul_rn(w, student[i]));
}

// A block's kNormThreads values in shared memory summed by a fixed tree. Called by every thread of the
// block (it synchronises); the sum is in sh[0] afterwards.
__device__ void block_sum(double* sh) {
  __syncthreads();
  for (int w = kNormThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) sh[threadIdx.x] = __dadd_rn(sh[threadIdx.x], sh[threadIdx.x + w]);
    __syncthreads();
  }
}

// Stage 1: block b sums x[i]^2 in double over i = b * kNormThreads + t + k * gridDim.x * kNormThreads.
// Launched with exactly kNormThreads threads per block.
__global__ void sum_squares_kernel(double* __restrict__ partials, const float* __restrict__ x, int64_t n) {
  __shared__ double sh[kNormThreads];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kNormThreads;
  double s = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kNormThreads + threadIdx.x; i < n; i += stride) {
    const double v = static_cast<double>(x[i]);
    s = __dadd_rn(s, __dmul_rn(v, v));
  }
  sh[threadIdx.x] = s;
  block_sum(sh);
  if (threadIdx.x == 0) partials[blockIdx.x] = sh[0];
}

// Stage 2, one block of kNormThreads threads: norm = sqrt(sum of the partials), rounded to float once.
__global__ void norm_final_kernel(float* __restrict__ norm, const double* __restrict__ partials, int64_t count) {
  __shared__ double sh[kNormThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kNormThreads) s = __dadd_rn(s, partials[i]);
  sh[threadIdx.x] = s;
  block_sum(sh);
  if (threadIdx.x == 0) norm[0] = static_cast<float>(__dsqrt_rn(sh[0]));
}

// dx = alpha * x + 0 with alpha = dy / norm (0 unless norm > 0), as cpu::affine_forward computes it; the
// scalars are read from device memory.
__global__ void norm_backward_kernel(float* __restrict__ dx, const float* __restrict__ x,
                                     const float* __restrict__ norm, const float* __restrict__ dy, int64_t n) {
  const float nv = norm[0];
  const float alpha = nv > 0.0f ? __fdiv_rn(dy[0], nv) : 0.0f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dx[i] = __fadd_rn(__fmul_rn(alpha, x[i]), 0.0f);
}

// grad *= coef where coef = (1 / (norm + 1e-6)) * max_norm is below 1 (DINO's float32 arithmetic), with
// the norm read from device memory: the host never waits for it. A NaN coefficient scales nothing, as on
// the CPU.
__global__ void clip_scale_kernel(float* __restrict__ grad, const float* __restrict__ norm, int64_t n,
                                  float max_norm) {
  const float coef = __fmul_rn(__fdiv_rn(1.0f, __fadd_rn(norm[0], 1e-6f)), max_norm);
  if (!(coef < 1.0f)) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    grad[i] = __fadd_rn(__fmul_rn(coef, grad[i]), 0.0f);
}

// The two stages of the norm on `stream`.
Status launch_norm(cudaStream_t stream, float* norm, double* partials, const float* x, int64_t n) {
  const int64_t blocks = norm_partials(n);
  sum_squares_kernel<<<static_cast<int>(blocks), kNormThreads, 0, stream>>>(partials, x, n);
  DINO_CUDA_CHECK_LAUNCH("sum_squares_kernel");
  norm_final_kernel<<<1, kNormThreads, 0, stream>>>(norm, partials, blocks);
  DINO_CUDA_CHECK_LAUNCH("norm_final_kernel");
  return Status::OK();
}

}  // namespace

// param, grad, exp_avg, exp_avg_sq (n); param, exp_avg, exp_avg_sq written
Status adamw_step(int device, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWConfig& c) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(c.step));
  const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(c.step));
  AdamWScalars s;
  s.decay = static_cast<float>(1.0 - c.lr * c.weight_decay);
  s.w1 = static_cast<float>(1.0 - c.beta1);
  s.b2 = static_cast<float>(c.beta2);
  s.w2 = static_cast<float>(1.0 - c.beta2);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.eps = static_cast<float>(c.eps);
  s.neg_step = static_cast<float>(-(c.lr / bc1));
  adamw_kernel<<<grid_for(n), kThreads, 0, stream>>>(param, grad, exp_avg, exp_avg_sq, n, s);
  DINO_CUDA_CHECK_LAUNCH("adamw_kernel");
  return Status::OK();
}

// teacher (n) written, student (n)
Status ema_update(int device, float* teacher, const float* student, int64_t n, double momentum) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  ema_kernel<<<grid_for(n), kThreads, 0, stream>>>(teacher, student, n, static_cast<float>(momentum),
                                                   static_cast<float>(1.0 - momentum));
  DINO_CUDA_CHECK_LAUNCH("ema_kernel");
  return Status::OK();
}

// x (n) -> norm (0-d); partials (norm_partials(n) doubles)
Status norm(int device, float* norm, double* partials, const float* x, int64_t n) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  return launch_norm(stream, norm, partials, x, n);
}

// x (n), norm (0-d), dy (0-d) -> dx (n)
Status norm_backward(int device, float* dx, const float* x, const float* norm, const float* dy, int64_t n) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  norm_backward_kernel<<<grid_for(n), kThreads, 0, stream>>>(dx, x, norm, dy, n);
  DINO_CUDA_CHECK_LAUNCH("norm_backward_kernel");
  return Status::OK();
}

// grad (n) scaled in place -> norm (0-d); partials (norm_partials(n) doubles)
Status clip_grad_norm(int device, float* grad, float* norm, double* partials, int64_t n, double max_norm) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  DINO_RETURN_IF_ERROR(launch_norm(stream, norm, partials, grad, n));
  if (n <= 0) return Status::OK();
  clip_scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(grad, norm, n, static_cast<float>(max_norm));
  DINO_CUDA_CHECK_LAUNCH("clip_scale_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
