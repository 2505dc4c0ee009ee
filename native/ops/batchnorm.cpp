// Batch normalisation over the rows of a (N, C) matrix (torch.nn.BatchNorm1d on 2-D input, the DINO
// head's optional normalisation), forward and backward. The forward pass in training also updates the
// running statistics and the batch counter in place, as the PyTorch module does.
#include "../cpu/batchnorm.h"
#include "../cuda/batchnorm.h"
#include "dino/op.h"

namespace dino {
namespace {

// x must be (N, C) with C > 0 and N > 0.
Status batch_shape(const Tensor& x, int64_t* N, int64_t* C) {
  DINO_CHECK(x.dim() == 2, kShapeMismatch, "x must be (N, C), got ", shape_str(x.shape));
  *N = x.shape[0];
  *C = x.shape[1];
  DINO_CHECK(*N > 0 && *C > 0, kShapeMismatch, "x must have at least one row and one column, got ",
             shape_str(x.shape));
  return Status::OK();
}

// `training` decides which statistics are used and which gradient is right: never defaulted.
Status get_training(const Attrs& attrs, bool* training) {
  DINO_CHECK(attrs.has("training"), kInvalidArgument, "missing attribute 'training' (true: batch statistics, ",
             "false: running statistics)");
  return attrs.get_bool("training", training, false);
}

// batch_norm(x, weight, bias, running_mean, running_var, num_batches_tracked,
//            {training, momentum = 0.1, eps = 1e-5}) -> y, mean, rstd
//   x (N, C), weight, bias, running_mean, running_var (C), num_batches_tracked [] -> y (N, C), and the
//   mean and 1 / sqrt(var + eps) that normalised it (C), saved for batch_norm_backward. In training
//   these are the batch's (biased variance; N >= 2), running_mean and running_var move towards the
//   batch mean and unbiased variance by `momentum`, and num_batches_tracked grows by one; otherwise
//   the running statistics are used and nothing is written.
Status batch_norm_op(OpContext& ctx) {
  const Tensor &x = ctx.in(0), &weight = ctx.in(1), &bias = ctx.in(2);
  const Tensor &running_mean = ctx.in(3), &running_var = ctx.in(4), &count = ctx.in(5);
  const char* names[] = {"x", "weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  for (int i = 0; i < 6; ++i) DINO_RETURN_IF_ERROR(expect_f32(ctx.in(i), names[i]));
  int64_t N = 0, C = 0;
  DINO_RETURN_IF_ERROR(batch_shape(x, &N, &C));
  for (int i = 1; i < 5; ++i) DINO_RETURN_IF_ERROR(expect_shape(ctx.in(i), {C}, names[i]));
  DINO_RETURN_IF_ERROR(expect_shape(count, {}, "num_batches_tracked"));
  bool training = false;
  DINO_RETURN_IF_ERROR(get_training(ctx.attrs, &training));
  double momentum = 0, eps = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_nonnegative("momentum", &momentum, 0.1));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_nonnegative("eps", &eps, 1e-5));
  DINO_CHECK(momentum <= 1, kInvalidArgument, "momentum must be in [0, 1], got ", momentum);
  if (training) {
    DINO_CHECK(N > 1, kShapeMismatch, "expected more than 1 value per channel when training, got ", shape_str(x.shape));
    // The three statistics are written: each must have its own memory, apart from the other inputs.
    for (int i = 3; i < 6; ++i)
      for (int j = 0; j < 6; ++j)
        DINO_CHECK(j == i || ctx.in(i).storage != ctx.in(j).storage, kInvalidArgument, names[i], " and ", names[j],
                   " share memory: the running statistics are updated in place and need their own tensors");
  }
  Tensor y, mean, rstd;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &y));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &mean));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &rstd));
  if (ctx.device.type == DeviceType::kCUDA) {
    if (training) {
      Tensor lo;  // what the float mean lost, per column, for the normalising pass
      DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &lo));
      DINO_CUDA_LAUNCH(cuda::batchnorm_forward_train(ctx.device.index, y.f32(), mean.f32(), rstd.f32(),
                                                     running_mean.f32(), running_var.f32(), count.f32(), lo.f32(),
                                                     x.f32(), weight.f32(), bias.f32(), N, C, eps, momentum));
    } else {
      DINO_CUDA_LAUNCH(cuda::batchnorm_forward_eval(ctx.device.index, y.f32(), mean.f32(), rstd.f32(), x.f32(),
                                                    weight.f32(), bias.f32(), running_mean.f32(), running_var.f32(),
                                                    N, C, eps));
    }
  } else if (training) {
    cpu::batchnorm_forward_train(y.f32(), mean.f32(), rstd.f32(), running_mean.f32(), running_var.f32(), x.f32(),
                                 weight.f32(), bias.f32(), N, C, eps, momentum);
    count.f32()[0] += 1.0f;
  } else {
    cpu::batchnorm_forward_eval(y.f32(), mean.f32(), rstd.f32(), x.f32(), weight.f32(), bias.f32(),
                                running_mean.f32(), running_var.f32(), N, C, eps);
  }
  ctx.outputs = {std::move(y), std::move(mean), std::move(rstd)};
  return Status::OK();
}

// batch_norm_backward(dy, x, weight, mean, rstd, {training}) -> dx, dweight, dbias
//   dy (N, C), x (N, C), weight (C), mean and rstd (C) from batch_norm with the same `training`
//   -> dx (N, C), dweight (C), dbias (C).
Status batch_norm_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &x = ctx.in(1), &weight = ctx.in(2), &mean = ctx.in(3), &rstd = ctx.in(4);
  const char* names[] = {"dy", "x", "weight", "mean", "rstd"};
  for (int i = 0; i < 5; ++i) DINO_RETURN_IF_ERROR(expect_f32(ctx.in(i), names[i]));
  int64_t N = 0, C = 0;
  DINO_RETURN_IF_ERROR(batch_shape(x, &N, &C));
  DINO_RETURN_IF_ERROR(expect_shape(dy, x.shape, "dy"));
  for (int i = 2; i < 5; ++i) DINO_RETURN_IF_ERROR(expect_shape(ctx.in(i), {C}, names[i]));
  bool training = false;
  DINO_RETURN_IF_ERROR(get_training(ctx.attrs, &training));
  Tensor dx, dweight, dbias;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &dweight));
  DINO_RETURN_IF_ERROR(new_output(ctx, {C}, &dbias));
  if (ctx.device.type == DeviceType::kCUDA) {
    Tensor scratch;
    DINO_RETURN_IF_ERROR(new_output(ctx, {cuda::batchnorm_backward_scratch(C)}, &scratch));
    DINO_CUDA_LAUNCH(cuda::batchnorm_backward(ctx.device.index, dx.f32(), dweight.f32(), dbias.f32(), scratch.f32(),
                                              dy.f32(), x.f32(), weight.f32(), mean.f32(), rstd.f32(), N, C,
                                              training));
  } else {
    cpu::batchnorm_backward(dx.f32(), dweight.f32(), dbias.f32(), dy.f32(), x.f32(), weight.f32(), mean.f32(),
                            rstd.f32(), N, C, training);
  }
  ctx.outputs = {std::move(dx), std::move(dweight), std::move(dbias)};
  return Status::OK();
}

// In place: training updates running_mean, running_var and num_batches_tracked.
DINO_REGISTER_INPLACE_OP("batch_norm", batch_norm_op, "x", "weight", "bias", "running_mean", "running_var",
                         "num_batches_tracked");
DINO_REGISTER_OP("batch_norm_backward", batch_norm_backward_op, "dy", "x", "weight", "mean", "rstd");

}  // namespace
}  // namespace dino
