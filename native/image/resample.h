// PIL's Image.resize with BICUBIC or BILINEAR on 8-bit RGB images, as torchvision applies it to PIL
// images (Resize, and RandomResizedCrop's crop-then-resize), reproduced to the bit. Pillow's
// libImaging/Resample.c:
// - a separable convolution, horizontal pass first, then vertical; each pass rounds to uint8;
// - the kernel is Keys' cubic with a = -0.5 (PyTorch's bicubic uses -0.75) and support 2, or the
//   triangle 1 - |x| with support 1, widened by the scale factor when downscaling (antialiasing):
//   support = s * max(in / out, 1) for the kernel's support s;
// - output pixel x samples around centre (x + 0.5) * in / out; the taps run from
//   trunc(centre - support + 0.5) to trunc(centre + support + 0.5), clipped to the image, and their
//   weights are normalised to sum 1 in double precision, then turned into 22-bit fixed point
//   (rounded half away from zero);
// - each output is (2^21 + sum(pixel * weight)) >> 22, clipped to [0, 255];
// - a pass is skipped when its size does not change; the horizontal pass only computes the rows the
//   vertical one reads.
// Pillow 13 started running the vertical pass first for images shrunk much more in height than in
// width; before that (every Pillow torchvision 0.8 ran on) the order was always horizontal first,
// which is what this does.
//
// The crop is not copied: the resize reads the box of the source directly, which is exactly
// torchvision's crop followed by resize (taps never reach outside the box).
#pragma once
#include <cstdint>

namespace dino::image {

enum class Filter { kBilinear, kBicubic };

// An integer box of pixels.
struct Box {
  int64_t left, top, width, height;
};

// The box of src (an image src_width pixels wide; the box lies inside it) resampled to dst
// (out_width x out_height). dst must not overlap src. Throws std::bad_alloc when the intermediate
// rows do not fit in memory.
void resample(Filter filter, const uint8_t* src, int64_t src_width, Box box, uint8_t* dst, int64_t out_width,
              int64_t out_height);

}  // namespace dino::image
