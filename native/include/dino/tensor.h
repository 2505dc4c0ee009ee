// Tensors: a strided view (shape, strides, offset, dtype) of a reference-counted Storage on a device.
// Kernels take contiguous float32 buffers; views (reshape) share storage, everything else allocates.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dino/status.h"

namespace dino {

// bf16 and fp16 are storage types: they can be created, copied between devices and cast to and from
// float32; compute kernels take float32 and say so for the others.
enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2 };
size_t dtype_size(DType d);
const char* dtype_name(DType d);
bool parse_dtype(const std::string& name, DType* out);

enum class DeviceType : uint8_t { kCPU = 0, kCUDA = 1 };
// CUDA devices cuda:0 .. cuda:15; parse_device refuses others, so per-device tables can be fixed arrays.
constexpr int kMaxCudaDevices = 16;
struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const;  // "cpu", "cuda:0"
};
Status parse_device(const std::string& name, Device* out);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
// Number of elements, or an error when a dimension is negative or the product overflows.
Status checked_numel(const Shape& s, int64_t* out);

// Memory on one device, returned to the caching allocator when the last view goes away.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  Storage(void* d, size_t b, Device dev) : data(d), bytes(b), device(dev) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;        // in elements
  int64_t offset = 0;   // in elements
  DType dtype = DType::kF32;

  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  int64_t numel() const;
  int64_t size(int64_t axis) const { return shape[axis < 0 ? axis + dim() : axis]; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool defined() const { return storage != nullptr; }
  bool is_contiguous() const;
  Device device() const { return storage ? storage->device : Device{}; }
  void* raw() const { return static_cast<char*>(storage->data) + offset * dtype_size(dtype); }
  float* f32() const { return static_cast<float*>(raw()); }
  // "x[2, 3] f32 cpu"
  std::string describe(const std::string& name) const;
};

Shape contiguous_strides(const Shape& shape);

// A new contiguous tensor; its contents are uninitialised.
Status empty(const Shape& shape, DType dtype, Device device, Tensor* out);
Status zeros(const Shape& shape, DType dtype, Device device, Tensor* out);
// The same storage seen with another shape (numel must match; t must be contiguous).
Status reshape_view(const Tensor& t, const Shape& shape, Tensor* out);

}  // namespace dino
