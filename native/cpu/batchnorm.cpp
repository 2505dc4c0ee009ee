#include "batchnorm.h"

#include <algorithm>
#include <cmath>

#include "simd.h"

namespace dino::cpu {
namespace {

// Below this many elements one thread is faster than waking the others.
constexpr int64_t kParallelMin = 32768;
// Columns per task. Every pass walks the rows of one column block, reading a contiguous run of kCols
// floats per row and keeping kCols double accumulators in registers or L1; each column's sums are
// taken over the rows in order by one thread.
constexpr int64_t kCols = 64;

// y = ((x - hi) - lo) * rstd * weight + bias over columns [0, w) of a block, where hi + lo is the mean
// (lo = 0 for the running mean): x - hi is exact near the mean, so the centred value keeps float
// precision even when |mean| >> std.
DINO_SIMD_CLONES void normalize_cols(float* y, const float* x, const float* hi, const float* lo, const float* rstd,
                                     const float* weight, const float* bias, int64_t N, int64_t C, int64_t w) {
  for (int64_t r = 0; r < N; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) yr[c] = ((xr[c] - hi[c]) - lo[c]) * rstd[c] * weight[c] + bias[c];
  }
}

// Training statistics of columns [0, w): two passes in double (sum(x^2) - N m^2 would cancel when
// |mean| >> std), then the running statistics with the unbiased variance, as PyTorch.
DINO_SIMD_CLONES void batch_stats_cols(float* y, float* mean, float* rstd, float* running_mean, float* running_var,
                                       const float* x, const float* weight, const float* bias, int64_t N, int64_t C,
                                       int64_t w, double eps, double momentum) {
  double s[kCols] = {}, v[kCols] = {};
  for (int64_t r = 0; r < N; ++r) {
    const float* xr = x + r * C;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) s[c] += xr[c];
  }
  double m[kCols];
  for (int64_t c = 0; c < w; ++c) m[c] = s[c] / N;
  for (int64_t r = 0; r < N; ++r) {
    const float* xr = x + r * C;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      const double d = xr[c] - m[c];
      v[c] += d * d;
    }
  }
  float lo[kCols];
  for (int64_t c = 0; c < w; ++c) {
    mean[c] = static_cast<float>(m[c]);
    lo[c] = static_cast<float>(m[c] - mean[c]);
    rstd[c] = static_cast<float>(1.0 / std::sqrt(v[c] / N + eps));
    running_mean[c] = static_cast<float>(momentum * m[c] + (1.0 - momentum) * running_mean[c]);
    running_var[c] = static_cast<float>(momentum * (v[c] / (N - 1)) + (1.0 - momentum) * running_var[c]);
  }
  normalize_cols(y, x, mean, lo, rstd, weight, bias, N, C, w);
}

// Backward of columns [0, w). With u = x - mean and g = dy, per column (training):
//   lo = mean(u) (what the float mean lost), xhat = (u - lo) rstd,
//   dbias = sum(g), dweight = sum(g xhat), dx = weight rstd (g - dbias / N - xhat dweight / N);
// in evaluation the mean is the running mean itself: xhat = u rstd and dx = g weight rstd.
DINO_SIMD_CLONES void backward_cols(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                    const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                                    int64_t w, bool training) {
  double sg[kCols] = {}, sgu[kCols] = {}, su[kCols] = {};
  for (int64_t r = 0; r < N; ++r) {
    const float *xr = x + r * C, *dyr = dy + r * C;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      const float u = xr[c] - mean[c];
      sg[c] += dyr[c];
      sgu[c] += static_cast<double>(dyr[c]) * u;
      su[c] += u;
    }
  }
  float lo[kCols], k_g[kCols], k_x[kCols], scale[kCols];
  for (int64_t c = 0; c < w; ++c) {
    const double lo_d = training ? su[c] / N : 0.0;
    const double sgx = (sgu[c] - lo_d * sg[c]) * rstd[c];
    dweight[c] = static_cast<float>(sgx);
    dbias[c] = static_cast<float>(sg[c]);
    lo[c] = static_cast<float>(lo_d);
    scale[c] = weight[c] * rstd[c];
    k_g[c] = training ? static_cast<float>(sg[c] / N) : 0.0f;
    k_x[c] = training ? static_cast<float>(sgx / N) : 0.0f;
  }
  for (int64_t r = 0; r < N; ++r) {
    const float *xr = x + r * C, *dyr = dy + r * C;
    float* dxr = dx + r * C;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      const float xhat = ((xr[c] - mean[c]) - lo[c]) * rstd[c];
      dxr[c] = scale[c] * (dyr[c] - k_g[c] - xhat * k_x[c]);
    }
  }
}

int64_t column_blocks(int64_t C) { return (C + kCols - 1) / kCols; }

}  // namespace

void batchnorm_forward_train(float* y, float* mean, float* rstd, float* running_mean, float* running_var,
                             const float* x, const float* weight, const float* bias, int64_t N, int64_t C,
                             double eps, double momentum) {
  const int64_t blocks = column_blocks(C);
#pragma omp parallel for schedule(static) if (blocks > 1 && N * C > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kCols, w = std::min(kCols, C - c0);
    batch_stats_cols(y + c0, mean + c0, rstd + c0, running_mean + c0, running_var + c0, x + c0, weight + c0,
                     bias + c0, N, C, w, eps, momentum);
  }
}

void batchnorm_forward_eval(float* y, float* mean, float* rstd, const float* x, const float* weight,
                            const float* bias, const float* running_mean, const float* running_var, int64_t N,
                            int64_t C, double eps) {
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c];
    rstd[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
  }
  const float zeros[kCols] = {};
  const int64_t blocks = column_blocks(C);
#pragma omp parallel for schedule(static) if (blocks > 1 && N * C > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kCols;
    normalize_cols(y + c0, x + c0, mean + c0, zeros, rstd + c0, weight + c0, bias + c0, N, C,
                   std::min(kCols, C - c0));
  }
}

void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool training) {
  const int64_t blocks = column_blocks(C);
#pragma omp parallel for schedule(static) if (blocks > 1 && N * C > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kCols;
    backward_cols(dx + c0, dweight + c0, dbias + c0, dy + c0, x + c0, weight + c0, mean + c0, rstd + c0, N, C,
                  std::min(kCols, C - c0), training);
  }
}

}  // namespace dino::cpu
