// L2 normalisation along the last axis, as torch.nn.functional.normalize(x, p=2, dim=-1, eps): the
// DINO head's bottleneck features and the evaluation features.
#include "../cpu/l2norm.h"
#include "../cuda/l2norm.h"
#include "dino/op.h"

namespace dino {
namespace {

// The eps attribute (default 1e-12, PyTorch's), which both passes need to pick the same branch.
Status get_eps(const OpContext& ctx, float* eps) {
  double v = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_nonnegative("eps", &v, 1e-12));
  *eps = static_cast<float>(v);
  return Status::OK();
}

// l2_normalize(x, {eps = 1e-12}) -> y, norm
//   x (..., C) -> y (..., C) = x / max(||x||, eps), norm (rows) = ||x|| per row, rows = prod(...).
Status l2_normalize_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  int64_t rows = 0, C = 0;
  DINO_RETURN_IF_ERROR(rows_and_width(x, "x", &rows, &C));
  float eps = 0;
  DINO_RETURN_IF_ERROR(get_eps(ctx, &eps));
  Tensor y, norm;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &y));
  DINO_RETURN_IF_ERROR(new_output(ctx, {rows}, &norm));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::l2_normalize_forward(ctx.device.index, y.f32(), norm.f32(), x.f32(), rows, C, eps));
  else
    cpu::l2_normalize_forward(y.f32(), norm.f32(), x.f32(), rows, C, eps);
  ctx.outputs = {std::move(y), std::move(norm)};
  return Status::OK();
}

// l2_normalize_backward(dy, x, norm, {eps = 1e-12}) -> dx
//   dy (..., C), x (..., C), norm (rows) from l2_normalize with the same eps -> dx (..., C).
Status l2_normalize_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &x = ctx.in(1), &norm = ctx.in(2);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_f32(norm, "norm"));
  int64_t rows = 0, C = 0;
  DINO_RETURN_IF_ERROR(rows_and_width(x, "x", &rows, &C));
  DINO_RETURN_IF_ERROR(expect_shape(dy, x.shape, "dy"));
  DINO_RETURN_IF_ERROR(expect_shape(norm, {rows}, "norm"));
  float eps = 0;
  DINO_RETURN_IF_ERROR(get_eps(ctx, &eps));
  Tensor dx;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::l2_normalize_backward(ctx.device.index, dx.f32(), dy.f32(), x.f32(), norm.f32(), rows, C,
                                                 eps));
  else
    cpu::l2_normalize_backward(dx.f32(), dy.f32(), x.f32(), norm.f32(), rows, C, eps);
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

DINO_REGISTER_OP("l2_normalize", l2_normalize_op, "x");
DINO_REGISTER_OP("l2_normalize_backward", l2_normalize_backward_op, "dy", "x", "norm");

}  // namespace
}  // namespace dino
