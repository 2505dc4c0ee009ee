// Device memory and copies. The CPU side is plain aligned malloc; the CUDA side is forwarded to
// native/cuda when it was compiled in, and is an kUnsupported error naming the reason when not.
#include "dino/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#ifdef DINO_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

namespace dino {
namespace {

// 64 bytes: a cache line and an AVX-512 register, so kernels may use aligned loads on fresh buffers.
constexpr size_t kCpuAlignment = 64;

#ifndef DINO_WITH_CUDA
Status cuda_not_built(Device d) {
  return Status(Code::kUnsupported,
                str("device ", d.name(), " is not available: this addon was built without CUDA "
                    "(nvcc was not on PATH when it was built)"));
}
#endif

std::atomic<bool> g_allow_tf32{false};

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

Status device_malloc(Device device, size_t bytes, void** out) {
  if (device.type == DeviceType::kCPU) {
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    *out = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
    if (!*out) return Status(Code::kOutOfMemory, str("the system refused ", bytes, " bytes"));
    return Status::OK();
  }
#ifdef DINO_WITH_CUDA
  return cuda::malloc(device.index, bytes, out);
#else
  return cuda_not_built(device);
#endif
}

void device_free(Device device, void* ptr) {
  if (device.type == DeviceType::kCPU) {
    std::free(ptr);
    return;
  }
#ifdef DINO_WITH_CUDA
  cuda::free(device.index, ptr);
#endif
}

Status device_memset_zero(Device device, void* ptr, size_t bytes) {
  if (device.type == DeviceType::kCPU) {
    std::memset(ptr, 0, bytes);
    return Status::OK();
  }
#ifdef DINO_WITH_CUDA
  return cuda::memset_zero(device.index, ptr, bytes);
#else
  return cuda_not_built(device);
#endif
}

Status copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return Status::OK();
  if (dst_device.type == DeviceType::kCPU && src_device.type == DeviceType::kCPU) {
    std::memcpy(dst, src, bytes);
    return Status::OK();
  }
#ifdef DINO_WITH_CUDA
  return cuda::copy(dst, dst_device, src, src_device, bytes);
#else
  return cuda_not_built(dst_device.type == DeviceType::kCPU ? src_device : dst_device);
#endif
}

CudaStatus cuda_status() {
#ifdef DINO_WITH_CUDA
  CudaStatus s = cuda::probe();
#ifdef DINO_CUDA_EMULATION
  s.emulated = true;
#endif
  return s;
#else
  CudaStatus s;
  s.reason = "built without CUDA (nvcc was not on PATH at build time)";
  return s;
#endif
}

}  // namespace dino
