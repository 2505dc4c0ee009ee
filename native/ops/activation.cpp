// Activations: exact GELU, and softmax / log-softmax over the last axis (attention probabilities, the
// DINO loss), each with its backward.
#include "../cpu/gelu.h"
#include "../cpu/softmax.h"
#include "../cuda/gelu.h"
#include "../cuda/softmax.h"
#include "dino/op.h"

namespace dino {
namespace {

// gelu(x) -> y, x * Phi(x) elementwise (erf form, not the tanh approximation).
Status gelu_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  Tensor y;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &y));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::gelu_forward(ctx.device.index, y.f32(), x.f32(), x.numel()));
  else
    cpu::gelu_forward(y.f32(), x.f32(), x.numel());
  ctx.outputs.push_back(std::move(y));
  return Status::OK();
}

// gelu_backward(dy, x) -> dx, all of x's shape.
Status gelu_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &x = ctx.in(1);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_RETURN_IF_ERROR(expect_shape(dy, x.shape, "dy"));
  Tensor dx;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &dx));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda::gelu_backward(ctx.device.index, dx.f32(), dy.f32(), x.f32(), x.numel()));
  else
    cpu::gelu_backward(dx.f32(), dy.f32(), x.f32(), x.numel());
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

using RowForward = void (*)(float* y, const float* x, int64_t rows, int64_t N);
using RowBackward = void (*)(float* dx, const float* dy, const float* y, int64_t rows, int64_t N);

// The CUDA launchers of the same four kernels (native/cuda/softmax.h), named by an enum rather than
// passed as function pointers: a build without CUDA has no definitions to point at.
enum class RowKernel { kSoftmax, kSoftmaxBackward, kLogSoftmax, kLogSoftmaxBackward };

#ifdef DINO_WITH_CUDA
Status cuda_row_forward(RowKernel k, int device, float* y, const float* x, int64_t rows, int64_t N) {
  return k == RowKernel::kSoftmax ? cuda::softmax_forward(device, y, x, rows, N)
                                  : cuda::log_softmax_forward(device, y, x, rows, N);
}
Status cuda_row_backward(RowKernel k, int device, float* dx, const float* dy, const float* y, int64_t rows,
                         int64_t N) {
  return k == RowKernel::kSoftmaxBackward ? cuda::softmax_backward(device, dx, dy, y, rows, N)
                                          : cuda::log_softmax_backward(device, dx, dy, y, rows, N);
}
#endif

// softmax(x) / log_softmax(x) -> y: x (..., N) -> y (..., N), over the last axis.
template <RowForward kernel, RowKernel cuda_kernel>
Status row_forward_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  int64_t rows = 0, N = 0;
  DINO_RETURN_IF_ERROR(rows_and_width(x, "x", &rows, &N));
  Tensor y;
  DINO_RETURN_IF_ERROR(new_output(ctx, x.shape, &y));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda_row_forward(cuda_kernel, ctx.device.index, y.f32(), x.f32(), rows, N));
  else
    kernel(y.f32(), x.f32(), rows, N);
  ctx.outputs.push_back(std::move(y));
  return Status::OK();
}

// softmax_backward(dy, y) / log_softmax_backward(dy, y) -> dx: dy, y (..., N), y the forward output.
template <RowBackward kernel, RowKernel cuda_kernel>
Status row_backward_op(OpContext& ctx) {
  const Tensor &dy = ctx.in(0), &y = ctx.in(1);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_RETURN_IF_ERROR(expect_f32(y, "y"));
  int64_t rows = 0, N = 0;
  DINO_RETURN_IF_ERROR(rows_and_width(y, "y", &rows, &N));
  DINO_RETURN_IF_ERROR(expect_shape(dy, y.shape, "dy"));
  Tensor dx;
  DINO_RETURN_IF_ERROR(new_output(ctx, y.shape, &dx));
  if (ctx.device.type == DeviceType::kCUDA)
    DINO_CUDA_LAUNCH(cuda_row_backward(cuda_kernel, ctx.device.index, dx.f32(), dy.f32(), y.f32(), rows, N));
  else
    kernel(dx.f32(), dy.f32(), y.f32(), rows, N);
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

DINO_REGISTER_OP("gelu", gelu_op, "x");
DINO_REGISTER_OP("gelu_backward", gelu_backward_op, "dy", "x");
// Named, because the macro would split a template argument list at its comma.
constexpr OpFn softmax_op = row_forward_op<cpu::softmax_forward, RowKernel::kSoftmax>;
constexpr OpFn softmax_backward_op = row_backward_op<cpu::softmax_backward, RowKernel::kSoftmaxBackward>;
constexpr OpFn log_softmax_op = row_forward_op<cpu::log_softmax_forward, RowKernel::kLogSoftmax>;
constexpr OpFn log_softmax_backward_op = row_backward_op<cpu::log_softmax_backward, RowKernel::kLogSoftmaxBackward>;

DINO_REGISTER_OP("softmax", softmax_op, "x");
DINO_REGISTER_OP("softmax_backward", softmax_backward_op, "dy", "y");
DINO_REGISTER_OP("log_softmax", log_softmax_op, "x");
DINO_REGISTER_OP("log_softmax_backward", log_softmax_backward_op, "dy", "y");

}  // namespace
}  // namespace dino
