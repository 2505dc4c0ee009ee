// Single-precision GEMM on a GPU through cuBLAS (loaded at run time), with the row-major interface of
// the CPU's dino::cpu::sgemm_batched so that every GEMM-based op calls both the same way.
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// For each b in [0, batch), on device `device`'s stream:
//   C_b = alpha * op(A_b) @ op(B_b) + beta * C_b            (row-major)
// op(A_b) is (M,K): A_b = A + b*strideA is (M,K) with row stride lda, or (K,M) when transA.
// op(B_b) is (K,N): B_b = B + b*strideB is (K,N) with row stride ldb, or (N,K) when transB.
// C_b = C + b*strideC is (M,N) with row stride ldc. A stride of 0 broadcasts that operand.
// beta == 0 never reads C; K == 0 or alpha == 0 reads neither A nor B (C = beta * C).
// Float32 products and sums, or TF32 tensor cores when dino::allow_tf32().
// Errors: kInvalidArgument for a size, batch or row stride beyond INT_MAX (cuBLAS's int arguments) or a
// row stride shorter than its row (cuBLAS cannot express overlapping rows); kUnsupported, with the
// reason, when cuBLAS could not be loaded.
Status sgemm_batched(int device, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb,
                     int64_t strideB, float beta, float* C, int64_t ldc, int64_t strideC, int64_t batch);

}  // namespace dino::cuda
