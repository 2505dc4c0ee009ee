// cuBLAS and cuBLASLt, opened with dlopen at run time rather than linked: the addon must load on machines
// without them, and where they exist they often live only inside Python's site-packages (PyTorch's
// nvidia-* wheels), which the dynamic linker does not search.
//
// No cuBLAS header is needed to build. The few types, constants and functions the engine uses are
// declared here by hand with the values of cublas_api.h / cublasLt.h from cuBLAS 13 (unchanged since
// 11.x, so a cuBLAS 12 found at run time works too). Add what new code needs from the real header, with
// the exact values and signatures; the names are cuBLAS's own so the calls read like its documentation.
#pragma once
#include <driver_types.h>   // cudaStream_t
#include <library_types.h>  // cudaDataType_t: CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14

#include <cstddef>
#include <cstdint>
#include <string>

#include "dino/status.h"

namespace dino::cuda {

// ----------------------------------------------------------------------------------------------------
// cublas_api.h

enum cublasStatus_t : int {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16,
};

enum cublasOperation_t : int { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };

enum cublasMath_t : int {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3,
  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16,  // a flag, or-ed into the others
};

enum cublasComputeType_t : int {
  CUBLAS_COMPUTE_16F = 64,
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_PEDANTIC = 69,
  CUBLAS_COMPUTE_32F_FAST_16F = 74,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,  // fp32 in and out, bf16 tensor cores inside
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,  // fp32 in and out, tf32 tensor cores inside
};

enum cublasGemmAlgo_t : int { CUBLAS_GEMM_DEFAULT = -1, CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99 };

struct cublasContext;
typedef cublasContext* cublasHandle_t;

// ----------------------------------------------------------------------------------------------------
// cublasLt.h

struct cublasLtContext;
typedef cublasLtContext* cublasLtHandle_t;
// The descriptors are fixed-size structs in the real header (so they can live on the stack with the
// *Init functions); through Create/Destroy only pointers to them are handled, so they stay opaque here.
struct cublasLtMatmulDescOpaque_t;
struct cublasLtMatrixLayoutOpaque_t;
struct cublasLtMatmulPreferenceOpaque_t;
typedef cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
typedef cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
typedef cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;

// Passed and returned by value: the layout must match the real header exactly.
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;  // the other fields are valid only when this is CUBLAS_STATUS_SUCCESS
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == 96, "must match cublasLt.h");

// The type each attribute's value must have is in the comment; the size passed must match it exactly.
enum cublasLtMatmulDescAttributes_t : int {
  CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,             // int32_t cublasComputeType_t
  CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,               // int32_t cudaDataType_t
  CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,             // int32_t, default host pointers
  CUBLASLT_MATMUL_DESC_TRANSA = 3,                   // int32_t cublasOperation_t
  CUBLASLT_MATMUL_DESC_TRANSB = 4,                   // int32_t cublasOperation_t
  CUBLASLT_MATMUL_DESC_EPILOGUE = 7,                 // uint32_t cublasLtEpilogue_t
  CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,             // const void*
  CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10,       // int64_t
  CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,    // void*
  CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,         // int64_t
  CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE = 13,  // int64_t
  CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,  // int32_t cudaDataType_t
  CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,          // int32_t cudaDataType_t
};

enum cublasLtMatrixLayoutAttribute_t : int {
  CUBLASLT_MATRIX_LAYOUT_TYPE = 0,                  // uint32_t cudaDataType_t
  CUBLASLT_MATRIX_LAYOUT_ORDER = 1,                 // int32_t cublasLtOrder_t, default column-major
  CUBLASLT_MATRIX_LAYOUT_ROWS = 2,                  // uint64_t
  CUBLASLT_MATRIX_LAYOUT_COLS = 3,                  // uint64_t
  CUBLASLT_MATRIX_LAYOUT_LD = 4,                    // int64_t
  CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,           // int32_t
  CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,  // int64_t, in elements
};

enum cublasLtOrder_t : int { CUBLASLT_ORDER_COL = 0, CUBLASLT_ORDER_ROW = 1 };

enum cublasLtMatmulPreferenceAttributes_t : int {
  CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,          // uint32_t
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,  // uint64_t
};

// GELU here may be the tanh approximation: check against the exact erf GELU on a GPU before fusing it.
enum cublasLtEpilogue_t : int {
  CUBLASLT_EPILOGUE_DEFAULT = 1,
  CUBLASLT_EPILOGUE_BIAS = 4,
  CUBLASLT_EPILOGUE_GELU = 32,
  CUBLASLT_EPILOGUE_GELU_BIAS = 36,
  CUBLASLT_EPILOGUE_GELU_AUX = 160,       // also writes the pre-activation for backward
  CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 164,
  CUBLASLT_EPILOGUE_DGELU = 192,
  CUBLASLT_EPILOGUE_DGELU_BGRAD = 208,
  CUBLASLT_EPILOGUE_BGRADA = 256,         // bias gradient: sums of A's rows
  CUBLASLT_EPILOGUE_BGRADB = 512,         // bias gradient: sums of B's columns
};

// ----------------------------------------------------------------------------------------------------
// The function table. Every pointer is set when cublas_api() returns one, except those marked optional.

struct CublasApi {
  cublasStatus_t (*cublasCreate_v2)(cublasHandle_t* handle);
  cublasStatus_t (*cublasDestroy_v2)(cublasHandle_t handle);
  cublasStatus_t (*cublasSetStream_v2)(cublasHandle_t handle, cudaStream_t stream);
  cublasStatus_t (*cublasSetMathMode)(cublasHandle_t handle, cublasMath_t mode);
  // Optional. Without a user workspace cuBLAS allocates its own per stream.
  cublasStatus_t (*cublasSetWorkspace_v2)(cublasHandle_t handle, void* workspace, size_t bytes);
  // Column-major, as everywhere in cuBLAS: C (m,n) = alpha * op(A) (m,k) * op(B) (k,n) + beta * C.
  cublasStatus_t (*cublasGemmEx)(cublasHandle_t handle, cublasOperation_t transa,
                                 cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                 const void* A, cudaDataType_t Atype, int lda, const void* B,
                                 cudaDataType_t Btype, int ldb, const void* beta, void* C,
                                 cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                                 cublasGemmAlgo_t algo);
  cublasStatus_t (*cublasGemmStridedBatchedEx)(
      cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
      const void* alpha, const void* A, cudaDataType_t Atype, int lda, long long strideA,
      const void* B, cudaDataType_t Btype, int ldb, long long strideB, const void* beta, void* C,
      cudaDataType_t Ctype, int ldc, long long strideC, int batchCount,
      cublasComputeType_t computeType, cublasGemmAlgo_t algo);
  const char* (*cublasGetStatusString)(cublasStatus_t status);  // optional
  // x[i * incx] *= alpha for i in [0, n): C = beta * C where a GEMM has nothing to multiply (K == 0).
  cublasStatus_t (*cublasSscal_v2)(cublasHandle_t handle, int n, const float* alpha, float* x, int incx);

  cublasStatus_t (*cublasLtCreate)(cublasLtHandle_t* handle);
  cublasStatus_t (*cublasLtDestroy)(cublasLtHandle_t handle);
  // D = alpha * op(A) * op(B) + beta * C, then the descriptor's epilogue; C may alias D.
  cublasStatus_t (*cublasLtMatmul)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                   const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc,
                                   const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                                   const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                                   cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
  cublasStatus_t (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t* desc,
                                             cublasComputeType_t computeType,
                                             cudaDataType_t scaleType);
  cublasStatus_t (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t desc);
  cublasStatus_t (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t desc,
                                                   cublasLtMatmulDescAttributes_t attr,
                                                   const void* buf, size_t bytes);
  cublasStatus_t (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                               uint64_t rows, uint64_t cols, int64_t ld);
  cublasStatus_t (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t layout);
  cublasStatus_t (*cublasLtMatrixLayoutSetAttribute)(cublasLtMatrixLayout_t layout,
                                                     cublasLtMatrixLayoutAttribute_t attr,
                                                     const void* buf, size_t bytes);
  cublasStatus_t (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t* pref);
  cublasStatus_t (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t pref);
  cublasStatus_t (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t pref,
                                                         cublasLtMatmulPreferenceAttributes_t attr,
                                                         const void* buf, size_t bytes);
  // Fills up to `requested` results, best first; *returned says how many.
  cublasStatus_t (*cublasLtMatmulAlgoGetHeuristic)(
      cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc,
      cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
      cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t* results,
      int* returned);
  size_t (*cublasLtGetVersion)();  // optional

  std::string path;     // the libcublas that was opened
  std::string lt_path;  // the libcublasLt that was opened
  std::string version;  // "13.1.1" (from cublasLtGetVersion), empty when unknown
};

// Opens the libraries on the first call (about 0.1 s and 200 MB of resident memory) and returns the same
// table afterwards; thread-safe. Null when they cannot be opened, with *why (if given) listing every
// place that was tried. Search order: $DINO_CUBLAS_PATH (a directory, or the libcublas file itself),
// libcublas.so.13 then .12 through the system library path (LD_LIBRARY_PATH, ld.so.cache),
// /usr/local/cuda/lib64 ($CUDA_HOME, $CUDA_PATH), then nvidia/*/lib in Python's site-packages.
const CublasApi* cublas_api(std::string* why);

#ifdef DINO_CUDA_EMULATION
// The CUDA emulation (test/emu) fills the table with its reference implementations instead.
void fill_emulated_cublas(CublasApi* api);
#endif

// Where cublas_api() would look and which files are there, opening nothing: for the report on machines
// where CUDA is not usable, which should not pay for loading cuBLAS.
std::string cublas_search_report();

// "CUBLAS_STATUS_NOT_SUPPORTED"
const char* cublas_status_name(cublasStatus_t s);

// s -> Status(kDeviceError or kOutOfMemory, "<what>: CUBLAS_STATUS_...")
Status cublas_error(cublasStatus_t s, const char* what);

}  // namespace dino::cuda

// DINO_CUBLAS_CHECK(api->cublasLtMatmul(...)); returns a Status from the enclosing function on failure.
#define DINO_CUBLAS_CHECK(expr)                                          \
  do {                                                                   \
    ::dino::cuda::cublasStatus_t dino_cublas_st_ = (expr);               \
    if (dino_cublas_st_ != ::dino::cuda::CUBLAS_STATUS_SUCCESS)          \
      return ::dino::cuda::cublas_error(dino_cublas_st_, #expr);         \
  } while (0)
