#include "l2norm.h"

#include <cmath>

#include "simd.h"

namespace dino::cpu {
namespace {

// Below this many elements one thread is faster than waking the others.
constexpr int64_t kParallelMin = 32768;

DINO_SIMD_CLONES void l2_normalize_row(float* y, float* norm, const float* x, int64_t C, float eps) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < C; ++c) s += static_cast<double>(x[c]) * x[c];
  // The clamp compares the float norm, as the backward pass sees it, so both take the same branch.
  const float n = static_cast<float>(std::sqrt(s));
  const float inv = 1.0f / (n >= eps ? n : eps);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] = x[c] * inv;
  *norm = n;
}

DINO_SIMD_CLONES void l2_normalize_backward_row(float* dx, const float* dy, const float* x, float n, int64_t C,
                                                float eps) {
  if (n >= eps) {
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(dy[c]) * x[c];
    const double nd = n;
    const float inv = static_cast<float>(1.0 / nd), k = static_cast<float>(dot / (nd * nd * nd));
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dx[c] = dy[c] * inv - x[c] * k;
  } else {
    const float inv = 1.0f / eps;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dx[c] = dy[c] * inv;
  }
}

}  // namespace

void l2_normalize_forward(float* y, float* norm, const float* x, int64_t rows, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * C > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) l2_normalize_row(y + r * C, norm + r, x + r * C, C, eps);
}

void l2_normalize_backward(float* dx, const float* dy, const float* x, const float* norm, int64_t rows, int64_t C,
                           float eps) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * C > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) l2_normalize_backward_row(dx + r * C, dy + r * C, x + r * C, norm[r], C, eps);
}

}  // namespace dino::cpu
