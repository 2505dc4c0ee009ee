// Row-major batched SGEMM on cuBLAS. cuBLAS is column-major; a row-major (R, C) matrix with row stride
// ld is the column-major (C, R) matrix with the same ld, its transpose. So the row-major product
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: the operands swap places and
// keep their own transpose flags. Plain C++: only the runtime API and the cuBLAS table are used.
#include "gemm.h"

#include <atomic>
#include <climits>
#include <mutex>

#include "common.cuh"
#include "cublas_loader.h"
#include "dino/allocator.h"
#include "dino/device.h"

namespace dino::cuda {
namespace {

// cuBLAS asks for 32 MiB on Hopper; smaller workspaces make it fall back to slower kernels.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kMaxDevices = 64;
// Older cuBLAS releases mishandled more than 65535 batch entries in one call (the grid's z limit);
// larger batches go in slices, which costs nothing measurable.
constexpr int64_t kMaxBatchPerCall = 65535;

// One handle per device, created on first use and kept for the life of the process: the handle and
// its workspace are bound to the device's one stream, so every GEMM is ordered with the kernels
// around it. cuBLAS handles may be shared by threads as long as their settings do not change, and
// they never change after creation.
struct HandleSlot {
  std::mutex mu;
  std::atomic<cublasHandle_t> handle{nullptr};
};
HandleSlot g_slots[kMaxDevices];

Status get_handle(const CublasApi* api, int device, cudaStream_t stream, cublasHandle_t* out) {
  DINO_CHECK(device >= 0 && device < kMaxDevices, kInvalidArgument, "cuda:", device,
             ": device index out of range for cuBLAS");
  HandleSlot& slot = g_slots[device];
  cublasHandle_t h = slot.handle.load(std::memory_order_acquire);
  if (!h) {
    std::lock_guard<std::mutex> lock(slot.mu);
    h = slot.handle.load(std::memory_order_relaxed);
    if (!h) {
      // Created with `device` current (use_device made it so), which binds the handle to it.
      DINO_CUBLAS_CHECK(api->cublasCreate_v2(&h));
      // cublasSetStream resets the workspace to cuBLAS's own pool, so the stream is set first.
      cublasStatus_t st = api->cublasSetStream_v2(h, stream);
      if (st != CUBLAS_STATUS_SUCCESS) {
        api->cublasDestroy_v2(h);
        return cublas_error(st, "cublasSetStream_v2");
      }
      if (api->cublasSetWorkspace_v2) {
        // From the caching allocator, so it counts in its statistics and limit; never returned.
        void* ws = nullptr;
        Status s = allocate(Device{DeviceType::kCUDA, device}, kWorkspaceBytes, &ws);
        if (!s.ok()) {
          api->cublasDestroy_v2(h);
          return s.with_context("cuBLAS workspace");
        }
        st = api->cublasSetWorkspace_v2(h, ws, kWorkspaceBytes);
        if (st != CUBLAS_STATUS_SUCCESS) {
          api->cublasDestroy_v2(h);
          deallocate(Device{DeviceType::kCUDA, device}, ws, kWorkspaceBytes);
          return cublas_error(st, "cublasSetWorkspace_v2");
        }
      }
      slot.handle.store(h, std::memory_order_release);
    }
  }
  *out = h;
  return Status::OK();
}

// The row stride cuBLAS gets for a row-major (rows, width) operand. cuBLAS wants ld >= max(1, width)
// even where it is never used: with a single row any ld describes the same matrix, so it becomes the
// width. With more rows, a shorter ld (overlapping rows) has no cuBLAS equivalent.
Status leading_dim(int64_t ld, int64_t rows, int64_t width, const char* name, int* out) {
  const int64_t need = width > 1 ? width : 1;
  const int64_t eff = rows <= 1 ? need : ld;
  DINO_CHECK(eff >= need, kInvalidArgument, "GEMM operand ", name, ": row stride ", ld,
             " is shorter than its rows (", width, ")");
  DINO_CHECK(eff <= INT_MAX, kInvalidArgument, "GEMM operand ", name, ": row stride ", ld,
             " exceeds cuBLAS's limit of ", INT_MAX);
  *out = static_cast<int>(eff);
  return Status::OK();
}

// C_b = beta * C_b, what the product reduces to when there is nothing to multiply (K == 0 or
// alpha == 0), as on the CPU: beta == 0 writes zeros without reading C; A and B are never read.
Status scale_c(int device, cudaStream_t stream, int64_t M, int64_t N, float beta, float* C, int64_t ldc,
               int64_t strideC, int64_t batch) {
  if (beta == 1.0f) return Status::OK();  // x * 1 == x for every float, NaN included
  // ldc is the effective one (leading_dim): at least N, so every call below is a valid 2-D memset.
  const size_t width = static_cast<size_t>(N) * sizeof(float), pitch = static_cast<size_t>(ldc) * sizeof(float);
  if (beta == 0.0f) {
    if (batch == 1 || strideC == M * ldc) {
      // The batch entries are consecutive rows with one pitch: one call for all of them.
      DINO_CUDA_CHECK(cudaMemset2DAsync(C, pitch, 0, width, static_cast<size_t>(M * batch), stream));
    } else {
      for (int64_t b = 0; b < batch; ++b)
        DINO_CUDA_CHECK(cudaMemset2DAsync(C + b * strideC, pitch, 0, width, static_cast<size_t>(M), stream));
    }
    return Status::OK();
  }
  std::string why;
  const CublasApi* api = cublas_api(&why);
  if (!api) return Status(Code::kUnsupported, why);
  cublasHandle_t h;
  DINO_RETURN_IF_ERROR(get_handle(api, device, stream, &h));
  // A rare path (no GEMM in the engine has K == 0 with beta != 0): whole matrices when their rows are
  // contiguous, otherwise the shorter of rows or columns one call each.
  for (int64_t b = 0; b < batch; ++b) {
    float* c = C + b * strideC;
    if (ldc == N && M * N <= INT_MAX) {
      DINO_CUBLAS_CHECK(api->cublasSscal_v2(h, static_cast<int>(M * N), &beta, c, 1));
    } else if (M <= N) {
      for (int64_t i = 0; i < M; ++i)
        DINO_CUBLAS_CHECK(api->cublasSscal_v2(h, static_cast<int>(N), &beta, c + i * ldc, 1));
    } else {
      for (int64_t j = 0; j < N; ++j)
        DINO_CUBLAS_CHECK(api->cublasSscal_v2(h, static_cast<int>(M), &beta, c + j, static_cast<int>(ldc)));
    }
  }
  return Status::OK();
}

}  // namespace

Status sgemm_batched(int device, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb,
                     int64_t strideB, float beta, float* C, int64_t ldc, int64_t strideC, int64_t batch) {
  DINO_CHECK(M >= 0 && N >= 0 && K >= 0 && batch >= 0, kInvalidArgument, "GEMM sizes must not be negative, got M=",
             M, " N=", N, " K=", K, " batch=", batch);
  if (M == 0 || N == 0 || batch == 0) return Status::OK();
  DINO_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, kInvalidArgument, "GEMM of ", M, "x", N, "x", K,
             ": each dimension must be at most ", INT_MAX, " for cuBLAS");
  DINO_CHECK(batch <= INT_MAX, kInvalidArgument, "GEMM batch of ", batch, " exceeds cuBLAS's limit of ", INT_MAX);
  int ldc_i;
  DINO_RETURN_IF_ERROR(leading_dim(ldc, M, N, "C", &ldc_i));
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (K == 0 || alpha == 0.0f) return scale_c(device, stream, M, N, beta, C, ldc_i, strideC, batch);

  int lda_i, ldb_i;
  DINO_RETURN_IF_ERROR(leading_dim(lda, transA ? K : M, transA ? M : K, "A", &lda_i));
  DINO_RETURN_IF_ERROR(leading_dim(ldb, transB ? N : K, transB ? K : N, "B", &ldb_i));
  std::string why;
  const CublasApi* api = cublas_api(&why);
  if (!api) return Status(Code::kUnsupported, why);
  cublasHandle_t h;
  DINO_RETURN_IF_ERROR(get_handle(api, device, stream, &h));
  const cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // Column-major: C^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M).
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatchPerCall) {
    const int64_t n = batch - b0 < kMaxBatchPerCall ? batch - b0 : kMaxBatchPerCall;
    DINO_CUBLAS_CHECK(api->cublasGemmStridedBatchedEx(
        h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
        static_cast<int>(M), static_cast<int>(K), &alpha, B + b0 * strideB, CUDA_R_32F, ldb_i, strideB,
        A + b0 * strideA, CUDA_R_32F, lda_i, strideA, &beta, C + b0 * strideC, CUDA_R_32F, ldc_i, strideC,
        static_cast<int>(n), compute, CUBLAS_GEMM_DEFAULT));
  }
  return Status::OK();
}

}  // namespace dino::cuda
