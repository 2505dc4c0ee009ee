// Node-API glue only: argument checks, tensor handles, and Status -> JS exception. Everything the
// engine computes happens behind run_op(); this file knows no op by name.
#include <napi.h>

#include <omp.h>

#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "dino/allocator.h"
#include "dino/device.h"
#include "dino/gemm.h"
#include "dino/op.h"
#include "dino/tensor.h"

namespace {

using dino::Code;
using dino::Status;
using dino::Tensor;

const char* error_code(Code c) {
  switch (c) {
    case Code::kInvalidArgument: return "ERR_DINO_INVALID_ARGUMENT";
    case Code::kShapeMismatch: return "ERR_DINO_SHAPE_MISMATCH";
    case Code::kDtypeMismatch: return "ERR_DINO_DTYPE_MISMATCH";
    case Code::kOutOfRange: return "ERR_DINO_OUT_OF_RANGE";
    case Code::kOutOfMemory: return "ERR_DINO_OUT_OF_MEMORY";
    case Code::kDisposed: return "ERR_DINO_DISPOSED";
    case Code::kUnsupported: return "ERR_DINO_UNSUPPORTED";
    case Code::kDeviceError: return "ERR_DINO_DEVICE";
    default: return "ERR_DINO_INTERNAL";
  }
}

// Out-of-range axes become RangeError, wrong argument kinds TypeError, everything else Error; all carry
// a `code` so callers can branch without parsing the message.
[[noreturn]] void throw_status(Napi::Env env, const Status& s) {
  Napi::Error err = s.code() == Code::kOutOfRange ? Napi::RangeError::New(env, s.message())
                                                  : Napi::Error::New(env, s.message());
  err.Set("code", Napi::String::New(env, error_code(s.code())));
  throw err;
}

void check(Napi::Env env, const Status& s) {
  if (!s.ok()) throw_status(env, s);
}

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

// V8 is told about native allocations so that its heuristics see them; the allocator's in-use bytes
// are the truth, reported as a running delta after every call that can change them.
void report_external_memory(Napi::Env env) {
  static std::atomic<int64_t> reported{0};
  int64_t now = static_cast<int64_t>(dino::allocator_stats(dino::Device{}).in_use);
  int64_t delta = now - reported.exchange(now);
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

dino::Shape to_shape(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsArray()) type_error(env, std::string(what) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  dino::Shape shape(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) type_error(env, std::string(what) + " must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < 9.0e15 && d == std::floor(d)))
      type_error(env, std::string(what) + " must hold non-negative integers, got " + std::to_string(d));
    shape[i] = static_cast<int64_t>(d);
  }
  return shape;
}

dino::Device to_device(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) type_error(env, "device must be a string ('cpu', 'cuda' or 'cuda:N')");
  dino::Device d;
  check(env, dino::parse_device(v.As<Napi::String>().Utf8Value(), &d));
  return d;
}

dino::DType to_dtype(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) type_error(env, "dtype must be a string");
  std::string name = v.As<Napi::String>().Utf8Value();
  dino::DType d;
  if (!dino::parse_dtype(name, &d))
    type_error(env, "unknown dtype '" + name + "' (expected float32, bfloat16 or float16)");
  return d;
}

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeTensor",
                       {InstanceAccessor<&NativeTensor::Shape>("shape"),
                        InstanceAccessor<&NativeTensor::DType>("dtype"),
                        InstanceAccessor<&NativeTensor::Device>("device"),
                        InstanceAccessor<&NativeTensor::Disposed>("disposed"),
                        InstanceAccessor<&NativeTensor::StorageId>("storageId"),
                        InstanceMethod<&NativeTensor::ToArray>("toArray"),
                        InstanceMethod<&NativeTensor::Reshape>("reshape"),
                        InstanceMethod<&NativeTensor::To>("to"),
                        InstanceMethod<&NativeTensor::Dispose>("dispose")});
  }

  explicit NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {}

  static Napi::Object Wrap(Napi::Env env, Tensor t);
  // The tensor behind a handle (undefined once disposed), or nullptr when v is not a tensor handle.
  static const Tensor* Peek(Napi::Env env, const Napi::Value& v);

  // Garbage collection is only a safety net: tensors are disposed by their scope long before.
  void Finalize(Napi::Env env) override {
    tensor_ = Tensor();
    report_external_memory(env);
  }

 private:
  const Tensor& live(Napi::Env env) const {
    if (!tensor_.defined())
      throw_status(env, Status(Code::kDisposed, "tensor was disposed and cannot be used again"));
    return tensor_;
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    const Tensor& t = live(info.Env());
    Napi::Array a = Napi::Array::New(info.Env(), t.shape.size());
    for (size_t i = 0; i < t.shape.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), double(t.shape[i])));
    return a;
  }
  Napi::Value DType(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), dino::dtype_name(live(info.Env()).dtype));
  }
  Napi::Value Device(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), live(info.Env()).device().name());
  }
  // Identifies the memory behind the tensor: views share it. Lets the autograd layer make sure no two
  // gradients it hands out alias each other (an in-place update of one must not change another).
  Napi::Value StorageId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(live(info.Env()).storage.get())));
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !tensor_.defined());
  }

  // Copies to a fresh host array: Float32Array for float32, Uint16Array (raw bits) for bf16/fp16.
  Napi::Value ToArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Tensor& t = live(env);
    size_t n = static_cast<size_t>(t.numel());
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, t.nbytes());
    check(env, dino::copy_bytes(buf.Data(), dino::Device{}, t.raw(), t.device(), t.nbytes())
                   .with_context("toArray " + t.describe("x")));
    if (t.dtype == dino::DType::kF32) return Napi::Float32Array::New(env, n, buf, 0);
    return Napi::Uint16Array::New(env, n, buf, 0);
  }

  Napi::Value Reshape(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor r;
    check(env, dino::reshape_view(live(env), to_shape(env, info[0], "shape"), &r));
    return Wrap(env, std::move(r));
  }

  Napi::Value To(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Tensor& t = live(env);
    dino::Device d = to_device(env, info[0]);
    Tensor r;
    check(env, dino::empty(t.shape, t.dtype, d, &r));
    check(env, dino::copy_bytes(r.raw(), d, t.raw(), t.device(), t.nbytes())
                   .with_context("to(" + d.name() + ") " + t.describe("x")));
    report_external_memory(env);
    return Wrap(env, std::move(r));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    tensor_ = Tensor();
    report_external_memory(info.Env());
    return info.Env().Undefined();
  }

  Tensor tensor_;
};

struct AddonData {
  Napi::FunctionReference tensor_ctor;
};

Napi::Object NativeTensor::Wrap(Napi::Env env, Tensor t) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->tensor_ctor.New({});
  Unwrap(obj)->tensor_ = std::move(t);
  return obj;
}

const Tensor* NativeTensor::Peek(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(env.GetInstanceData<AddonData>()->tensor_ctor.Value()))
    return nullptr;
  return &Unwrap(v.As<Napi::Object>())->tensor_;
}

// fromArray(data: Float32Array | Uint16Array, shape, dtype, device)
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) type_error(env, "data must be a Float32Array (or Uint16Array for 16-bit dtypes)");
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  dino::Shape shape = to_shape(env, info[1], "shape");
  dino::DType dtype = to_dtype(env, info[2]);
  dino::Device device = to_device(env, info[3]);
  napi_typedarray_type want = dtype == dino::DType::kF32 ? napi_float32_array : napi_uint16_array;
  if (arr.TypedArrayType() != want)
    type_error(env, std::string("a ") + dino::dtype_name(dtype) + " tensor takes a " +
                        (dtype == dino::DType::kF32 ? "Float32Array" : "Uint16Array"));
  int64_t n = 0;
  check(env, dino::checked_numel(shape, &n));
  if (static_cast<size_t>(n) != arr.ElementLength())
    throw_status(env, Status(Code::kShapeMismatch,
                             dino::str("shape ", dino::shape_str(shape), " needs ", n, " values, got ",
                                       arr.ElementLength())));
  Tensor t;
  check(env, dino::empty(shape, dtype, device, &t));
  const char* src = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  check(env, dino::copy_bytes(t.raw(), device, src, dino::Device{}, t.nbytes()));
  report_external_memory(env);
  return NativeTensor::Wrap(env, std::move(t));
}

dino::Attrs to_attrs(Napi::Env env, const Napi::Value& v) {
  dino::Attrs attrs;
  if (v.IsUndefined() || v.IsNull()) return attrs;
  if (!v.IsObject()) type_error(env, "attrs must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value e = o.Get(k);
    if (e.IsNumber()) attrs.set(k, e.As<Napi::Number>().DoubleValue());
    else if (e.IsBoolean()) attrs.set(k, e.As<Napi::Boolean>().Value());
    else if (e.IsString()) attrs.set(k, e.As<Napi::String>().Utf8Value());
    else if (e.IsArray()) {
      Napi::Array a = e.As<Napi::Array>();
      std::vector<double> xs(a.Length());
      for (uint32_t j = 0; j < a.Length(); ++j) {
        if (!a.Get(j).IsNumber()) type_error(env, "attribute '" + k + "' must hold numbers only");
        xs[j] = a.Get(j).As<Napi::Number>().DoubleValue();
      }
      attrs.set(k, std::move(xs));
    } else if (!e.IsUndefined()) {
      type_error(env, "attribute '" + k + "' must be a number, boolean, string or array of numbers");
    }
  }
  return attrs;
}

// run(name, inputs: NativeTensor[], attrs?) -> NativeTensor[]
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) type_error(env, "op name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!info[1].IsArray()) type_error(env, name + ": inputs must be an array of tensors");
  Napi::Array in = info[1].As<Napi::Array>();
  dino::OpContext ctx;
  ctx.inputs.reserve(in.Length());
  for (uint32_t i = 0; i < in.Length(); ++i) {
    // A disposed input goes in undefined: run_op names the op and all its inputs in the error.
    const Tensor* t = NativeTensor::Peek(env, in.Get(i));
    if (!t) type_error(env, name + ": input " + std::to_string(i) + " must be a tensor");
    ctx.inputs.push_back(*t);
  }
  ctx.attrs = to_attrs(env, info[2]);
  Status s = dino::run_op(name, ctx);
  ctx.inputs.clear();
  report_external_memory(env);
  check(env, s);
  Napi::Array out = Napi::Array::New(env, ctx.outputs.size());
  for (size_t i = 0; i < ctx.outputs.size(); ++i) out.Set(i, NativeTensor::Wrap(env, std::move(ctx.outputs[i])));
  return out;
}

Napi::Value Empty(const Napi::CallbackInfo& info, bool zero) {
  Napi::Env env = info.Env();
  dino::Shape shape = to_shape(env, info[0], "shape");
  dino::DType dtype = to_dtype(env, info[1]);
  dino::Device device = to_device(env, info[2]);
  Tensor t;
  check(env, zero ? dino::zeros(shape, dtype, device, &t) : dino::empty(shape, dtype, device, &t));
  report_external_memory(env);
  return NativeTensor::Wrap(env, std::move(t));
}

// memoryStats(device) -> { inUse, cached, peak, limit, allocs, cacheHits } in bytes
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  dino::AllocatorStats s = dino::allocator_stats(to_device(env, info[0]));
  Napi::Object o = Napi::Object::New(env);
  o.Set("inUse", double(s.in_use));
  o.Set("cached", double(s.cached));
  o.Set("peak", double(s.peak));
  o.Set("limit", double(s.limit));
  o.Set("allocs", double(s.allocs));
  o.Set("cacheHits", double(s.cache_hits));
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  dino::allocator_empty_cache(to_device(info.Env(), info[0]));
  return info.Env().Undefined();
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  dino::allocator_reset_peak(to_device(info.Env(), info[0]));
  return info.Env().Undefined();
}

// buildInfo() -> how this addon was built and what it finds on this machine
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", DINO_VERSION);
  o.Set("gemmKernel", dino::cpu::sgemm_kernel_name());
  o.Set("threads", omp_get_max_threads());
  dino::CudaStatus c = dino::cuda_status();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", c.compiled);
  cuda.Set("usable", c.usable);
  cuda.Set("deviceCount", c.device_count);
  cuda.Set("reason", c.reason);
  cuda.Set("cublasLoaded", c.cublas_loaded);
  cuda.Set("cublasPath", c.cublas_path);
  cuda.Set("cublasReason", c.cublas_reason);
  cuda.Set("emulated", c.emulated);
  cuda.Set("allowTF32", dino::allow_tf32());
  o.Set("cuda", cuda);
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // More threads than a few per core only slows the kernels down, and OpenMP ends the process when it
  // cannot create a thread: refuse absurd counts here.
  const int most = 4 * omp_get_num_procs();
  const double n = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(n >= 1 && n <= most && n == std::floor(n)))
    throw Napi::RangeError::New(env, "setNumThreads takes an integer from 1 to " + std::to_string(most));
  omp_set_num_threads(static_cast<int>(n));
  return env.Undefined();
}

// setAllowTF32(bool): whether GPU float32 GEMMs may use TF32 tensor cores (off by default).
Napi::Value SetAllowTF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "setAllowTF32 takes a boolean");
  dino::set_allow_tf32(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  std::vector<std::string> names = dino::op_names();
  Napi::Array a = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) a.Set(i, names[i]);
  return a;
}

}  // namespace

// The image kernels' functions (bindings/image.cpp).
void InitImage(Napi::Env env, Napi::Object exports);

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->tensor_ctor = Napi::Persistent(NativeTensor::Init(env));
  env.SetInstanceData(data);
  exports.Set("NativeTensor", data->tensor_ctor.Value());
  exports.Set("fromArray", Napi::Function::New(env, FromArray));
  exports.Set("empty", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Empty(i, false); }));
  exports.Set("zeros", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Empty(i, true); }));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("resetPeak", Napi::Function::New(env, ResetPeak));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("setAllowTF32", Napi::Function::New(env, SetAllowTF32));
  exports.Set("opNames", Napi::Function::New(env, OpNames));
  InitImage(env, exports);
  return exports;
}

NODE_API_MODULE(dino, Init)
