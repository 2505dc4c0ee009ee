// What the engine needs from a device besides kernels: raw memory, copies, and why a device is or is
// not usable. The CPU backend is always built; the CUDA backend only when nvcc was found at build time,
// and even then it may be unusable at run time (no GPU, no driver, no cuBLAS), which is reported, never fatal.
#pragma once
#include <cstddef>
#include <string>

#include "dino/status.h"
#include "dino/tensor.h"

namespace dino {

// Raw memory straight from the system or driver (the caching allocator sits on top of these).
Status device_malloc(Device device, size_t bytes, void** out);
void device_free(Device device, void* ptr);
Status device_memset_zero(Device device, void* ptr, size_t bytes);
// Any direction between host and devices; synchronous with respect to the host.
Status copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

struct CudaStatus {
  bool compiled = false;      // CUDA sources built into this addon
  bool usable = false;        // a device and its runtime answered
  int device_count = 0;
  std::string reason;         // why not usable, or a description of device 0
  bool cublas_loaded = false;
  std::string cublas_path;    // the library that was loaded
  std::string cublas_reason;  // why it was not
  bool emulated = false;      // the CUDA emulation's device, which runs kernels on the CPU (tests)
};
// Whether float32 GEMMs on a GPU may use TF32 tensor cores (10-bit mantissa products, float32 sums),
// as torch.backends.cuda.matmul.allow_tf32. Off by default, so results match the CPU's to float32
// rounding; the CPU ignores it.
void set_allow_tf32(bool allow);
bool allow_tf32();

// Probes once (cheap after the first call). Never fails: the answer says what is missing.
CudaStatus cuda_status();

}  // namespace dino
