// CPU single-precision GEMM: a packed, cache-blocked kernel with AVX-512 / AVX2 micro-kernels chosen
// at run time, so the addon needs no system BLAS and still runs on CPUs without AVX-512.
#pragma once
#include <cstdint>

namespace dino::cpu {

// For each b in [0, batch):
//   C_b = alpha * op(A_b) @ op(B_b) + beta * C_b            (row-major)
// op(A_b) is (M,K): A_b = A + b*strideA is (M,K) with row stride lda, or (K,M) when transA.
// op(B_b) is (K,N): B_b = B + b*strideB is (K,N) with row stride ldb, or (N,K) when transB.
// C_b = C + b*strideC is (M,N) with row stride ldc. beta == 0 never reads C (NaNs in C are ignored).
// A stride of 0 broadcasts that operand over the batch. Threads: OpenMP, over the batch and tiles.
void sgemm_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA,
                   const float* B, int64_t ldb, int64_t strideB, float beta,
                   float* C, int64_t ldc, int64_t strideC, int64_t batch);

// The micro-kernel picked for this CPU: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

}  // namespace dino::cpu
