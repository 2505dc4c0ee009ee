// The CUDA backend as the rest of the engine sees it. This header is plain C++ (included by g++-built
// files); the implementation is in runtime.cu (CUDA runtime, statically linked) and cublas_loader.cpp
// (cuBLAS / cuBLASLt opened with dlopen at run time, so the addon loads where neither exists).
#pragma once
#include <cstddef>

#include "dino/device.h"
#include "dino/status.h"

namespace dino::cuda {

// Every call first checks the device answers (probe().usable) and that `index` exists, and fails with
// kUnsupported and the probe's reason otherwise. All device work is queued on the device's one stream
// (common.cuh), so it runs in the order it was issued; the host only waits where it needs a result.
Status malloc(int index, size_t bytes, void** out);  // kOutOfMemory names the request and free memory
void free(int index, void* ptr);                     // waits for the device to finish with the block
Status memset_zero(int index, void* ptr, size_t bytes);
// Host<->device and device<->device. Returns once host memory has been read (upload) or written
// (download), so the caller may reuse or read it; uploads go through pinned staging buffers and do not
// wait for queued kernels. Device-side effects are ordered by the stream.
Status copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// The first call initialises the runtime (creating device 0's context) and, when a device is usable,
// loads cuBLAS; later calls return the same answer. Thread-safe.
CudaStatus probe();

}  // namespace dino::cuda
