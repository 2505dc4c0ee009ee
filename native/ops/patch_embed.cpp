// ViT patch embedding: Conv2d(C, D, kernel=p, stride=p) followed by flatten(2).transpose(1, 2).
#include "../cpu/patch_embed.h"
#include "../cuda/patch_embed.h"
#include "dino/op.h"

namespace dino {
namespace {

// x (B, C, H, W) and weight (D, C, p, p): the geometry, or an error naming the mismatch.
Status patch_geometry(const Tensor& x, const Tensor& weight, cpu::PatchGeometry* g) {
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_f32(weight, "weight"));
  DINO_CHECK(x.dim() == 4, kShapeMismatch, "x must be an image batch (B, C, H, W), got ", shape_str(x.shape));
  DINO_CHECK(weight.dim() == 4, kShapeMismatch, "weight must be (D, C, p, p), got ", shape_str(weight.shape));
  DINO_CHECK(weight.size(2) == weight.size(3) && weight.size(2) > 0, kShapeMismatch,
             "weight must have a square, non-empty kernel (D, C, p, p), got ", shape_str(weight.shape));
  DINO_CHECK(weight.size(1) == x.size(1), kShapeMismatch, "weight has ", weight.size(1), " input channels, x has ",
             x.size(1));
  *g = {x.size(0), x.size(1), x.size(2), x.size(3), weight.size(2)};
  DINO_CHECK(g->H >= g->p && g->W >= g->p, kShapeMismatch, "the image (", g->H, "x", g->W,
             ") is smaller than one ", g->p, "x", g->p, " patch");
  return Status::OK();
}

// patch_embed(x, weight, bias) -> y (B, N, D), N = (H/p) * (W/p) patches in row-major order
Status patch_embed_op(OpContext& ctx) {
  const Tensor &x = ctx.in(0), &weight = ctx.in(1), &bias = ctx.in(2);
  cpu::PatchGeometry g;
  DINO_RETURN_IF_ERROR(patch_geometry(x, weight, &g));
  const int64_t D = weight.size(0);
  DINO_RETURN_IF_ERROR(expect_f32(bias, "bias"));
  DINO_RETURN_IF_ERROR(expect_shape(bias, {D}, "bias"));
  Tensor y, scratch;
  DINO_RETURN_IF_ERROR(new_output(ctx, {g.B, g.patches(), D}, &y));
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  if (!on_cuda && ctx.device.type != DeviceType::kCPU) return no_kernel(ctx);
  DINO_RETURN_IF_ERROR(
      new_output(ctx, {on_cuda ? cuda::patch_embed_forward_scratch(g) : cpu::patch_embed_scratch(g)}, &scratch));
  if (on_cuda)
    DINO_CUDA_LAUNCH(cuda::patch_embed_forward(ctx.device.index, y.f32(), x.f32(), weight.f32(), bias.f32(),
                                               scratch.f32(), g, D));
  else
    cpu::patch_embed_forward(y.f32(), x.f32(), weight.f32(), bias.f32(), scratch.f32(), g, D);
  ctx.outputs.push_back(std::move(y));
  return Status::OK();
}

// patch_embed_backward(dy, x, weight, {inputGrad = true}) -> [dx (B, C, H, W),] dweight (D, C, p, p), dbias (D)
// Without inputGrad, dx is neither computed nor returned.
Status patch_embed_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &x = ctx.in(1), &weight = ctx.in(2);
  cpu::PatchGeometry g;
  DINO_RETURN_IF_ERROR(patch_geometry(x, weight, &g));
  const int64_t D = weight.size(0);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_RETURN_IF_ERROR(expect_shape(dy, {g.B, g.patches(), D}, "dy"));
  bool input_grad = true;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_bool("inputGrad", &input_grad, true));
  Tensor dx, dweight, dbias, scratch;
  if (input_grad) DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  DINO_RETURN_IF_ERROR(new_output(ctx, weight.shape, &dweight));
  DINO_RETURN_IF_ERROR(new_output(ctx, {D}, &dbias));
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  if (!on_cuda && ctx.device.type != DeviceType::kCPU) return no_kernel(ctx);
  DINO_RETURN_IF_ERROR(
      new_output(ctx, {on_cuda ? cuda::patch_embed_backward_scratch(g, D) : cpu::patch_embed_scratch(g)}, &scratch));
  if (on_cuda)
    DINO_CUDA_LAUNCH(cuda::patch_embed_backward(ctx.device.index, input_grad ? dx.f32() : nullptr, dweight.f32(),
                                                dbias.f32(), dy.f32(), x.f32(), weight.f32(), scratch.f32(), g, D));
  else
    cpu::patch_embed_backward(input_grad ? dx.f32() : nullptr, dweight.f32(), dbias.f32(), dy.f32(), x.f32(),
                              weight.f32(), scratch.f32(), g, D);
  if (input_grad) ctx.outputs.push_back(std::move(dx));
  ctx.outputs.push_back(std::move(dweight));
  ctx.outputs.push_back(std::move(dbias));
  return Status::OK();
}

DINO_REGISTER_OP("patch_embed", patch_embed_op, "x", "weight", "bias");
DINO_REGISTER_OP("patch_embed_backward", patch_embed_backward_op, "dy", "x", "weight");

}  // namespace
}  // namespace dino
