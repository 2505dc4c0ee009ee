// Optimizer steps that update their tensors in place (AdamW, the teacher EMA, per-tensor gradient
// clipping), and the L2 norm. In-place ops return no outputs, except clipping, which returns the norm.
#include <cmath>
#include <initializer_list>

#include "../cpu/elementwise.h"
#include "../cpu/optim.h"
#include "../cuda/optim.h"
#include "dino/device.h"
#include "dino/op.h"

namespace dino {
namespace {

// The checks every in-place op makes: float32 tensors of one shape, each with its own storage. Two
// inputs sharing storage (the same tensor twice, or a view of it) would have one update read what
// another has already written, so they are refused rather than giving order-dependent results.
Status expect_inplace_operands(const OpContext& ctx, std::initializer_list<const char*> names) {
  const char* const* name = names.begin();
  for (size_t i = 0; i < names.size(); ++i) {
    const Tensor& t = ctx.in(i);
    DINO_RETURN_IF_ERROR(expect_f32(t, name[i]));
    DINO_RETURN_IF_ERROR(expect_shape(t, ctx.in(0).shape, name[i]));
    for (size_t j = 0; j < i; ++j)
      DINO_CHECK(t.storage != ctx.in(j).storage, kInvalidArgument, name[i], " and ", name[j],
                 " share memory: an in-place update needs distinct tensors");
  }
  return Status::OK();
}

Status expect_finite(double v, const char* name) {
  DINO_CHECK(std::isfinite(v), kInvalidArgument, "attribute '", name, "' must be finite, got ", v);
  return Status::OK();
}

// adamw_step(param, grad, exp_avg, exp_avg_sq, {lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
// weightDecay, step}) -> []: updates param, exp_avg and exp_avg_sq in place, as torch.optim.AdamW.
Status adamw_step_op(OpContext& ctx) {
  DINO_RETURN_IF_ERROR(expect_inplace_operands(ctx, {"param", "grad", "exp_avg", "exp_avg_sq"}));
  cpu::AdamWConfig c{};
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("lr", &c.lr));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("beta1", &c.beta1, 0.9));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("beta2", &c.beta2, 0.999));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_nonnegative("eps", &c.eps, 1e-8));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("weightDecay", &c.weight_decay));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("step", &c.step));
  DINO_RETURN_IF_ERROR(expect_finite(c.lr, "lr"));
  DINO_RETURN_IF_ERROR(expect_finite(c.weight_decay, "weightDecay"));
  DINO_CHECK(c.beta1 >= 0 && c.beta1 < 1, kInvalidArgument, "beta1 must be in [0, 1), got ", c.beta1);
  DINO_CHECK(c.beta2 >= 0 && c.beta2 < 1, kInvalidArgument, "beta2 must be in [0, 1), got ", c.beta2);
  DINO_CHECK(c.step >= 1, kInvalidArgument, "step counts from 1, got ", c.step);
  if (ctx.device.type == DeviceType::kCUDA) {
    DINO_CUDA_LAUNCH(cuda::adamw_step(ctx.device.index, ctx.in(0).f32(), ctx.in(1).f32(), ctx.in(2).f32(),
                                      ctx.in(3).f32(), ctx.in(0).numel(), c));
  } else {
    cpu::adamw_step(ctx.in(0).f32(), ctx.in(1).f32(), ctx.in(2).f32(), ctx.in(3).f32(), ctx.in(0).numel(), c);
  }
  return Status::OK();
}

// ema_update(teacher, student, {momentum}) -> []: teacher = momentum * teacher + (1 - momentum) * student.
Status ema_update_op(OpContext& ctx) {
  DINO_RETURN_IF_ERROR(expect_inplace_operands(ctx, {"teacher", "student"}));
  double m = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("momentum", &m));
  DINO_CHECK(m >= 0 && m <= 1, kInvalidArgument, "momentum must be in [0, 1], got ", m);
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::ema_update(ctx.device.index, ctx.in(0).f32(), ctx.in(1).f32(), ctx.in(0).numel(), m));
  else
    cpu::ema_update(ctx.in(0).f32(), ctx.in(1).f32(), ctx.in(0).numel(), m);
  return Status::OK();
}

// assign(dst, src) -> []: dst's values replaced by src's (loading weights into parameters that an
// optimizer already holds, copying the student into the teacher). Any device: a plain byte copy.
Status assign_op(OpContext& ctx) {
  DINO_RETURN_IF_ERROR(expect_inplace_operands(ctx, {"dst", "src"}));
  return copy_bytes(ctx.in(0).raw(), ctx.device, ctx.in(1).raw(), ctx.device, ctx.in(0).nbytes());
}

// The partial sums the device norm's first stage writes: doubles, in a float32 scratch tensor.
Status norm_scratch(OpContext& ctx, int64_t n, Tensor* scratch) {
  return new_output(ctx, {cuda::norm_scratch_floats(n)}, scratch);
}

// The L2 norm of x as a float32 scalar (accumulated in double), written into a new 0-d output. On the
// CPU, *norm is set to it; on a GPU it stays in device memory and *norm is not set.
Status push_norm(OpContext& ctx, const Tensor& x, float* norm) {
  Tensor out;
  DINO_RETURN_IF_ERROR(new_output(ctx, {}, &out));
  if (ctx.device.type == DeviceType::kCUDA) {
    Tensor scratch;
    DINO_RETURN_IF_ERROR(norm_scratch(ctx, x.numel(), &scratch));
    DINO_CUDA_LAUNCH(cuda::norm(ctx.device.index, out.f32(), reinterpret_cast<double*>(scratch.f32()), x.f32(),
                                x.numel()));
  } else {
    *norm = static_cast<float>(std::sqrt(cpu::sum_squares(x.f32(), x.numel())));
    out.f32()[0] = *norm;
  }
  ctx.outputs.push_back(std::move(out));
  return Status::OK();
}

// norm(x) -> [||x||_2] (a 0-d tensor)
Status norm_op(OpContext& ctx) {
  DINO_RETURN_IF_ERROR(expect_f32(ctx.in(0), "x"));
  float norm = 0;
  return push_norm(ctx, ctx.in(0), &norm);
}

// norm_backward(x, norm, dy) -> [dx = dy * x / norm], and 0 where x is all zeros (the subgradient
// PyTorch picks too).
Status norm_backward_op(OpContext& ctx) {
  const Tensor &x = ctx.in(0), &norm = ctx.in(1), &dy = ctx.in(2);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_f32(norm, "norm"));
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_CHECK(norm.numel() == 1 && dy.numel() == 1, kShapeMismatch, "norm and dy must have one element, got ",
             shape_str(norm.shape), " and ", shape_str(dy.shape));
  Tensor dx;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  if (ctx.device.type == DeviceType::kCUDA) {
    // The scalars are read on the device: no host synchronisation.
    DINO_CUDA_LAUNCH(cuda::norm_backward(ctx.device.index, dx.f32(), x.f32(), norm.f32(), dy.f32(), x.numel()));
  } else {
    const float n = norm.f32()[0];
    cpu::affine_forward(dx.f32(), x.f32(), x.numel(), n > 0 ? dy.f32()[0] / n : 0.0f, 0.0f);
  }
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

// clip_grad_norm(grad, {maxNorm}) -> [norm before clipping]; grad is scaled in place by
// maxNorm / (norm + 1e-6) when that is below 1. This is DINO's per-tensor clip (utils.clip_gradients),
// with its float32 arithmetic: `clip / (norm + 1e-6)` is reciprocal(norm + 1e-6) * clip in PyTorch.
Status clip_grad_norm_op(OpContext& ctx) {
  DINO_RETURN_IF_ERROR(expect_inplace_operands(ctx, {"grad"}));
  double max_norm = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_double("maxNorm", &max_norm));
  DINO_CHECK(max_norm > 0 && std::isfinite(max_norm), kInvalidArgument, "maxNorm must be finite and > 0, got ",
             max_norm);
  const Tensor& g = ctx.in(0);
  if (ctx.device.type == DeviceType::kCUDA) {
    // The norm is reduced into the output and the scaling kernel reads it there: the host never waits.
    Tensor out, scratch;
    DINO_RETURN_IF_ERROR(new_output(ctx, {}, &out));
    DINO_RETURN_IF_ERROR(norm_scratch(ctx, g.numel(), &scratch));
    DINO_CUDA_LAUNCH(cuda::clip_grad_norm(ctx.device.index, g.f32(), out.f32(),
                                          reinterpret_cast<double*>(scratch.f32()), g.numel(), max_norm));
    ctx.outputs.push_back(std::move(out));
    return Status::OK();
  }
  float norm = 0;
  DINO_RETURN_IF_ERROR(push_norm(ctx, g, &norm));
  const float coef = (1.0f / (norm + 1e-6f)) * static_cast<float>(max_norm);
  if (coef < 1.0f) cpu::affine_forward(g.f32(), g.f32(), g.numel(), coef, 0.0f);
  return Status::OK();
}

DINO_REGISTER_INPLACE_OP("adamw_step", adamw_step_op, "param", "grad", "exp_avg", "exp_avg_sq");
DINO_REGISTER_INPLACE_OP("assign", assign_op, "dst", "src");
DINO_REGISTER_INPLACE_OP("ema_update", ema_update_op, "teacher", "student");
DINO_REGISTER_OP("norm", norm_op, "x");
DINO_REGISTER_OP("norm_backward", norm_backward_op, "x", "norm", "dy");
DINO_REGISTER_INPLACE_OP("clip_grad_norm", clip_grad_norm_op, "grad");

}  // namespace
}  // namespace dino
