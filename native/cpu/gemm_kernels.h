// Private to the GEMM: the register-tile micro-kernels that gemm.cpp dispatches to. Each lives in a
// file compiled for its instruction set, so nothing here may be called unless the CPU supports it.
#pragma once
#include <cstdint>

namespace dino::cpu {

// Every micro-kernel computes one MR x NR tile of C from packed panels:
//   C[i][j] = sum_k Ap[k*MR + i] * Bp[k*NR + j] + beta * C[i][j]      for i < m, j < n
// Ap: (kc, MR) packed A sliver (alpha already folded in, rows >= m zero-padded),
// Bp: (kc, NR) packed B sliver (columns >= n zero-padded), both 64-byte aligned.
// C: (m, n) with row stride ldc, m <= MR, n <= NR. beta == 0 never reads C.
using sgemm_ukernel_fn = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                                  float beta, int64_t m, int64_t n);

// 12 x 32: 24 zmm accumulators + 2 for the B row + 1 broadcast, under the 32 zmm registers.
constexpr int kAvx512MR = 12, kAvx512NR = 32;
void sgemm_ukernel_avx512(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                          float beta, int64_t m, int64_t n);

// 6 x 16: 12 ymm accumulators + 2 for the B row + 1 broadcast, under the 16 ymm registers.
constexpr int kAvx2MR = 6, kAvx2NR = 16;
void sgemm_ukernel_avx2(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                        float beta, int64_t m, int64_t n);

}  // namespace dino::cpu
