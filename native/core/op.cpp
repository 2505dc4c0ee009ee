#include "dino/op.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <unordered_map>

namespace dino {
namespace {

// Function-local so that registrars in other translation units can run in any order.
std::unordered_map<std::string, OpDef>& registry() {
  static std::unordered_map<std::string, OpDef> r;
  return r;
}

const char* type_name(const AttrValue& v) {
  switch (v.index()) {
    case 0: return "number";
    case 1: return "boolean";
    case 2: return "string";
    default: return "number array";
  }
}

template <typename T>
Status get_typed(const std::map<std::string, AttrValue>& values, const std::string& name, const T** out,
                 const char* want) {
  auto it = values.find(name);
  DINO_CHECK(it != values.end(), kInvalidArgument, "missing attribute '", name, "'");
  *out = std::get_if<T>(&it->second);
  DINO_CHECK(*out, kInvalidArgument, "attribute '", name, "' must be a ", want, ", got a ",
             type_name(it->second));
  return Status::OK();
}

Status to_int(const std::string& name, double v, int64_t* out) {
  DINO_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15, kInvalidArgument,
             "attribute '", name, "' must be an integer, got ", v);
  *out = static_cast<int64_t>(v);
  return Status::OK();
}

// Strided -> contiguous copy on the CPU, one element at a time: views are rare, this stays simple.
Status make_contiguous(const Tensor& t, Tensor* out) {
  DINO_CHECK(t.device().type == DeviceType::kCPU, kUnsupported,
             "non-contiguous tensors on ", t.device().name(), " are not supported");
  DINO_RETURN_IF_ERROR(empty(t.shape, t.dtype, t.device(), out));
  const size_t es = dtype_size(t.dtype);
  const int64_t n = t.numel(), nd = t.dim();
  std::vector<int64_t> idx(nd, 0);
  const char* src = static_cast<const char*>(t.storage->data);
  char* dst = static_cast<char*>(out->raw());
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = t.offset;
    for (int64_t d = 0; d < nd; ++d) off += idx[d] * t.strides[d];
    std::memcpy(dst + i * es, src + off * es, es);
    for (int64_t d = nd - 1; d >= 0 && ++idx[d] == t.shape[d]; --d) idx[d] = 0;
  }
  return Status::OK();
}

std::string describe_inputs(const OpDef& def, const std::vector<Tensor>& inputs) {
  std::string r;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name;
    if (i < def.input_names.size()) name = def.input_names[i];
    else name = def.input_names.empty() ? "input" : def.input_names.back();
    if (name.size() > 3 && name.compare(name.size() - 3, 3, "...") == 0)
      name = name.substr(0, name.size() - 3) + std::to_string(i + 1 - def.input_names.size());
    r += (i ? ", " : "") + (inputs[i].defined() ? inputs[i].describe(name) : name + " (disposed)");
  }
  return r;
}

}  // namespace

Status Attrs::get_double(const std::string& name, double* out) const {
  const double* v = nullptr;
  DINO_RETURN_IF_ERROR(get_typed(values_, name, &v, "number"));
  *out = *v;
  return Status::OK();
}

Status Attrs::get_double(const std::string& name, double* out, double fallback) const {
  if (!has(name)) {
    *out = fallback;
    return Status::OK();
  }
  return get_double(name, out);
}

Status Attrs::get_int(const std::string& name, int64_t* out) const {
  double v = 0;
  DINO_RETURN_IF_ERROR(get_double(name, &v));
  return to_int(name, v, out);
}

Status Attrs::get_int(const std::string& name, int64_t* out, int64_t fallback) const {
  if (!has(name)) {
    *out = fallback;
    return Status::OK();
  }
  return get_int(name, out);
}

Status Attrs::get_nonnegative(const std::string& name, double* out, double fallback) const {
  DINO_RETURN_IF_ERROR(get_double(name, out, fallback));
  DINO_CHECK(std::isfinite(*out) && *out >= 0, kInvalidArgument, "attribute '", name,
             "' must be a finite number >= 0, got ", *out);
  return Status::OK();
}

Status Attrs::get_bool(const std::string& name, bool* out, bool fallback) const {
  if (!has(name)) {
    *out = fallback;
    return Status::OK();
  }
  const bool* v = nullptr;
  DINO_RETURN_IF_ERROR(get_typed(values_, name, &v, "boolean"));
  *out = *v;
  return Status::OK();
}

Status Attrs::get_string(const std::string& name, std::string* out) const {
  const std::string* v = nullptr;
  DINO_RETURN_IF_ERROR(get_typed(values_, name, &v, "string"));
  *out = *v;
  return Status::OK();
}

Status Attrs::get_doubles(const std::string& name, std::vector<double>* out) const {
  const std::vector<double>* v = nullptr;
  DINO_RETURN_IF_ERROR(get_typed(values_, name, &v, "number array"));
  *out = *v;
  return Status::OK();
}

Status Attrs::get_ints(const std::string& name, std::vector<int64_t>* out) const {
  std::vector<double> v;
  DINO_RETURN_IF_ERROR(get_doubles(name, &v));
  out->resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) DINO_RETURN_IF_ERROR(to_int(name, v[i], &(*out)[i]));
  return Status::OK();
}

OpRegistrar::OpRegistrar(OpDef def) {
  std::string name = def.name;
  registry().emplace(std::move(name), std::move(def));
}

const OpDef* find_op(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (auto& [name, def] : registry()) names.push_back(name);
  return names;
}

Status run_op(const std::string& name, OpContext& ctx) {
  const OpDef* def = find_op(name);
  if (!def) return Status(Code::kInvalidArgument, str("unknown op '", name, "'"));
  const auto& names = def->input_names;
  bool variadic = !names.empty() && names.back().size() > 3 &&
                  names.back().compare(names.back().size() - 3, 3, "...") == 0;
  size_t fixed = variadic ? names.size() - 1 : names.size();
  const std::string context = str(name, "(", describe_inputs(*def, ctx.inputs), ")");
  if (ctx.inputs.size() < fixed || (!variadic && ctx.inputs.size() != fixed))
    return Status(Code::kInvalidArgument, str("expects ", variadic ? "at least " : "", fixed,
                                              " inputs, got ", ctx.inputs.size()))
        .with_context(context);
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    Tensor& t = ctx.inputs[i];
    if (!t.defined())
      return Status(Code::kDisposed, str("input ", i, " was disposed")).with_context(context);
    if (i == 0) ctx.device = t.device();
    else if (t.device() != ctx.device)
      return Status(Code::kInvalidArgument, str("inputs are on different devices (", ctx.device.name(),
                                                " and ", t.device().name(), ")"))
          .with_context(context);
    if (!t.is_contiguous()) {
      if (def->in_place)
        return Status(Code::kInvalidArgument, str("input ", i, " is not contiguous and this op writes into it"))
            .with_context(context);
      Tensor c;
      DINO_RETURN_IF_ERROR(make_contiguous(t, &c).with_context(context));
      t = std::move(c);
    }
  }
  // Kernels report failures as statuses; this catches what the C++ library itself may throw outside
  // a parallel region (a std::bad_alloc from a scratch vector), so it too becomes a JS error.
  try {
    return def->fn(ctx).with_context(context);
  } catch (const std::bad_alloc&) {
    return Status(Code::kOutOfMemory, "the system refused memory for scratch space").with_context(context);
  } catch (const std::exception& e) {
    return Status(Code::kInternal, e.what()).with_context(context);
  }
}

Status expect_f32(const Tensor& t, const char* name) {
  DINO_CHECK(t.dtype == DType::kF32, kDtypeMismatch, name, " must be float32, got ", dtype_name(t.dtype),
             " (bfloat16/float16 are storage types: cast first)");
  return Status::OK();
}

Status expect_dim(const Tensor& t, int64_t dim, const char* name) {
  DINO_CHECK(t.dim() == dim, kShapeMismatch, name, " must have ", dim, " dimensions, got ",
             shape_str(t.shape));
  return Status::OK();
}

Status expect_shape(const Tensor& t, const Shape& shape, const char* name) {
  DINO_CHECK(t.shape == shape, kShapeMismatch, name, " must have shape ", shape_str(shape), ", got ",
             shape_str(t.shape));
  return Status::OK();
}

Status rows_and_width(const Tensor& t, const char* name, int64_t* rows, int64_t* width) {
  DINO_CHECK(t.dim() >= 1, kShapeMismatch, name, " must have at least 1 dimension (the last axis is the one ",
             "the op works along), got a scalar");
  *width = t.size(-1);
  *rows = prod(t.shape, 0, t.shape.size() - 1);
  return Status::OK();
}

Status normalize_axis(int64_t axis, int64_t dim, int64_t* out) {
  DINO_CHECK(axis >= -dim && axis < dim, kOutOfRange, "axis ", axis, " is out of range for ", dim,
             " dimensions");
  *out = axis < 0 ? axis + dim : axis;
  return Status::OK();
}

Status new_output(OpContext& ctx, const Shape& shape, Tensor* out) {
  return empty(shape, DType::kF32, ctx.device, out);
}

Status no_kernel(const OpContext& ctx) {
  return Status(Code::kUnsupported, str("no kernel for device ", ctx.device.name(), " in this build"));
}

int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

}  // namespace dino
