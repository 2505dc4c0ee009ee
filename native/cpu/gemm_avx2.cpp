// AVX2 + FMA micro-kernel of the GEMM (see gemm_kernels.h for the contract and gemm.cpp for the
// blocking), for x86-64 CPUs without AVX-512.
#include <immintrin.h>

#include "gemm_kernels.h"

namespace dino::cpu {

// Ap: (kc, 6) packed, Bp: (kc, 16) packed, C: (m, n) with row stride ldc, m <= 6, n <= 16.
// Each k step loads one 16-wide row of B into two ymm and broadcasts the 6 values of A's column:
// 12 FMAs per 8 loads, which keeps both FMA ports busy on Haswell and later.
void sgemm_ukernel_avx2(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                        float beta, int64_t m, int64_t n) {
  constexpr int MR = kAvx2MR, NR = kAvx2NR;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm256_setzero_ps();

  for (int64_t k = 0; k < kc; k++) {
    // The B sliver streams from L2: ask for the row (one line) 8 k steps ahead so loads hit L1.
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * NR), _MM_HINT_T0);
    const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += NR;
  }

  // AVX2 has no mask registers: lane j of the mask is set (sign bit) when column j < n, so
  // maskload/maskstore never touch C outside (m, n) on edge tiles.
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n) - 8), lane);
  const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) {
    if (i >= m) break;
    float* row = C + i * ldc;
    __m256 r0 = c0[i], r1 = c1[i];
    if (beta != 0.0f) {
      r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), r1);
    }
    _mm256_maskstore_ps(row, m0, r0);
    _mm256_maskstore_ps(row + 8, m1, r1);
  }
}

}  // namespace dino::cpu
