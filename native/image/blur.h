// PIL's ImageFilter.GaussianBlur(radius=sigma), which DINO's GaussianBlur applies, reproduced to the
// bit on 8-bit RGB images. Pillow (libImaging/BoxBlur.c) approximates the Gaussian with three passes of
// an "extended" box blur in each direction (Gwosdek et al., 2011): a box of integer radius r plus
// fractional end taps, whose total radius r + a is chosen so that three passes have variance sigma^2:
//   sigma2 = sigma^2 / 3, L = sqrt(12 sigma2 + 1), r = floor((L - 1) / 2),
//   a = (2r + 1)(r(r + 1) - 3 sigma2) / (6 (sigma2 - (r + 1)^2))
// in float32 (sigma is passed to C as a float). Each pass works in 24-bit fixed point: the box weight
// ww = trunc(2^24 / (2(r + a) + 1)), the end-tap weight fw = (2^24 - (2r + 1) ww) / 2, and output x
// of a line v is
//   (ww * sum(v[x - r .. x + r]) + fw * (v[x - r - 1] + v[x + r + 1]) + 2^23) >> 24
// with indices clamped to the line (edges repeat the first and last pixel), so every pass rounds to
// uint8. The three horizontal passes run first, then the three vertical ones.
#pragma once
#include <cstdint>

namespace dino::image {

// The largest sigma blur() takes: its window sums are 32-bit, as Pillow's are, which holds them for
// box radii below 2^23.
constexpr double kMaxBlurSigma = 1 << 22;

// ImageFilter.GaussianBlur(radius=sigma) of an RGB image (width x height), in place; sigma in
// [0, kMaxBlurSigma].
void gaussian_blur(uint8_t* rgb, int64_t width, int64_t height, float sigma);

}  // namespace dino::image
