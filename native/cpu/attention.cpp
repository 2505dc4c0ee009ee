#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dino/gemm.h"

namespace dino::cpu {
namespace {

// e^x within about 2 ulp, written without calls or branches so that the loops over score rows
// vectorise: std::exp is a scalar libm call here, and a ViT-S step takes ~10^9 of them.
// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2, where a degree-7 Taylor polynomial is
// accurate to 5e-9. Arguments are clamped so that 2^n stays a normal float: e^-87 is 1.6e-38, zero
// next to the row sum of a softmax (>= 1); NaN passes through the clamps and the polynomial.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float round = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504f + round) - round;
  // ln 2 in two parts: n * 0.693359375 (9 significant bits) is exact.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float pow2n;
  std::memcpy(&pow2n, &bits, sizeof pow2n);
  return p * pow2n;
}

// s (T) scaled scores -> softmax probabilities, in place; returns the row's log-sum-exp.
float softmax_row(float* s, int64_t T) {
  float m = s[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 1; j < T; ++j) m = std::max(m, s[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < T; ++j) {
    s[j] = exp_approx(s[j] - m);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) s[j] *= inv;
  return m + std::log(sum);
}

// Both the forward and the backward walk the (b, h) pairs head by head, in chunks of batch entries:
// for a fixed head, q, k, v, out and the score matrices of consecutive b are a constant stride apart,
// so one batched GEMM covers the chunk (and keeps all threads busy even when T is small).
// A chunk's score matrices take about a megabyte, so they are still in cache between the GEMM that
// writes them and the softmax that reads them.
int64_t chunk_size(int64_t B, int64_t T) {
  constexpr int64_t kScoreFloats = 1 << 18;
  const int64_t per = std::max<int64_t>(T * T, 1);
  const int64_t cb = std::clamp<int64_t>(kScoreFloats / per, 1, std::max<int64_t>(B, 1));
  const int64_t chunks = (B + cb - 1) / cb;
  return chunks ? (B + chunks - 1) / chunks : 1;  // evened out so the last chunk is not a sliver
}

// Score elements per chunk above which the elementwise pass is worth a parallel region.
constexpr int64_t kParallelFloats = 16384;

}  // namespace

int64_t attention_forward_scratch(int64_t B, int64_t T) { return chunk_size(B, T) * T * T; }
int64_t attention_backward_scratch(int64_t B, int64_t T) { return 2 * chunk_size(B, T) * T * T; }

void attention_forward(float* out, float* lse, float* probs, const float* qkv, float* scratch, int64_t B,
                       int64_t T, int64_t H, int64_t hd, float scale) {
  if (B == 0 || T == 0) return;
  const int64_t D = H * hd, ld = 3 * D, cb = chunk_size(B, T);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
      const int64_t n = std::min(cb, B - b0);
      const float* q = qkv + b0 * T * ld + h * hd;
      const float *k = q + D, *v = q + 2 * D;
      // With probs requested the scores go straight to their place in (B, H, T, T).
      float* s = probs ? probs + (b0 * H + h) * T * T : scratch;
      const int64_t s_stride = probs ? H * T * T : T * T;
      float* l = lse + b0 * H * T + h * T;
      // s (n, T, T) = scale * q k^T
      sgemm_batched(false, true, T, T, hd, scale, q, ld, T * ld, k, ld, T * ld, 0.0f, s, T, s_stride, n);
#pragma omp parallel for schedule(static) if (n * T * T > kParallelFloats)
      for (int64_t r = 0; r < n * T; ++r) {
        const int64_t u = r / T, i = r % T;
        l[u * H * T + i] = softmax_row(s + u * s_stride + i * T, T);
      }
      // out (n, T, hd) = p v, written into the (B, T, H, hd) layout
      sgemm_batched(false, false, T, hd, T, 1.0f, s, T, s_stride, v, ld, T * ld, 0.0f, out + b0 * T * D + h * hd, D,
                    T * D, n);
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t H, int64_t hd, float scale) {
  if (B == 0 || T == 0) return;
  const int64_t D = H * hd, ld = 3 * D, cb = chunk_size(B, T), TT = T * T;
  float *p = scratch, *ds = scratch + cb * TT;
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t b0 = 0; b0 < B; b0 += cb) {
      const int64_t n = std::min(cb, B - b0);
      const int64_t qoff = b0 * T * ld + h * hd, ooff = b0 * T * D + h * hd;
      const float *q = qkv + qoff, *k = q + D, *v = q + 2 * D;
      const float *o = out + ooff, *dO = dout + ooff;
      float *dq = dqkv + qoff, *dk = dq + D, *dv = dq + 2 * D;
      const float* l = lse + b0 * H * T + h * T;
      // p = scale * q k^T (exponentiated below), ds = dO v^T (turned into dS below)
      sgemm_batched(false, true, T, T, hd, scale, q, ld, T * ld, k, ld, T * ld, 0.0f, p, T, TT, n);
      sgemm_batched(false, true, T, T, hd, 1.0f, dO, D, T * D, v, ld, T * ld, 0.0f, ds, T, TT, n);
#pragma omp parallel for schedule(static) if (n * TT > kParallelFloats)
      for (int64_t r = 0; r < n * T; ++r) {
        const int64_t u = r / T, i = r % T;
        const float* orow = o + u * T * D + i * D;
        const float* grow = dO + u * T * D + i * D;
        float di = 0.0f;  // D_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij
#pragma omp simd reduction(+ : di)
        for (int64_t c = 0; c < hd; ++c) di += grow[c] * orow[c];
        const float li = l[u * H * T + i];
        float *prow = p + u * TT + i * T, *drow = ds + u * TT + i * T;
#pragma omp simd
        for (int64_t j = 0; j < T; ++j) {
          const float pj = exp_approx(prow[j] - li);
          prow[j] = pj;
          drow[j] = pj * (drow[j] - di);
        }
      }
      // dv = p^T dO, dq = scale * dS k, dk = scale * dS^T q, each written into its slot of dqkv
      sgemm_batched(true, false, T, hd, T, 1.0f, p, T, TT, dO, D, T * D, 0.0f, dv, ld, T * ld, n);
      sgemm_batched(false, false, T, hd, T, scale, ds, T, TT, k, ld, T * ld, 0.0f, dq, ld, T * ld, n);
      sgemm_batched(true, false, T, hd, T, scale, ds, T, TT, q, ld, T * ld, 0.0f, dk, ld, T * ld, n);
    }
  }
}

}  // namespace dino::cpu
