// What every CUDA file in native/cuda needs: CUDA errors turned into Status values (a failing call must
// never abort the user's process), and the one stream per device that all work goes to, so kernels,
// copies and cuBLAS calls run in the order the engine issued them without any host synchronisation.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "dino/status.h"

namespace dino::cuda {

// err -> "cudaMalloc: out of memory (cudaErrorMemoryAllocation)". `what` is the failing expression; only
// the function name is kept, the arguments mean nothing to the user. Out-of-memory keeps its own code so
// callers can free caches and retry. Also clears the runtime's last-error slot: an error that has been
// reported here must not be reported a second time by the next launch check.
inline Status cuda_error(cudaError_t err, const char* what) {
  cudaGetLastError();
  std::string call(what);
  size_t paren = call.find('(');
  if (paren != std::string::npos) call.resize(paren);
  // After a kernel faults, every later call on that device fails with the same error: say so once here
  // rather than let the user chase the op that happened to report it.
  bool lost = err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure ||
              err == cudaErrorMisalignedAddress || err == cudaErrorIllegalInstruction ||
              err == cudaErrorHardwareStackError || err == cudaErrorInvalidPc || err == cudaErrorAssert;
  return Status(err == cudaErrorMemoryAllocation ? Code::kOutOfMemory : Code::kDeviceError,
                str(call, ": ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ")",
                    lost ? "; the GPU context is lost, restart the process to use the GPU again" : ""));
}

// Checks that device `index` exists and answers, makes it current for the calling thread, and gives its
// stream. Every launcher starts with it: the engine may be called from more than one thread (async
// workers), and the current device is per thread.
Status use_device(int index, cudaStream_t* stream);

// The stream of device `index` (created on first use). For code that already went through use_device()
// for this device, or holds a tensor there (which did); nullptr, the legacy default stream, when the
// device is not usable. Our streams are blocking streams, so even that stays ordered with them.
cudaStream_t stream(int index);

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace dino::cuda

// DINO_CUDA_CHECK(cudaMemsetAsync(p, 0, n, s)); returns a Status from the enclosing function on failure.
#define DINO_CUDA_CHECK(expr)                                              \
  do {                                                                     \
    cudaError_t dino_cuda_err_ = (expr);                                   \
    if (dino_cuda_err_ != cudaSuccess)                                     \
      return ::dino::cuda::cuda_error(dino_cuda_err_, #expr);              \
  } while (0)

// After kernel<<<...>>>(...): a bad launch configuration shows up here at once; an error while the
// kernel runs shows up at the next call that waits for it (a copy to the host, a synchronise).
#define DINO_CUDA_CHECK_LAUNCH(kernel_name)                                  \
  do {                                                                       \
    cudaError_t dino_cuda_err_ = cudaGetLastError();                         \
    if (dino_cuda_err_ != cudaSuccess)                                       \
      return ::dino::cuda::cuda_error(dino_cuda_err_, "launch of " kernel_name); \
  } while (0)
