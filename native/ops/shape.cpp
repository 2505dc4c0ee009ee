// Concatenation, slicing along one axis and permutation of the dimensions (contiguous copies).
#include <algorithm>

#include "../cpu/shape.h"
#include "../cuda/shape.h"
#include "dino/op.h"

namespace dino {
namespace {

// A Python slice bound: negative counts from the end, then clamped to [0, n].
int64_t slice_bound(int64_t v, int64_t n) { return v < 0 ? std::max<int64_t>(0, v + n) : std::min(v, n); }

// concat(xs..., {axis}): the inputs' shapes agree except along axis (which may be negative).
Status concat_op(OpContext& ctx) {
  DINO_CHECK(!ctx.inputs.empty(), kInvalidArgument, "concat needs at least one input");
  const Tensor& first = ctx.in(0);
  DINO_CHECK(first.dim() >= 1, kShapeMismatch, "cannot concatenate 0-dimensional tensors");
  int64_t axis_attr = 0, axis = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("axis", &axis_attr));
  DINO_RETURN_IF_ERROR(normalize_axis(axis_attr, first.dim(), &axis));
  Shape shape = first.shape;
  shape[axis] = 0;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const Tensor& x = ctx.in(i);
    DINO_RETURN_IF_ERROR(expect_f32(x, str("xs", i).c_str()));
    bool fits = x.dim() == first.dim();
    for (int64_t d = 0; fits && d < x.dim(); ++d) fits = d == axis || x.shape[d] == first.shape[d];
    DINO_CHECK(fits, kShapeMismatch, "xs", i, " has shape ", shape_str(x.shape), " but xs0 has ",
               shape_str(first.shape), ": shapes must agree except along axis ", axis);
    shape[axis] += x.shape[axis];
  }
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &out));
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, shape.size());
  int64_t at = 0;
  for (const Tensor& x : ctx.inputs) {
    if (ctx.device.type == DeviceType::kCUDA)
      DINO_CUDA_LAUNCH(cuda::copy_axis_range(ctx.device.index, out.f32(), shape[axis], at, x.f32(), x.shape[axis], 0,
                                             x.shape[axis], outer, inner));
    else
      cpu::copy_axis_range(out.f32(), shape[axis], at, x.f32(), x.shape[axis], 0, x.shape[axis], outer, inner);
    at += x.shape[axis];
  }
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// slice(x, {axis, start, end}) = x[..., start:end, ...] along axis, with Python's rules for negative
// and out-of-range bounds (step 1; an empty range gives a zero-length axis).
Status slice_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_CHECK(x.dim() >= 1, kShapeMismatch, "cannot slice a 0-dimensional tensor");
  int64_t axis_attr = 0, axis = 0, start = 0, end = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("axis", &axis_attr));
  DINO_RETURN_IF_ERROR(normalize_axis(axis_attr, x.dim(), &axis));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("start", &start));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("end", &end));
  const int64_t n = x.shape[axis];
  start = slice_bound(start, n);
  const int64_t len = std::max<int64_t>(0, slice_bound(end, n) - start);
  Shape shape = x.shape;
  shape[axis] = len;
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &out));
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, shape.size());
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::copy_axis_range(ctx.device.index, out.f32(), len, 0, x.f32(), n, start, len, outer, inner));
  else
    cpu::copy_axis_range(out.f32(), len, 0, x.f32(), n, start, len, outer, inner);
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// slice_backward(dy, {axis, start, size}) -> dx: dy placed at start along axis of a zero tensor whose
// axis has `size` elements. start follows the forward op's rules, so the forward attribute is reused.
Status slice_backward_op(OpContext& ctx) {
  const Tensor& dy = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_CHECK(dy.dim() >= 1, kShapeMismatch, "dy must have at least one dimension");
  int64_t axis_attr = 0, axis = 0, start = 0, size = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("axis", &axis_attr));
  DINO_RETURN_IF_ERROR(normalize_axis(axis_attr, dy.dim(), &axis));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("start", &start));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("size", &size));
  DINO_CHECK(size >= 0, kInvalidArgument, "size must be non-negative, got ", size);
  start = slice_bound(start, size);
  const int64_t len = dy.shape[axis];
  DINO_CHECK(start + len <= size, kShapeMismatch, "a slice of ", len, " elements starting at ", start,
             " does not fit in an axis of ", size);
  Shape shape = dy.shape;
  shape[axis] = size;
  Tensor dx;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &dx));
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, shape.size());
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::slice_backward(ctx.device.index, dx.f32(), dy.f32(), outer, size, start, len, inner));
  else
    cpu::slice_backward(dx.f32(), dy.f32(), outer, size, start, len, inner);
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

// permute(x, {dims}) -> y with y.shape[k] = x.shape[dims[k]], contiguous. dims may be negative.
Status permute_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  std::vector<int64_t> dims;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_ints("dims", &dims));
  DINO_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), kInvalidArgument, "dims has ", dims.size(),
             " entries for a tensor with ", x.dim(), " dimensions");
  std::vector<bool> seen(x.dim(), false);
  Shape shape(x.dim());
  for (size_t k = 0; k < dims.size(); ++k) {
    DINO_RETURN_IF_ERROR(normalize_axis(dims[k], x.dim(), &dims[k]));
    DINO_CHECK(!seen[dims[k]], kInvalidArgument, "dims is not a permutation: dimension ", dims[k],
               " appears twice");
    seen[dims[k]] = true;
    shape[k] = x.shape[dims[k]];
  }
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &out));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::permute(ctx.device.index, out.f32(), x.f32(), x.shape, dims));
  else
    cpu::permute(out.f32(), x.f32(), x.shape, dims);
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

DINO_REGISTER_OP("concat", concat_op, "xs...");
DINO_REGISTER_OP("slice", slice_op, "x");
DINO_REGISTER_OP("slice_backward", slice_backward_op, "dy");
DINO_REGISTER_OP("permute", permute_op, "x");

}  // namespace
}  // namespace dino
