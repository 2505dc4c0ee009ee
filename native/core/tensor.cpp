#include "dino/tensor.h"

#include <cstring>
#include <limits>

#include "dino/allocator.h"
#include "dino/device.h"

namespace dino {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kShapeMismatch: return "shape mismatch";
    case Code::kDtypeMismatch: return "dtype mismatch";
    case Code::kOutOfRange: return "out of range";
    case Code::kOutOfMemory: return "out of memory";
    case Code::kDisposed: return "disposed";
    case Code::kUnsupported: return "unsupported";
    case Code::kDeviceError: return "device error";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

size_t dtype_size(DType d) { return d == DType::kF32 ? 4 : 2; }

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "float32";
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
  }
  return "?";
}

bool parse_dtype(const std::string& name, DType* out) {
  if (name == "float32") *out = DType::kF32;
  else if (name == "bfloat16") *out = DType::kBF16;
  else if (name == "float16") *out = DType::kF16;
  else return false;
  return true;
}

std::string Device::name() const {
  return type == DeviceType::kCPU ? std::string("cpu") : str("cuda:", index);
}

Status parse_device(const std::string& name, Device* out) {
  if (name == "cpu") {
    *out = Device{DeviceType::kCPU, 0};
    return Status::OK();
  }
  if (name == "cuda") {
    *out = Device{DeviceType::kCUDA, 0};
    return Status::OK();
  }
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    const int index = std::stoi(name.substr(5));
    DINO_CHECK(index < kMaxCudaDevices, kInvalidArgument, "device index ", index, " is beyond the ",
               kMaxCudaDevices, " devices this engine supports");
    *out = Device{DeviceType::kCUDA, index};
    return Status::OK();
  }
  return Status(Code::kInvalidArgument, str("unknown device '", name, "' (expected cpu, cuda or cuda:N)"));
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Status checked_numel(const Shape& s, int64_t* out) {
  int64_t n = 1;
  for (int64_t d : s) {
    DINO_CHECK(d >= 0, kInvalidArgument, "negative dimension in shape ", shape_str(s));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 8 / d)
      return Status(Code::kOutOfMemory, str("shape ", shape_str(s), " has too many elements"));
    n *= d;
  }
  *out = n;
  return Status::OK();
}

Storage::~Storage() { deallocate(device, data, bytes); }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool Tensor::is_contiguous() const { return strides == contiguous_strides(shape); }

std::string Tensor::describe(const std::string& name) const {
  return str(name, shape_str(shape), " ", dtype_name(dtype), " ", device().name());
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

Status empty(const Shape& shape, DType dtype, Device device, Tensor* out) {
  int64_t n = 0;
  DINO_RETURN_IF_ERROR(checked_numel(shape, &n));
  size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  void* p = nullptr;
  DINO_RETURN_IF_ERROR(allocate(device, bytes, &p).with_context(
      str("allocating ", shape_str(shape), " ", dtype_name(dtype), " on ", device.name())));
  Tensor t;
  t.storage = std::make_shared<Storage>(p, bytes, device);
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  t.dtype = dtype;
  *out = std::move(t);
  return Status::OK();
}

Status zeros(const Shape& shape, DType dtype, Device device, Tensor* out) {
  DINO_RETURN_IF_ERROR(empty(shape, dtype, device, out));
  return device_memset_zero(device, out->raw(), out->nbytes());
}

Status reshape_view(const Tensor& t, const Shape& shape, Tensor* out) {
  int64_t n = 0;
  DINO_RETURN_IF_ERROR(checked_numel(shape, &n));
  DINO_CHECK(n == t.numel(), kShapeMismatch, "cannot reshape ", shape_str(t.shape), " (", t.numel(),
             " elements) to ", shape_str(shape), " (", n, " elements)");
  DINO_CHECK(t.is_contiguous(), kInvalidArgument, "reshape needs a contiguous tensor");
  Tensor r = t;
  r.shape = shape;
  r.strides = contiguous_strides(shape);
  *out = std::move(r);
  return Status::OK();
}

}  // namespace dino
