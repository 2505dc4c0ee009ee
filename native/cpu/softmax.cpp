#include "softmax.h"

#include <cmath>

#include "simd.h"

namespace dino::cpu {
namespace {

// Below this many elements one thread is faster than waking the others.
constexpr int64_t kParallelMin = 32768;

template <typename RowFn>
void for_each_row(int64_t rows, int64_t N, RowFn row) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * N > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) row(r * N);
}

inline float row_max(const float* x, int64_t N) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < N; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// Row sums accumulate in double (a product of two floats is exact in double), so that even the
// 65,536-long rows of the DINO loss end with one float rounding rather than a drift that grows with N.
inline double row_dot(const float* a, const float* b, int64_t N) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < N; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

inline double row_sum(const float* a, int64_t N) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < N; ++j) s += a[j];
  return s;
}

DINO_SIMD_CLONES void softmax_row(float* y, const float* x, int64_t N) {
  // A row of only -inf has max -inf and (-inf) - (-inf) = NaN everywhere, which is PyTorch's answer.
  const float m = row_max(x, N);
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < N; ++j) {
    const float e = exp_f32(x[j] - m);
    y[j] = e;
    s += e;
  }
  const float inv = static_cast<float>(1.0 / s);
#pragma omp simd
  for (int64_t j = 0; j < N; ++j) y[j] *= inv;
}

DINO_SIMD_CLONES void softmax_backward_row(float* dx, const float* dy, const float* y, int64_t N) {
  const float d = static_cast<float>(row_dot(dy, y, N));
#pragma omp simd
  for (int64_t j = 0; j < N; ++j) dx[j] = y[j] * (dy[j] - d);
}

DINO_SIMD_CLONES void log_softmax_row(float* y, const float* x, int64_t N) {
  const float m = row_max(x, N);
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < N; ++j) s += exp_f32(x[j] - m);
  // (x - m) - log(s) rather than x - (m + log(s)): x - m is exact near the max, where it matters.
  const float ls = static_cast<float>(std::log(s));
#pragma omp simd
  for (int64_t j = 0; j < N; ++j) y[j] = (x[j] - m) - ls;
}

DINO_SIMD_CLONES void log_softmax_backward_row(float* dx, const float* dy, const float* y, int64_t N) {
  const float s = static_cast<float>(row_sum(dy, N));
#pragma omp simd
  for (int64_t j = 0; j < N; ++j) dx[j] = dy[j] - exp_f32(y[j]) * s;
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t N) {
  for_each_row(rows, N, [=](int64_t o) { softmax_row(y + o, x + o, N); });
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  for_each_row(rows, N, [=](int64_t o) { softmax_backward_row(dx + o, dy + o, y + o, N); });
}

void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t N) {
  for_each_row(rows, N, [=](int64_t o) { log_softmax_row(y + o, x + o, N); });
}

void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  for_each_row(rows, N, [=](int64_t o) { log_softmax_backward_row(dx + o, dy + o, y + o, N); });
}

}  // namespace dino::cpu
