// Layer normalisation over the last axis (the ViT's LayerNorm; DINO uses eps 1e-6), forward and backward.
#include "../cpu/layernorm.h"
#include "../cuda/layernorm.h"
#include "dino/op.h"

namespace dino {
namespace {

// The normalised width C must not be empty (a mean over nothing).
Status layer_rows(const Tensor& x, int64_t* rows, int64_t* C) {
  DINO_RETURN_IF_ERROR(rows_and_width(x, "x", rows, C));
  DINO_CHECK(*C > 0, kShapeMismatch, "the normalised (last) dimension of x is empty: ", shape_str(x.shape));
  return Status::OK();
}

// layer_norm(x, weight, bias, {eps = 1e-6}) -> y, mean, rstd
//   x (..., C), weight (C), bias (C) -> y (..., C), mean (rows), rstd (rows), rows = prod(...).
//   mean and rstd are saved for layer_norm_backward.
Status layer_norm_op(OpContext& ctx) {
  const Tensor &x = ctx.in(0), &weight = ctx.in(1), &bias = ctx.in(2);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_f32(weight, "weight"));
  DINO_RETURN_IF_ERROR(expect_f32(bias, "bias"));
  int64_t rows = 0, C = 0;
  DINO_RETURN_IF_ERROR(layer_rows(x, &rows, &C));
  DINO_RETURN_IF_ERROR(expect_shape(weight, {C}, "weight"));
  DINO_RETURN_IF_ERROR(expect_shape(bias, {C}, "bias"));
  double eps = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_nonnegative("eps", &eps, 1e-6));
  Tensor y, mean, rstd;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &y));
  DINO_RETURN_IF_ERROR(new_output(ctx, {rows}, &mean));
  DINO_RETURN_IF_ERROR(new_output(ctx, {rows}, &rstd));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::layernorm_forward(ctx.device.index, y.f32(), mean.f32(), rstd.f32(), x.f32(),
                                             weight.f32(), bias.f32(), rows, C, static_cast<float>(eps)));
  else
    cpu::layernorm_forward(y.f32(), mean.f32(), rstd.f32(), x.f32(), weight.f32(), bias.f32(), rows, C,
                           static_cast<float>(eps));
  ctx.outputs = {std::move(y), std::move(mean), std::move(rstd)};
  return Status::OK();
}

// layer_norm_backward(dy, x, weight, mean, rstd) -> dx, dweight, dbias
//   dy (..., C), x (..., C), weight (C), mean (rows), rstd (rows) from layer_norm
//   -> dx (..., C), dweight (C), dbias (C).
Status layer_norm_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &x = ctx.in(1), &weight = ctx.in(2), &mean = ctx.in(3), &rstd = ctx.in(4);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_f32(weight, "weight"));
  DINO_RETURN_IF_ERROR(expect_f32(mean, "mean"));
  DINO_RETURN_IF_ERROR(expect_f32(rstd, "rstd"));
  int64_t rows = 0, C = 0;
  DINO_RETURN_IF_ERROR(layer_rows(x, &rows, &C));
  DINO_RETURN_IF_ERROR(expect_shape(dy, x.shape, "dy"));
  DINO_RETURN_IF_ERROR(expect_shape(weight, {C}, "weight"));
  DINO_RETURN_IF_ERROR(expect_shape(mean, {rows}, "mean"));
  DINO_RETURN_IF_ERROR(expect_shape(rstd, {rows}, "rstd"));
  Tensor dx, dweight, dbias;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &dweight));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &dbias));
  if (ctx.device.type == DeviceType::kCUDA) {
    // Room for the partial sums of the deterministic dweight / dbias reduction.
    Tensor scratch;
    DINO_RETURN_IF_ERROR(new_output(ctx, {cuda::layernorm_backward_scratch(rows, C)}, &scratch));
    DINO_CUDA_LAUNCH(cuda::layernorm_backward(ctx.device.index, dx.f32(), dweight.f32(), dbias.f32(), dy.f32(),
                                              x.f32(), weight.f32(), mean.f32(), rstd.f32(), rows, C,
                                              scratch.f32()));
  } else {
    cpu::layernorm_backward(dx.f32(), dweight.f32(), dbias.f32(), dy.f32(), x.f32(), weight.f32(), mean.f32(),
                            rstd.f32(), rows, C);
  }
  ctx.outputs = {std::move(dx), std::move(dweight), std::move(dbias)};
  return Status::OK();
}

DINO_REGISTER_OP("layer_norm", layer_norm_op, "x", "weight", "bias");
DINO_REGISTER_OP("layer_norm_backward", layer_norm_backward_op, "dy", "x", "weight", "mean", "rstd");

}  // namespace
}  // namespace dino
