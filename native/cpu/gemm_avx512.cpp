// AVX-512 micro-kernel of the GEMM (see gemm_kernels.h for the contract and gemm.cpp for the blocking).
#include <immintrin.h>

#include "gemm_kernels.h"

namespace dino::cpu {

// Ap: (kc, 12) packed, Bp: (kc, 32) packed, C: (m, n) with row stride ldc, m <= 12, n <= 32.
// Each k step loads one 32-wide row of B into two zmm and broadcasts the 12 values of A's column:
// 24 FMAs per 14 loads, enough independent accumulators to hide the FMA latency on every core that
// has AVX-512. The accumulators are plain locals in fully unrolled loops so they stay in registers.
void sgemm_ukernel_avx512(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                          float beta, int64_t m, int64_t n) {
  constexpr int MR = kAvx512MR, NR = kAvx512NR;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();

  // The C tile is touched only after the k loop; ask for it now so the final read-modify-write
  // does not stall on memory (two lines per row, as a row of the tile spans 128 bytes).
  if (beta != 0.0f) {
    for (int64_t i = 0; i < m; i++) {
      _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16), _MM_HINT_T0);
    }
  }

  for (int64_t k = 0; k < kc; k++) {
    // The B sliver streams from L2: ask for both lines of the row 8 k steps ahead so the loads
    // hit L1. Hardware prefetchers often manage alone; two hints per 24 FMAs cost nothing.
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * NR + 16), _MM_HINT_T0);
    const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += NR;
  }

  // Edge tiles: masked loads/stores cover n < 32 so C is never touched outside (m, n).
  const __mmask16 k0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? __mmask16(0xFFFF) : n > 16 ? __mmask16((1u << (n - 16)) - 1) : 0;
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    if (i >= m) break;
    float* row = C + i * ldc;
    __m512 r0 = c0[i], r1 = c1[i];
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, row), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, row + 16), r1);
    }
    _mm512_mask_storeu_ps(row, k0, r0);
    _mm512_mask_storeu_ps(row + 16, k1, r1);
  }
}

}  // namespace dino::cpu
