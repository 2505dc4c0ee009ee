// The op registry. An op is a named function from input tensors and attributes to output tensors; each
// op family registers its ops from its own file (native/ops/*.cpp), so adding one touches no table.
// The bindings expose the whole registry through one entry point, run(name, inputs, attrs).
#pragma once
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "dino/status.h"
#include "dino/tensor.h"

namespace dino {

using AttrValue = std::variant<double, bool, std::string, std::vector<double>>;

class Attrs {
 public:
  void set(const std::string& name, AttrValue v) { values_[name] = std::move(v); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // Each getter fails with a clear message when the attribute is missing (and has no default) or has
  // the wrong type; integers must be integral numbers.
  Status get_double(const std::string& name, double* out) const;
  Status get_double(const std::string& name, double* out, double fallback) const;
  Status get_int(const std::string& name, int64_t* out) const;
  Status get_int(const std::string& name, int64_t* out, int64_t fallback) const;
  // A finite number >= 0 (epsilons, rates).
  Status get_nonnegative(const std::string& name, double* out, double fallback) const;
  Status get_bool(const std::string& name, bool* out, bool fallback) const;
  Status get_string(const std::string& name, std::string* out) const;
  Status get_ints(const std::string& name, std::vector<int64_t>* out) const;
  Status get_doubles(const std::string& name, std::vector<double>* out) const;

 private:
  std::map<std::string, AttrValue> values_;
};

struct OpContext {
  std::vector<Tensor> inputs;   // made contiguous and checked to share one device before the op runs
  Attrs attrs;
  std::vector<Tensor> outputs;  // filled by the op
  Device device;                // the inputs' device (CPU for ops without inputs)
  const Tensor& in(size_t i) const { return inputs[i]; }
};

using OpFn = Status (*)(OpContext& ctx);

struct OpDef {
  std::string name;
  // Input names for messages; a last name ending in "..." takes any number (>= 0) of further inputs.
  std::vector<std::string> input_names;
  OpFn fn;
  // In-place ops write into their inputs, so a strided input cannot be replaced by a contiguous copy:
  // it is refused instead.
  bool in_place = false;
};

// Runs a registered op: checks the input count, that inputs are defined and share a device, makes them
// contiguous, calls the op and adds the op name and input shapes to any error.
Status run_op(const std::string& name, OpContext& ctx);
const OpDef* find_op(const std::string& name);
std::vector<std::string> op_names();

struct OpRegistrar {
  explicit OpRegistrar(OpDef def);
};

// --- helpers shared by op definitions -------------------------------------------------------------

// The common checks, each with a message naming the tensor.
Status expect_f32(const Tensor& t, const char* name);
Status expect_dim(const Tensor& t, int64_t dim, const char* name);
Status expect_shape(const Tensor& t, const Shape& shape, const char* name);
// For ops over the last axis: width = the last dimension, rows = the product of the others; a scalar
// (which has no last axis) is an error naming t.
Status rows_and_width(const Tensor& t, const char* name, int64_t* rows, int64_t* width);
// Normalises a possibly negative axis against `dim`, or fails with kOutOfRange.
Status normalize_axis(int64_t axis, int64_t dim, int64_t* out);
// An output of the inputs' device and float32.
Status new_output(OpContext& ctx, const Shape& shape, Tensor* out);
// The error an op returns for a device it has no kernel for in this build.
Status no_kernel(const OpContext& ctx);
// Product of dims [begin, end).
int64_t prod(const Shape& s, size_t begin, size_t end);

}  // namespace dino

// An op's CUDA branch: `if (on_cuda) DINO_CUDA_LAUNCH(cuda::gelu_forward(ctx.device.index, ...));`
// runs the launcher (native/cuda/<family>.h) and returns its error; in a build without CUDA no CUDA
// tensor can exist, so the branch is unreachable and only has to compile (the launcher is never named).
#ifdef DINO_WITH_CUDA
#define DINO_CUDA_LAUNCH(expr) DINO_RETURN_IF_ERROR(expr)
#else
#define DINO_CUDA_LAUNCH(expr) \
  return ::dino::Status(::dino::Code::kUnsupported, "this addon was built without CUDA")
#endif

#define DINO_CONCAT_INNER(a, b) a##b
#define DINO_CONCAT(a, b) DINO_CONCAT_INNER(a, b)
// DINO_REGISTER_OP("layer_norm", layer_norm_op, "x", "weight", "bias");  (then the input names)
#define DINO_REGISTER_OP(name, fn, ...)                                  \
  static ::dino::OpRegistrar DINO_CONCAT(dino_op_registrar_, __LINE__)( \
      ::dino::OpDef{name, {__VA_ARGS__}, fn, false})
#define DINO_REGISTER_INPLACE_OP(name, fn, ...)                          \
  static ::dino::OpRegistrar DINO_CONCAT(dino_op_registrar_, __LINE__)( \
      ::dino::OpDef{name, {__VA_ARGS__}, fn, true})
