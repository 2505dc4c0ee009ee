// Elementwise arithmetic with NumPy broadcasting, reductions over axes, reshape and dtype casts.
#include <algorithm>

#include "../cpu/elementwise.h"
#include "../cuda/elementwise.h"
#include "dino/device.h"
#include "dino/op.h"

namespace dino {
namespace {

// The broadcast of two shapes (NumPy rules), or an error naming both.
Status broadcast_shapes(const Shape& a, const Shape& b, Shape* out) {
  const size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DINO_CHECK(da == db || da == 1 || db == 1, kShapeMismatch, "shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together");
    r[i] = da == 1 ? db : da;
  }
  *out = r;
  return Status::OK();
}

// The GPU's name for a binary op (the CUDA header is plain C++ but keeps its own enum).
constexpr cuda::BinaryOp cuda_op(cpu::BinaryOp op) {
  switch (op) {
    case cpu::BinaryOp::kAdd: return cuda::BinaryOp::kAdd;
    case cpu::BinaryOp::kSub: return cuda::BinaryOp::kSub;
    case cpu::BinaryOp::kMul: return cuda::BinaryOp::kMul;
    case cpu::BinaryOp::kDiv: return cuda::BinaryOp::kDiv;
  }
  return cuda::BinaryOp::kAdd;
}

// Strides reading `in` as if it had shape `out` (0 along broadcast dimensions).
Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape st(out.size(), 0);
  Shape cs = contiguous_strides(in);
  const size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[lead + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

template <cpu::BinaryOp kind>
Status binary_op(OpContext& ctx) {
  const Tensor &a = ctx.in(0), &b = ctx.in(1);
  DINO_RETURN_IF_ERROR(expect_f32(a, "a"));
  DINO_RETURN_IF_ERROR(expect_f32(b, "b"));
  Shape shape;
  DINO_RETURN_IF_ERROR(broadcast_shapes(a.shape, b.shape, &shape));
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &out));
  const Shape sa = broadcast_strides(a.shape, shape), sb = broadcast_strides(b.shape, shape);
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::binary_forward(ctx.device.index, cuda_op(kind), out.f32(), a.f32(), b.f32(), shape, sa, sb));
  else
    cpu::binary_forward(kind, out.f32(), a.f32(), b.f32(), shape, sa, sb);
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// broadcast_to(x, {shape})
Status broadcast_to_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  Shape shape, check;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_ints("shape", &shape));
  DINO_RETURN_IF_ERROR(broadcast_shapes(x.shape, shape, &check));
  DINO_CHECK(check == shape, kShapeMismatch, "cannot broadcast ", shape_str(x.shape), " to ", shape_str(shape));
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &out));
  const Shape sx = broadcast_strides(x.shape, shape);
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::broadcast_copy(ctx.device.index, out.f32(), x.f32(), shape, sx));
  else
    cpu::broadcast_copy(out.f32(), x.f32(), shape, sx);
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// affine(x, {alpha, beta}) = alpha * x + beta: scaling, negation and adding a scalar.
Status affine_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  double alpha = 1, beta = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("alpha", &alpha, 1.0));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("beta", &beta, 0.0));
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &out));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::affine_forward(ctx.device.index, out.f32(), x.f32(), x.numel(), static_cast<float>(alpha),
                                          static_cast<float>(beta)));
  else
    cpu::affine_forward(out.f32(), x.f32(), x.numel(), static_cast<float>(alpha), static_cast<float>(beta));
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// sum(x, {axes, keepdim}) and mean: axes may be negative, empty means all. Each run of consecutive
// axes is one (outer, R, inner) reduction; separate runs are reduced one after the other.
template <bool kMean>
Status reduce_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  std::vector<int64_t> axes;
  bool keepdim = false;
  if (ctx.attrs.has("axes")) DINO_RETURN_IF_ERROR(ctx.attrs.get_ints("axes", &axes));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_bool("keepdim", &keepdim, false));
  std::vector<bool> reduce(x.dim(), axes.empty());
  for (int64_t a : axes) {
    int64_t ax = 0;
    DINO_RETURN_IF_ERROR(normalize_axis(a, x.dim(), &ax));
    DINO_CHECK(!reduce[ax], kInvalidArgument, "axis ", a, " is listed twice");
    reduce[ax] = true;
  }
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  Tensor cur = x;
  Shape kept_shape = x.shape;  // the keepdim shape, updated as axes are reduced
  int64_t count = 1;
  for (int64_t d = 0; d < x.dim();) {
    if (!reduce[d]) {
      ++d;
      continue;
    }
    int64_t e = d;
    while (e < x.dim() && reduce[e]) ++e;
    const int64_t outer = prod(kept_shape, 0, d), R = prod(kept_shape, d, e), inner = prod(kept_shape, e, x.dim());
    count *= R;
    for (int64_t k = d; k < e; ++k) kept_shape[k] = 1;
    Tensor next;
    DINO_RETURN_IF_ERROR(new_output(ctx, kept_shape, &next));
    if (on_cuda) {
      // The GPU splits long reductions with few outputs into chunks; their partial sums need scratch.
      const int64_t scratch_bytes = cuda::sum_axis_scratch_bytes(outer, R, inner);
      Tensor scratch;
      if (scratch_bytes > 0)
        DINO_RETURN_IF_ERROR(new_output(ctx, {(scratch_bytes + 3) / 4}, &scratch));
      DINO_CUDA_LAUNCH(cuda::sum_axis_forward(ctx.device.index, next.f32(), cur.f32(), outer, R, inner, 1.0f,
                                              scratch.defined() ? scratch.raw() : nullptr));
    } else {
      cpu::sum_axis_forward(next.f32(), cur.f32(), outer, R, inner, 1.0f);
    }
    cur = std::move(next);
    d = e;
  }
  if (cur.storage == x.storage) {  // nothing reduced (a rank-0 input or no axes on rank 0): copy
    Tensor c;
    DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &c));
    if (on_cuda) DINO_CUDA_LAUNCH(cuda::affine_forward(ctx.device.index, c.f32(), x.f32(), x.numel(), 1.0f, 0.0f));
    else cpu::affine_forward(c.f32(), x.f32(), x.numel(), 1.0f, 0.0f);
    cur = std::move(c);
  }
  if (kMean && count != 1) {
    if (on_cuda)
      DINO_CUDA_LAUNCH(cuda::affine_forward(ctx.device.index, cur.f32(), cur.f32(), cur.numel(), 1.0f / count, 0.0f));
    else
      cpu::affine_forward(cur.f32(), cur.f32(), cur.numel(), 1.0f / count, 0.0f);
  }
  Shape out_shape;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!reduce[d] || keepdim) out_shape.push_back(kept_shape[d]);
  Tensor out;
  DINO_RETURN_IF_ERROR(reshape_view(cur, out_shape, &out));
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// reshape(x, {shape}): a view; one dimension may be -1 (inferred).
Status reshape_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  Shape shape;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_ints("shape", &shape));
  int64_t infer = -1;
  Shape known_dims = shape;  // the -1 counted as 1, so the product is checked like any shape's
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != -1) continue;
    DINO_CHECK(infer < 0, kInvalidArgument, "only one dimension can be -1 in ", shape_str(shape));
    infer = static_cast<int64_t>(i);
    known_dims[i] = 1;
  }
  int64_t known = 0;
  DINO_RETURN_IF_ERROR(checked_numel(known_dims, &known));
  if (infer >= 0) {
    DINO_CHECK(known != 0 && x.numel() % known == 0, kShapeMismatch, "cannot reshape ", shape_str(x.shape),
               " to ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  Tensor out;
  DINO_RETURN_IF_ERROR(reshape_view(x, shape, &out));
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// cast(x, {dtype}): float32 <-> bfloat16 / float16 (a copy when the dtype does not change).
Status cast_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  std::string name;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_string("dtype", &name));
  DType to;
  DINO_CHECK(parse_dtype(name, &to), kInvalidArgument, "unknown dtype '", name, "'");
  DINO_CHECK(x.dtype == DType::kF32 || to == DType::kF32 || x.dtype == to, kUnsupported, "cast from ",
             dtype_name(x.dtype), " to ", dtype_name(to), ": go through float32");
  Tensor out;
  DINO_RETURN_IF_ERROR(empty(x.shape, to, ctx.device, &out));
  const int64_t n = x.numel();
  auto* o16 = static_cast<uint16_t*>(out.raw());
  const auto* x16 = static_cast<const uint16_t*>(x.raw());
  if (x.dtype == to) {
    DINO_RETURN_IF_ERROR(copy_bytes(out.raw(), ctx.device, x.raw(), ctx.device, x.nbytes()));
  } else if (ctx.device.type == DeviceType::kCUDA) {
    if (to == DType::kBF16) DINO_CUDA_LAUNCH(cuda::f32_to_bf16(ctx.device.index, o16, x.f32(), n));
    else if (to == DType::kF16) DINO_CUDA_LAUNCH(cuda::f32_to_f16(ctx.device.index, o16, x.f32(), n));
    else if (x.dtype == DType::kBF16) DINO_CUDA_LAUNCH(cuda::bf16_to_f32(ctx.device.index, out.f32(), x16, n));
    else DINO_CUDA_LAUNCH(cuda::f16_to_f32(ctx.device.index, out.f32(), x16, n));
  } else {
    if (to == DType::kBF16) cpu::f32_to_bf16(o16, x.f32(), n);
    else if (to == DType::kF16) cpu::f32_to_f16(o16, x.f32(), n);
    else if (x.dtype == DType::kBF16) cpu::bf16_to_f32(out.f32(), x16, n);
    else cpu::f16_to_f32(out.f32(), x16, n);
  }
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

DINO_REGISTER_OP("add", binary_op<cpu::BinaryOp::kAdd>, "a", "b");
DINO_REGISTER_OP("sub", binary_op<cpu::BinaryOp::kSub>, "a", "b");
DINO_REGISTER_OP("mul", binary_op<cpu::BinaryOp::kMul>, "a", "b");
DINO_REGISTER_OP("div", binary_op<cpu::BinaryOp::kDiv>, "a", "b");
DINO_REGISTER_OP("broadcast_to", broadcast_to_op, "x");
DINO_REGISTER_OP("affine", affine_op, "x");
DINO_REGISTER_OP("sum", reduce_op<false>, "x");
DINO_REGISTER_OP("mean", reduce_op<true>, "x");
DINO_REGISTER_OP("reshape", reshape_op, "x");
DINO_REGISTER_OP("cast", cast_op, "x");

}  // namespace
}  // namespace dino
