// Batch normalisation kernels. The statistics take one thread per column, summing its rows in order in
// double exactly as native/cpu/batchnorm.cpp does (the loads of a warp's 32 columns are one coalesced
// row segment), then an elementwise pass over all N * C values applies them. Every float and double
// operation is written with an explicit _rn intrinsic: nvcc would otherwise fuse multiply-adds that the
// CPU rounds twice, and the results would drift from the CPU's by an ulp.
#include "batchnorm.h"

#include <algorithm>

#include "common.cuh"

namespace dino::cuda {
namespace {

constexpr int kColThreads = 128;
constexpr int kThreads = 256;
// Enough blocks to fill any GPU; larger tensors loop (grid-stride).
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

int grid_for(int64_t n, int threads) { return static_cast<int>(std::min(ceil_div(n, threads), kMaxBlocks)); }

// Training statistics, one thread per column: two passes in double (sum(x^2) - N m^2 would cancel when
// |mean| >> std), the running statistics moved with the unbiased variance, as PyTorch.
__global__ void train_stats_kernel(float* __restrict__ mean, float* __restrict__ rstd, float* __restrict__ lo,
                                   float* __restrict__ running_mean, float* __restrict__ running_var,
                                   float* __restrict__ count, const float* __restrict__ x, int64_t N, int64_t C,
                                   double eps, double momentum) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += stride) {
    const double n = static_cast<double>(N);
    double s = 0.0;
    for (int64_t r = 0; r < N; ++r) s = __dadd_rn(s, static_cast<double>(x[r * C + c]));
    const double m = __ddiv_rn(s, n);
    double v = 0.0;
    for (int64_t r = 0; r < N; ++r) {
      const double d = __dsub_rn(static_cast<double>(x[r * C + c]), m);
      v = __dadd_rn(v, __dmul_rn(d, d));
    }
    const float mf = static_cast<float>(m);
    mean[c] = mf;
    lo[c] = static_cast<float>(__dsub_rn(m, static_cast<double>(mf)));
    rstd[c] = static_cast<float>(__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__ddiv_rn(v, n), eps))));
    const double keep = __dsub_rn(1.0, momentum);
    running_mean[c] = static_cast<float>(
        __dadd_rn(__dmul_rn(momentum, m), __dmul_rn(keep, static_cast<double>(running_mean[c]))));
    const double unbiased = __ddiv_rn(v, static_cast<double>(N - 1));
    running_var[c] = static_cast<float>(
        __dadd_rn(__dmul_rn(momentum, unbiased), __dmul_rn(keep, static_cast<double>(running_var[c]))));
    if (c == 0) count[0] = __fadd_rn(count[0], 1.0f);
  }
}

__global__ void eval_stats_kernel(float* __restrict__ mean, float* __restrict__ rstd,
                                  const float* __restrict__ running_mean, const float* __restrict__ running_var,
                                  int64_t C, double eps) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += stride) {
    mean[c] = running_mean[c];
    rstd[c] = static_cast<float>(
        __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(static_cast<double>(running_var[c]), eps))));
  }
}

// y = ((x - hi) - lo) * rstd * weight + bias, where hi + lo is the mean: x - hi is exact near the
// mean. lo == nullptr (evaluation) stands for zeros; subtracting +0 changes no value, so skipping it is
// the same arithmetic.
__global__ void normalize_kernel(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ hi,
                                 const float* __restrict__ lo, const float* __restrict__ rstd,
                                 const float* __restrict__ weight, const float* __restrict__ bias, int64_t total,
                                 int64_t C) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t c = i % C;
    float u = __fsub_rn(x[i], hi[c]);
    if (lo != nullptr) u = __fsub_rn(u, lo[c]);
    y[i] = __fadd_rn(__fmul_rn(__fmul_rn(u, rstd[c]), weight[c]), bias[c]);
  }
}

// Per column, with u = x - mean and g = dy (see native/cpu/batchnorm.cpp): dbias = sum(g),
// dweight = sum(g xhat), and the three per-column factors of dx: lo (what the float mean lost, 0 in
// evaluation), k_g = dbias / N and k_x = dweight / N (0 in evaluation).
__global__ void backward_sums_kernel(float* __restrict__ dweight, float* __restrict__ dbias, float* __restrict__ lo,
                                     float* __restrict__ k_g, float* __restrict__ k_x, const float* __restrict__ dy,
                                     const float* __restrict__ x, const float* __restrict__ mean,
                                     const float* __restrict__ rstd, int64_t N, int64_t C, bool training) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += stride) {
    const float mc = mean[c];
    double sg = 0.0, sgu = 0.0, su = 0.0;
    for (int64_t r = 0; r < N; ++r) {
      const float g = dy[r * C + c];
      const float u = __fsub_rn(x[r * C + c], mc);
      sg = __dadd_rn(sg, static_cast<double>(g));
      sgu = __dadd_rn(sgu, __dmul_rn(static_cast<double>(g), static_cast<double>(u)));
      su = __dadd_rn(su, static_cast<double>(u));
    }
    const double n = static_cast<double>(N);
    const double lo_d = training ? __ddiv_rn(su, n) : 0.0;
    const double sgx = __dmul_rn(__dsub_rn(sgu, __dmul_rn(lo_d, sg)), static_cast<double>(rstd[c]));
    dweight[c] = static_cast<float>(sgx);
    dbias[c] = static_cast<float>(sg);
    lo[c] = static_cast<float>(lo_d);
    k_g[c] = training ? static_cast<float>(__ddiv_rn(sg, n)) : 0.0f;
    k_x[c] = training ? static_cast<float>(__ddiv_rn(sgx, n)) : 0.0f;
  }
}

// dx = weight rstd (g - k_g - xhat k_x), xhat = ((x - mean) - lo) rstd
__global__ void backward_dx_kernel(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ x,
                                   const float* __restrict__ weight, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, const float* __restrict__ lo,
                                   const float* __restrict__ k_g, const float* __restrict__ k_x, int64_t total,
                                   int64_t C) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t c = i % C;
    const float rs = rstd[c];
    const float xhat = __fmul_rn(__fsub_rn(__fsub_rn(x[i], mean[c]), lo[c]), rs);
    const float scale = __fmul_rn(weight[c], rs);
    dx[i] = __fmul_rn(scale, __fsub_rn(__fsub_rn(dy[i], k_g[c]), __fmul_rn(xhat, k_x[c])));
  }
}

}  // namespace

// x (N, C), weight (C), bias (C) -> y (N, C), mean (C), rstd (C); running_mean, running_var (C) and
// num_batches_tracked updated in place; lo (C) scratch
Status batchnorm_forward_train(int device, float* y, float* mean, float* rstd, float* running_mean,
                               float* running_var, float* num_batches_tracked, float* lo, const float* x,
                               const float* weight, const float* bias, int64_t N, int64_t C, double eps,
                               double momentum) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (N <= 0 || C <= 0) return Status::OK();
  train_stats_kernel<<<grid_for(C, kColThreads), kColThreads, 0, stream>>>(
      mean, rstd, lo, running_mean, running_var, num_batches_tracked, x, N, C, eps, momentum);
  DINO_CUDA_CHECK_LAUNCH("batchnorm train_stats_kernel");
  normalize_kernel<<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(y, x, mean, lo, rstd, weight, bias, N * C,
                                                                        C);
  DINO_CUDA_CHECK_LAUNCH("batchnorm normalize_kernel");
  return Status::OK();
}

// x (N, C), weight, bias, running_mean, running_var (C) -> y (N, C), mean (C), rstd (C)
Status batchnorm_forward_eval(int device, float* y, float* mean, float* rstd, const float* x, const float* weight,
                              const float* bias, const float* running_mean, const float* running_var, int64_t N,
                              int64_t C, double eps) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (C <= 0) return Status::OK();
  eval_stats_kernel<<<grid_for(C, kColThreads), kColThreads, 0, stream>>>(mean, rstd, running_mean, running_var, C,
                                                                           eps);
  DINO_CUDA_CHECK_LAUNCH("batchnorm eval_stats_kernel");
  if (N <= 0) return Status::OK();
  normalize_kernel<<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(y, x, mean, nullptr, rstd, weight, bias,
                                                                        N * C, C);
  DINO_CUDA_CHECK_LAUNCH("batchnorm normalize_kernel");
  return Status::OK();
}

// dy (N, C), x (N, C), weight, mean, rstd (C) -> dx (N, C), dweight (C), dbias (C); scratch (3 C)
Status batchnorm_backward(int device, float* dx, float* dweight, float* dbias, float* scratch, const float* dy,
                          const float* x, const float* weight, const float* mean, const float* rstd, int64_t N,
                          int64_t C, bool training) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (C <= 0) return Status::OK();
  float *lo = scratch, *k_g = scratch + C, *k_x = scratch + 2 * C;
  backward_sums_kernel<<<grid_for(C, kColThreads), kColThreads, 0, stream>>>(dweight, dbias, lo, k_g, k_x, dy, x,
                                                                              mean, rstd, N, C, training);
  DINO_CUDA_CHECK_LAUNCH("batchnorm backward_sums_kernel");
  if (N <= 0) return Status::OK();
  backward_dx_kernel<<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(dx, dy, x, weight, mean, rstd, lo, k_g,
                                                                          k_x, N * C, C);
  DINO_CUDA_CHECK_LAUNCH("batchnorm backward_dx_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
