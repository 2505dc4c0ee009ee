// The CUDA backend as the rest of the engine sees it. This header is plain C++ (included by g++-built
// files); the implementation is in runtime.cu (CUDA runtime, statically linked) and cublas_loader.cpp
// (cuBLAS / cuBLASLt opened with dlopen at run time, so the addon loads where neither exists).
#pragma once
#include <cstddef>

#include "dino/device.h"
#include "dino/status.h"

namespace dino::cuda {

// Every call first checks the device answers (probe().usable) and fails with its reason otherwise.
Status malloc(int index, size_t bytes, void** out);
void free(int index, void* ptr);
Status memset_zero(int index, void* ptr, size_t bytes);
// Host<->device and device<->device; large host transfers are staged through pinned buffers.
Status copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// The first call initialises the runtime and tries to load cuBLAS; later calls return the same answer.
CudaStatus probe();

}  // namespace dino::cuda
