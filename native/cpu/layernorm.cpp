#include "layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "simd.h"

namespace dino::cpu {
namespace {

// Below this many elements one thread is faster than waking the others.
constexpr int64_t kParallelMin = 32768;
// Rows per block of the dweight / dbias reduction: each block sums into its own partials (2C doubles,
// in L1 for the ViT widths), and the blocks are then added in order.
constexpr int64_t kBlockRows = 64;

DINO_SIMD_CLONES void layernorm_row(float* y, float* mean, float* rstd, const float* x, const float* weight,
                                    const float* bias, int64_t C, float eps) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < C; ++c) s += x[c];
  const double m = s / C;
  // Two passes in double: sum(x^2) - C m^2 would cancel badly when |mean| >> std.
  double v = 0.0;
#pragma omp simd reduction(+ : v)
  for (int64_t c = 0; c < C; ++c) {
    const double d = x[c] - m;
    v += d * d;
  }
  const float mf = static_cast<float>(m), rs = static_cast<float>(1.0 / std::sqrt(v / C + eps));
  // The mean as hi + lo floats: x - hi is exact for x near the mean, so x - hi - lo keeps the centred
  // value accurate to float precision even when |mean| >> std, where x - float(mean) would not be.
  const float mlo = static_cast<float>(m - mf);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] = ((x[c] - mf) - mlo) * rs * weight[c] + bias[c];
  *mean = mf;
  *rstd = rs;
}

// Rows [r0, r1) of the backward pass; pw and pb (C each) accumulate this block's dweight and dbias.
// With xhat = (x - mean) rstd and g = dy * weight, per row:
//   dx = rstd (g - mean(g) - xhat mean(g xhat)),   dweight += dy xhat,   dbias += dy.
DINO_SIMD_CLONES void layernorm_backward_rows(float* dx, double* pw, double* pb, const float* dy, const float* x,
                                              const float* weight, const float* mean, const float* rstd, int64_t r0,
                                              int64_t r1, int64_t C) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *dyr = dy + r * C, *xr = x + r * C;
    float* dxr = dx + r * C;
    const float m = mean[r], rs = rstd[r];
    // u = x - mean uses the saved mean, rounded to float; the part it lost, lo = sum(u) / C, comes out
    // of the same pass, so xhat = (u - lo) rstd is as accurate as in the forward pass.
    double sg = 0.0, sgu = 0.0, su = 0.0;
#pragma omp simd reduction(+ : sg, sgu, su)
    for (int64_t c = 0; c < C; ++c) {
      const float u = xr[c] - m, g = dyr[c] * weight[c];
      sg += g;
      sgu += static_cast<double>(g) * u;
      su += u;
    }
    const double lo_d = su / C;
    const float lo = static_cast<float>(lo_d), mg = static_cast<float>(sg / C);
    const float mgx = static_cast<float>((sgu - lo_d * sg) / C * rs);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = ((xr[c] - m) - lo) * rs, d = dyr[c];
      dxr[c] = rs * (d * weight[c] - mg - xhat * mgx);
      pw[c] += static_cast<double>(d) * xhat;
      pb[c] += d;
    }
  }
}

}  // namespace

void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                       int64_t rows, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * C > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) layernorm_row(y + r * C, mean + r, rstd + r, x + r * C, weight, bias, C, eps);
}

void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                        const float* mean, const float* rstd, int64_t rows, int64_t C) {
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(blocks, 1) * 2 * C), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 1 && rows * C > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    double* pw = partial.data() + b * 2 * C;
    layernorm_backward_rows(dx, pw, pw + C, dy, x, weight, mean, rstd, b * kBlockRows,
                            std::min(rows, (b + 1) * kBlockRows), C);
  }
  double* acc = partial.data();
  for (int64_t b = 1; b < blocks; ++b) {
    const double* p = acc + b * 2 * C;
#pragma omp simd
    for (int64_t c = 0; c < 2 * C; ++c) acc[c] += p[c];
  }
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    dweight[c] = static_cast<float>(acc[c]);
    dbias[c] = static_cast<float>(acc[C + c]);
  }
}

}  // namespace dino::cpu
