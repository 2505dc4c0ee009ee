// Bicubic resampling by scale factors (PyTorch's F.interpolate, mode='bicubic', align_corners=False).
#include <cmath>

#include "../cpu/interpolate.h"
#include "../cuda/interpolate.h"
#include "dino/op.h"

namespace dino {
namespace {

// Sizes beyond this are refused up front: the tap tables are proportional to them.
constexpr int64_t kMaxSize = int64_t{1} << 30;

// The scale factors scaleH and scaleW (required), within [2^-30, 2^30] so that source coordinates
// stay finite.
Status get_scales(const Attrs& attrs, double* sh, double* sw) {
  DINO_RETURN_IF_ERROR(attrs.get_double("scaleH", sh));
  DINO_RETURN_IF_ERROR(attrs.get_double("scaleW", sw));
  const double lo = 1.0 / kMaxSize, hi = kMaxSize;
  DINO_CHECK(*sh >= lo && *sh <= hi && *sw >= lo && *sw <= hi, kInvalidArgument,
             "scale factors must be in [2^-30, 2^30], got scaleH = ", *sh, ", scaleW = ", *sw);
  return Status::OK();
}

Status check_size(const char* name, int64_t v) {
  DINO_CHECK(v >= 1 && v <= kMaxSize, kInvalidArgument, name, " must be in [1, 2^30], got ", v);
  return Status::OK();
}

// An output size: the attribute when given, else floor(in * scale) as F.interpolate computes it.
Status out_size(const Attrs& attrs, const char* name, int64_t in, double scale, int64_t* out) {
  if (attrs.has(name)) {
    DINO_RETURN_IF_ERROR(attrs.get_int(name, out));
    return check_size(name, *out);
  }
  const double size = std::floor(static_cast<double>(in) * scale);
  DINO_CHECK(size >= 1 && size <= double(kMaxSize), kInvalidArgument, "the output size floor(", in, " * ", scale,
             ") = ", size, " is out of range [1, 2^30]; pass ", name, " or another scale");
  *out = static_cast<int64_t>(size);
  return Status::OK();
}

// bicubic_interpolate(x, {scaleH, scaleW, outH?, outW?}) -> y (N, C, outH, outW)
Status bicubic_interpolate_op(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(x, "x"));
  DINO_CHECK(x.dim() == 4, kShapeMismatch, "x must be (N, C, H, W), got ", shape_str(x.shape));
  const int64_t H = x.size(2), W = x.size(3);
  DINO_CHECK(H >= 1 && W >= 1, kShapeMismatch, "x must have a non-empty image, got ", shape_str(x.shape));
  double sh = 0, sw = 0;
  DINO_RETURN_IF_ERROR(get_scales(ctx.attrs, &sh, &sw));
  int64_t oh = 0, ow = 0;
  DINO_RETURN_IF_ERROR(out_size(ctx.attrs, "outH", H, sh, &oh));
  DINO_RETURN_IF_ERROR(out_size(ctx.attrs, "outW", W, sw, &ow));
  Tensor y, scratch;
  DINO_RETURN_IF_ERROR(new_output(ctx, {x.size(0), x.size(1), oh, ow}, &y));
  const int64_t planes = x.size(0) * x.size(1);
  if (ctx.device.type == DeviceType::kCUDA) {
    DINO_CUDA_LAUNCH(cuda::bicubic_forward(ctx.device.index, y.f32(), x.f32(), planes, H, W, oh, ow, sh, sw));
  } else if (planes > 0) {
    DINO_RETURN_IF_ERROR(new_output(ctx, {cpu::bicubic_scratch(H, ow)}, &scratch));
    cpu::bicubic_forward(y.f32(), x.f32(), scratch.f32(), planes, H, W, oh, ow, sh, sw);
  }
  ctx.outputs.push_back(std::move(y));
  return Status::OK();
}

// bicubic_interpolate_backward(dy, {inH, inW, scaleH, scaleW}) -> dx (N, C, inH, inW)
Status bicubic_interpolate_backward_op(OpContext& ctx) {
  const Tensor& dy = ctx.in(0);
  DINO_RETURN_IF_ERROR(expect_f32(dy, "dy"));
  DINO_CHECK(dy.dim() == 4, kShapeMismatch, "dy must be (N, C, outH, outW), got ", shape_str(dy.shape));
  int64_t H = 0, W = 0;
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("inH", &H));
  DINO_RETURN_IF_ERROR(ctx.attrs.get_int("inW", &W));
  DINO_RETURN_IF_ERROR(check_size("inH", H));
  DINO_RETURN_IF_ERROR(check_size("inW", W));
  DINO_RETURN_IF_ERROR(check_size("dy's height", dy.size(2)));
  DINO_RETURN_IF_ERROR(check_size("dy's width", dy.size(3)));
  double sh = 0, sw = 0;
  DINO_RETURN_IF_ERROR(get_scales(ctx.attrs, &sh, &sw));
  Tensor dx, scratch;
  DINO_RETURN_IF_ERROR(new_output(ctx, {dy.size(0), dy.size(1), H, W}, &dx));
  const int64_t planes = dy.size(0) * dy.size(1);
  if (ctx.device.type == DeviceType::kCUDA) {
    DINO_CUDA_LAUNCH(cuda::bicubic_backward(ctx.device.index, dx.f32(), dy.f32(), planes, H, W, dy.size(2),
                                            dy.size(3), sh, sw));
  } else if (planes > 0) {
    DINO_RETURN_IF_ERROR(new_output(ctx, {cpu::bicubic_scratch(H, dy.size(3))}, &scratch));
    cpu::bicubic_backward(dx.f32(), dy.f32(), scratch.f32(), planes, H, W, dy.size(2), dy.size(3), sh, sw);
  }
  ctx.outputs.push_back(std::move(dx));
  return Status::OK();
}

DINO_REGISTER_OP("bicubic_interpolate", bicubic_interpolate_op, "x");
DINO_REGISTER_OP("bicubic_interpolate_backward", bicubic_interpolate_backward_op, "dy");

}  // namespace
}  // namespace dino
