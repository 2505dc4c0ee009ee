#include "interpolate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

namespace dino::cpu {
namespace {

// The four source indices (clamped to the border) and cubic weights of each output index along one
// axis: index[4*i + j], weight[4*i + j] for j in 0..3.
struct Taps {
  std::vector<int64_t> index;
  std::vector<float> weight;
};

// Keys' cubic convolution kernel with A = -0.75 (PyTorch's and OpenCV's choice): |d| <= 1 and
// 1 < |d| < 2, in the Horner forms that PyTorch evaluates.
constexpr float kA = -0.75f;
float cubic_near(float d) { return ((kA + 2.0f) * d - (kA + 3.0f)) * d * d + 1.0f; }
float cubic_far(float d) { return ((kA * d - 5.0f * kA) * d + 8.0f * kA) * d - 4.0f * kA; }

// All arithmetic in float, as PyTorch does for float tensors: the step is 1/scale rounded to float,
// and the source coordinate step * (i + 0.5) - 0.5 is not clamped at 0 (the cubic weights of a
// negative coordinate differ from those of 0). The fraction is clamped to [0, 1] as PyTorch does
// when the coordinate runs past the last pixel.
Taps cubic_taps(int64_t in, int64_t out, double scale) {
  Taps t{std::vector<int64_t>(4 * out), std::vector<float>(4 * out)};
  const float step = static_cast<float>(1.0 / scale);
  for (int64_t i = 0; i < out; ++i) {
    const float src = step * (static_cast<float>(i) + 0.5f) - 0.5f;
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    const float f = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    const float g = 1.0f - f;
    const float w[4] = {cubic_far(f + 1.0f), cubic_near(f), cubic_near(g), cubic_far(g + 1.0f)};
    for (int64_t j = 0; j < 4; ++j) {
      t.index[4 * i + j] = std::clamp<int64_t>(i0 - 1 + j, 0, in - 1);
      t.weight[4 * i + j] = w[j];
    }
  }
  return t;
}

constexpr int64_t kParallelFloats = 16384;

}  // namespace

int64_t bicubic_scratch(int64_t H, int64_t outW) { return omp_get_max_threads() * H * outW; }

// Separable: each plane is first resampled along W into rows (H, outW), then along H. The sums run in
// the same order as PyTorch's (the W taps of a row first, then the four rows), so results match it
// to rounding.
void bicubic_forward(float* y, const float* x, float* scratch, int64_t planes, int64_t H, int64_t W, int64_t outH,
                     int64_t outW, double scaleH, double scaleW) {
  const Taps ty = cubic_taps(H, outH, scaleH), tx = cubic_taps(W, outW, scaleW);
#pragma omp parallel if (planes * outH * outW > kParallelFloats)
  {
    float* rows = scratch + omp_get_thread_num() * H * outW;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const float* src = x + pl * H * W;
      for (int64_t r = 0; r < H; ++r) {
        const float* line = src + r * W;
        for (int64_t o = 0; o < outW; ++o) {
          const int64_t* ix = &tx.index[4 * o];
          const float* wx = &tx.weight[4 * o];
          rows[r * outW + o] = line[ix[0]] * wx[0] + line[ix[1]] * wx[1] + line[ix[2]] * wx[2] + line[ix[3]] * wx[3];
        }
      }
      float* dst = y + pl * outH * outW;
      for (int64_t o = 0; o < outH; ++o) {
        const int64_t* iy = &ty.index[4 * o];
        const float* wy = &ty.weight[4 * o];
        const float *r0 = &rows[iy[0] * outW], *r1 = &rows[iy[1] * outW], *r2 = &rows[iy[2] * outW],
                    *r3 = &rows[iy[3] * outW];
        float* out = dst + o * outW;
#pragma omp simd
        for (int64_t c = 0; c < outW; ++c) out[c] = r0[c] * wy[0] + r1[c] * wy[1] + r2[c] * wy[2] + r3[c] * wy[3];
      }
    }
  }
}

// The transpose of the forward: dy is spread back along H into rows (H, outW), then along W. Planes are
// independent, so threads split the planes and no two of them add into the same pixel.
void bicubic_backward(float* dx, const float* dy, float* scratch, int64_t planes, int64_t H, int64_t W, int64_t outH,
                      int64_t outW, double scaleH, double scaleW) {
  const Taps ty = cubic_taps(H, outH, scaleH), tx = cubic_taps(W, outW, scaleW);
#pragma omp parallel if (planes * outH * outW > kParallelFloats)
  {
    float* rows = scratch + omp_get_thread_num() * H * outW;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
      std::fill(rows, rows + H * outW, 0.0f);
      const float* g = dy + pl * outH * outW;
      for (int64_t o = 0; o < outH; ++o) {
        const float* grow = g + o * outW;
        for (int64_t j = 0; j < 4; ++j) {
          float* r = &rows[ty.index[4 * o + j] * outW];
          const float w = ty.weight[4 * o + j];
#pragma omp simd
          for (int64_t c = 0; c < outW; ++c) r[c] += w * grow[c];
        }
      }
      float* dst = dx + pl * H * W;
      std::fill(dst, dst + H * W, 0.0f);
      for (int64_t r = 0; r < H; ++r) {
        float* line = dst + r * W;
        const float* row = &rows[r * outW];
        for (int64_t o = 0; o < outW; ++o)
          for (int64_t j = 0; j < 4; ++j) line[tx.index[4 * o + j]] += tx.weight[4 * o + j] * row[o];
      }
    }
  }
}

}  // namespace dino::cpu
