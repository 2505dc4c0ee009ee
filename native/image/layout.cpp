#include "layout.h"

#include <algorithm>

namespace dino::image {

void flip_horizontal(uint8_t* rgb, int64_t width, int64_t height) {
  for (int64_t y = 0; y < height; ++y) {
    uint8_t* a = rgb + y * width * 3;
    uint8_t* b = a + (width - 1) * 3;
    for (; a < b; a += 3, b -= 3) std::swap_ranges(a, a + 3, b);
  }
}

void transpose(const uint8_t* src, int64_t width, int64_t height, int64_t src_stride, uint8_t* dst, int64_t dst_stride) {
  // Tiles small enough that the source rows and destination rows they touch stay in the L1 cache.
  constexpr int64_t kTile = 32;
  for (int64_t y0 = 0; y0 < height; y0 += kTile) {
    const int64_t y1 = std::min(y0 + kTile, height);
    for (int64_t x0 = 0; x0 < width; x0 += kTile) {
      const int64_t x1 = std::min(x0 + kTile, width);
      for (int64_t x = x0; x < x1; ++x) {
        uint8_t* out = dst + x * dst_stride + y0 * 3;
        const uint8_t* in = src + y0 * src_stride + x * 3;
        for (int64_t y = y0; y < y1; ++y, out += 3, in += src_stride) {
          out[0] = in[0];
          out[1] = in[1];
          out[2] = in[2];
        }
      }
    }
  }
}

void to_normalized_chw(const uint8_t* rgb, int64_t pixels, const float* table, float* out) {
  float* r = out;
  float* g = out + pixels;
  float* b = out + 2 * pixels;
  for (int64_t i = 0; i < pixels; ++i, rgb += 3) {
    r[i] = table[rgb[0]];
    g[i] = table[256 + rgb[1]];
    b[i] = table[512 + rgb[2]];
  }
}

}  // namespace dino::image
