// Multi-head self-attention on the fused qkv projection, and its backward.
#include <cmath>

#include "../cpu/attention.h"
#include "../cuda/attention.h"
#include "dino/op.h"

namespace dino {
namespace {

struct AttentionDims {
  int64_t B, T, H, hd;
  float scale;
};

// qkv (B, T, 3*D) with D = heads * hd; attrs heads (required), scale (default hd^-0.5).
Status attention_dims(const OpContext& ctx, const Tensor& qkv, AttentionDims* d) {
  DINO_RETURN_IF_ERROR(expect_f32(qkv, "qkv"));
  DINO_CHECK(qkv.dim() == 3, kShapeMismatch, "qkv must be (B, T, 3*D), got ", shape_str(qkv.shape));
  int64_t heads = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("heads", &heads));
  DINO_CHECK(heads >= 1, kInvalidArgument, "heads must be at least 1, got ", heads);
  const int64_t C = qkv.size(2);
  DINO_CHECK(C % (3 * heads) == 0 && C > 0, kShapeMismatch, "the last dimension of qkv (", C,
             ") must be 3 * heads * head_dim with heads = ", heads);
  d->B = qkv.size(0);
  d->T = qkv.size(1);
  // T * T score elements per head must stay countable (only an empty batch could get this far).
  DINO_CHECK(d->T <= (int64_t{1} << 30), kShapeMismatch, "sequence length ", d->T, " is too long");
  d->H = heads;
  d->hd = C / (3 * heads);
  double scale = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("scale", &scale, 1.0 / std::sqrt(static_cast<double>(d->hd))));
  DINO_CHECK(std::isfinite(scale), kInvalidArgument, "scale must be finite, got ", scale);
  d->scale = static_cast<float>(scale);
  return Status::OK();
}

// attention(qkv, {heads, scale?, returnProbs?}) -> out (B, T, D), lse (B, H, T)[, probs (B, H, T, T)]
//   qkv (B, T, 3, H, hd) as the qkv Linear writes it; out (B, T, H, hd) as the projection reads it.
Status attention_op(OpContext& ctx) {
  const Tensor& qkv = ctx.in(0);
  AttentionDims d;
  DINO_RETURN_IF_ERROR(attention_dims(ctx, qkv, &d));
  bool return_probs = false;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_bool("returnProbs", &return_probs, false));
  Tensor out, lse, probs, scratch;
  DINO_RETURN_IF_ERROR(new_output(ctx, {d.B, d.T, d.H * d.hd}, &out));
  DINO_RETURN_IF_ERROR(new_output(ctx, {d.B, d.H, d.T}, &lse));
  if (return_probs) DINO_RETURN_IF_ERROR(new_output(ctx, {d.B, d.H, d.T, d.T}, &probs));
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  if (!on_cuda && ctx.device.type != DeviceType::kCPU) return no_kernel(ctx);
  if (on_cuda) {
    // The GPU gathers q, k, v by head even when the scores go to probs, so it always needs scratch.
    DINO_RETURN_IF_ERROR(
        new_output(ctx, {cuda::attention_forward_scratch(d.B, d.T, d.H, d.hd, return_probs)}, &scratch));
    DINO_CUDA_LAUNCH(cuda::attention_forward(ctx.device.index, out.f32(), lse.f32(),
                                             return_probs ? probs.f32() : nullptr, qkv.f32(), scratch.f32(), d.B,
                                             d.T, d.H, d.hd, d.scale));
  } else {
    if (!return_probs) DINO_RETURN_IF_ERROR(new_output(ctx, {cpu::attention_forward_scratch(d.B, d.T)}, &scratch));
    cpu::attention_forward(out.f32(), lse.f32(), return_probs ? probs.f32() : nullptr, qkv.f32(),
                           return_probs ? nullptr : scratch.f32(), d.B, d.T, d.H, d.hd, d.scale);
  }
  ctx.outputs.push_back(std::move(out));
  ctx.outputs.push_back(std::move(lse));
  if (return_probs) ctx.outputs.push_back(std::move(probs));
  return Status::OK();
}

// attention_backward(dout, qkv, out, lse, {heads, scale?}) -> dqkv (B, T, 3*D)
//   out and lse are the forward's outputs for this qkv and these attributes.
Status attention_backward_op(OpContext& ctx) {
  const Tensor &dout = ctx.in(0), &qkv = ctx.in(1), &out = ctx.in(2), &lse = ctx.in(3);
  AttentionDims d;
  DINO_RETURN_IF_ERROR(attention_dims(ctx, qkv, &d));
  DINO_RETURN_IF_ERROR(expect_f32(dout, "dout"));
  DINO_RETURN_IF_ERROR(expect_f32(out, "out"));
  DINO_RETURN_IF_ERROR(expect_f32(lse, "lse"));
  DINO_RETURN_IF_ERROR(expect_shape(dout, {d.B, d.T, d.H * d.hd}, "dout"));
  DINO_RETURN_IF_ERROR(expect_shape(out, {d.B, d.T, d.H * d.hd}, "out"));
  DINO_RETURN_IF_ERROR(expect_shape(lse, {d.B, d.H, d.T}, "lse"));
  Tensor dqkv, scratch;
  DINO_RETURN_IF_ERROR(new_output(ctx, qkv.shape, &dqkv));
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  if (!on_cuda && ctx.device.type != DeviceType::kCPU) return no_kernel(ctx);
  DINO_RETURN_IF_ERROR(new_output(ctx,
                                  {on_cuda ? cuda::attention_backward_scratch(d.B, d.T, d.H, d.hd)
                                        : cpu::attention_backward_scratch(d.B, d.T)},
                                  &scratch));
  if (on_cuda)
    DINO_CUDA_LAUNCH(cuda::attention_backward(ctx.device.index, dqkv.f32(), dout.f32(), qkv.f32(), out.f32(),
                                              lse.f32(), scratch.f32(), d.B, d.T, d.H, d.hd, d.scale));
  else
    cpu::attention_backward(dqkv.f32(), dout.f32(), qkv.f32(), out.f32(), lse.f32(), scratch.f32(), d.B, d.T, d.H,
                            d.hd, d.scale);
  ctx.outputs.push_back(std::move(dqkv));
  return Status::OK();
}

DINO_REGISTER_OP("attention", attention_op, "qkv");
DINO_REGISTER_OP("attention_backward", attention_backward_op, "dout", "qkv", "out", "lse");

}  // namespace
}  // namespace dino
