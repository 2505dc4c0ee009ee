// Batched matrix multiply with transposes: the ViT's linear layers and attention products.
#include "../cuda/gemm.h"
#include "dino/gemm.h"
#include "dino/op.h"

namespace dino {
namespace {

// matmul(a, b, {transA, transB}) -> c
//   a (..., M, K) or, with transA, (..., K, M); b (..., K, N) or, with transB, (..., N, K);
//   c (..., M, N). The batch dimensions (...) of a and b are equal, or one of them is 2-D and is
//   shared by every batch entry (a linear layer: x (B, T, C) @ W^T with W (OC, C)).
Status matmul_op(OpContext& ctx) {
  const Tensor &a = ctx.in(0), &b = ctx.in(1);
  DINO_RETURN_IF_ERROR(expect_f32(a, "a"));
  DINO_RETURN_IF_ERROR(expect_f32(b, "b"));
  bool ta = false, tb = false;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_bool("transA", &ta, false));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_bool("transB", &tb, false));
  DINO_CHECK(a.dim() >= 2 && b.dim() >= 2, kShapeMismatch, "matmul needs at least 2-D operands");
  const int64_t M = ta ? a.size(-1) : a.size(-2), Ka = ta ? a.size(-2) : a.size(-1);
  const int64_t Kb = tb ? b.size(-1) : b.size(-2), N = tb ? b.size(-2) : b.size(-1);
  DINO_CHECK(Ka == Kb, kShapeMismatch, "inner dimensions differ: ", Ka, " (a) vs ", Kb, " (b)");
  Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  DINO_CHECK(ba == bb || ba.empty() || bb.empty(), kShapeMismatch, "batch dimensions ", shape_str(ba), " and ",
             shape_str(bb), " differ (one operand may be 2-D)");
  Shape shape = ba.empty() ? bb : ba;
  const int64_t batch = prod(shape, 0, shape.size());
  shape.push_back(M);
  shape.push_back(N);
  Tensor c;
  DINO_RETURN_IF_ERROR(new_output(ctx, shape, &c));
  const bool on_cuda = ctx.device.type == DeviceType::kCUDA;
  if (!on_cuda && ctx.device.type != DeviceType::kCPU) return no_kernel(ctx);
  if (bb.empty() && !ta) {
    // A shared weight under batched rows (a linear layer): the batch folds into the rows, one GEMM
    // that packs the weight once instead of once per batch entry.
    if (on_cuda)
      DINO_CUDA_LAUNCH(cuda::sgemm_batched(ctx.device.index, false, tb, batch * M, N, Ka, 1.0f, a.f32(), Ka, 0,
                                           b.f32(), b.size(-1), 0, 0.0f, c.f32(), N, 0, 1));
    else
      cpu::sgemm_batched(false, tb, batch * M, N, Ka, 1.0f, a.f32(), Ka, 0, b.f32(), b.size(-1), 0, 0.0f, c.f32(), N, 0, 1);
  } else {
    if (on_cuda)
      DINO_CUDA_LAUNCH(cuda::sgemm_batched(ctx.device.index, ta, tb, M, N, Ka, 1.0f, a.f32(), a.size(-1),
                                           ba.empty() ? 0 : M * Ka, b.f32(), b.size(-1), bb.empty() ? 0 : Ka * N,
                                           0.0f, c.f32(), N, M * N, batch));
    else
      cpu::sgemm_batched(ta, tb, M, N, Ka, 1.0f, a.f32(), a.size(-1), ba.empty() ? 0 : M * Ka, b.f32(), b.size(-1),
                         bb.empty() ? 0 : Ka * N, 0.0f, c.f32(), N, M * N, batch);
  }
  ctx.outputs.push_back(std::move(c));
  return Status::OK();
}

DINO_REGISTER_OP("matmul", matmul_op, "a", "b");

}  // namespace
}  // namespace dino
