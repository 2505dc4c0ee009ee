#include "attention.h"

#include <algorithm>
#include <cmath>

#include "dino/gemm.h"
#include "simd.h"

namespace dino::cpu {
namespace {

// The row passes between the GEMMs: exp_f32 and select_f32 (simd.h) vectorise, and the
// DINO_SIMD_CLONES build of each row function for AVX-512 / AVX2 runs the exponentials 2-4x faster
// than baseline x86-64. They are called from the OpenMP loops, never inlined into them.

// s (T) scaled scores -> softmax probabilities, in place; returns the row's log-sum-exp.
DINO_SIMD_CLONES float softmax_lse_row(float* s, int64_t T) {
  float m = s[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 1; j < T; ++j) m = select_f32(s[j] > m, s[j], m);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < T; ++j) {
    s[j] = exp_f32(s[j] - m);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) s[j] *= inv;
  return m + std::log(sum);
}

// One query row of the backward: p (T) holds the scaled scores and becomes P = exp(s - lse);
// ds (T) holds dP = dO V^T and becomes dS = P * (dP - D) with D = rowsum(dO * O) = sum_j P_j dP_j.
// o, dout (hd) are the row's output and its gradient.
DINO_SIMD_CLONES void softmax_grad_row(float* p, float* ds, const float* o, const float* dout, float lse, int64_t T,
                                       int64_t hd) {
  float d = 0.0f;
#pragma omp simd reduction(+ : d)
  for (int64_t c = 0; c < hd; ++c) d += dout[c] * o[c];
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) {
    p[j] = exp_f32(p[j] - lse);
    ds[j] = p[j] * (ds[j] - d);
  }
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
        l[u * H * T + i] = softmax_lse_row(s + u * s_stride + i * T, T);
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
        softmax_grad_row(p + u * TT + i * T, ds + u * TT + i * T, o + u * T * D + i * D, dO + u * T * D + i * D,
                         l[u * H * T + i], T, hd);
      }
      // dv = p^T dO, dq = scale * dS k, dk = scale * dS^T q, each written into its slot of dqkv
      sgemm_batched(true, false, T, hd, T, 1.0f, p, T, TT, dO, D, T * D, 0.0f, dv, ld, T * ld, n);
      sgemm_batched(false, false, T, hd, T, scale, ds, T, TT, k, ld, T * ld, 0.0f, dq, ld, T * ld, n);
      sgemm_batched(true, false, T, hd, T, scale, ds, T, TT, q, ld, T * ld, 0.0f, dk, ld, T * ld, n);
    }
  }
}

}  // namespace dino::cpu
