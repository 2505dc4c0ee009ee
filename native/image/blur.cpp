#include "blur.h"

#include <algorithm>
#include <cmath>

#include "../cpu/simd.h"
#include "layout.h"
#include "scratch.h"

namespace dino::image {
namespace {

struct BoxPass {
  float float_radius;
  int64_t radius;
  uint32_t box_weight;
  uint32_t edge_weight;
};

// The extended box of one pass, in float32 as Pillow computes it.
BoxPass box_pass(float sigma) {
  const float sigma2 = sigma * sigma / 3;
  const float L = float(std::sqrt(12.0 * double(sigma2) + 1.0));
  const float l = float(std::floor((double(L) - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  BoxPass p;
  p.float_radius = l + a;
  p.radius = int64_t(p.float_radius);
  p.box_weight = uint32_t(float(1 << 24) / (p.float_radius * 2 + 1));
  p.edge_weight = uint32_t(((int64_t(1) << 24) - (p.radius * 2 + 1) * int64_t(p.box_weight)) / 2);
  return p;
}

// One pass along the columns of an image of `lines` rows of `length` bytes: each byte position is a
// line of its own (a channel of a column). The window sums of all of them advance together, row by
// row, so that every step is a loop over a whole row. acc holds `length` sums.
DINO_SIMD_CLONES void box_pass_rows(const uint8_t* src, int64_t lines, int64_t length, const BoxPass& p,
                                    uint8_t* dst, uint32_t* acc) {
  const int64_t r = p.radius;
  const uint32_t ww = p.box_weight;
  const uint32_t fw = p.edge_weight;
  const auto row = [&](int64_t y) { return src + std::clamp<int64_t>(y, 0, lines - 1) * length; };
  // The window of position -1: v[-r - 1 .. r - 1], clamped: r + 1 copies of the first value, then
  // the line's first min(r, n) values, then the last value for the rest.
  const uint8_t* first = row(0);
  const uint8_t* last = row(lines - 1);
  const int64_t inside = std::min(r, lines);
  const uint32_t before = uint32_t(r + 1);
  const uint32_t after = uint32_t(r - inside);
  for (int64_t i = 0; i < length; ++i) acc[i] = before * first[i] + after * last[i];
  for (int64_t y = 0; y < inside; ++y) {
    const uint8_t* v = row(y);
    for (int64_t i = 0; i < length; ++i) acc[i] += v[i];
  }
  for (int64_t y = 0; y < lines; ++y) {
    const uint8_t* behind = row(y - r - 1);
    const uint8_t* ahead = row(y + r);
    const uint8_t* beyond = row(y + r + 1);
    uint8_t* out = dst + y * length;
    for (int64_t i = 0; i < length; ++i) {
      acc[i] += uint32_t(ahead[i]) - uint32_t(behind[i]);
      out[i] = uint8_t((acc[i] * ww + (uint32_t(behind[i]) + beyond[i]) * fw + (1u << 23)) >> 24);
    }
  }
}

// Three passes along the columns of `lines` rows of `length` bytes: from data (which they overwrite)
// to out.
void three_passes(uint8_t* data, int64_t lines, int64_t length, const BoxPass& p, uint8_t* out) {
  auto acc = scratch<uint32_t>(length);
  box_pass_rows(data, lines, length, p, out, acc.get());
  box_pass_rows(out, lines, length, p, data, acc.get());
  box_pass_rows(data, lines, length, p, out, acc.get());
}

}  // namespace

void gaussian_blur(uint8_t* rgb, int64_t width, int64_t height, float sigma) {
  const BoxPass p = box_pass(sigma);
  // Pillow returns a copy for radius 0, and skips the passes for a box radius of 0.
  if (sigma == 0 || p.float_radius == 0) return;
  const int64_t bytes = width * height * 3;
  auto transposed = scratch<uint8_t>(bytes);
  auto tmp = scratch<uint8_t>(bytes);
  // Horizontal passes: along the columns of the transposed image.
  transpose(rgb, width, height, width * 3, transposed.get(), height * 3);
  three_passes(transposed.get(), width, height * 3, p, tmp.get());
  transpose(tmp.get(), height, width, height * 3, rgb, width * 3);
  three_passes(rgb, height, width * 3, p, tmp.get());
  std::copy(tmp.get(), tmp.get() + bytes, rgb);
}

}  // namespace dino::image
