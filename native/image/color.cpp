#include "color.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "../cpu/simd.h"

namespace dino::image {
namespace {

uint8_t luma(const uint8_t* p) {
  return uint8_t((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// in1 + alpha * (in2 - in1), both operations rounded to float32, then clipped to [0, 255] and
// truncated (written without branches, so that loops over bytes vectorise).
uint8_t blend_value(int in1, int in2, float alpha) {
  const float v = float(in1) + alpha * float(in2 - in1);
  return uint8_t(std::min(std::max(v, 0.0f), 255.0f));
}

// Blending every byte with one constant is a table.
void blend_with_constant(uint8_t* data, size_t n, int constant, float alpha) {
  std::array<uint8_t, 256> table;
  for (int v = 0; v < 256; ++v) table[v] = blend_value(constant, v, alpha);
  for (size_t i = 0; i < n; ++i) data[i] = table[data[i]];
}

void pixel_to_hsv(const uint8_t* in, uint8_t* out) {
  const int r = in[0], g = in[1], b = in[2];
  const int max = std::max(r, std::max(g, b));
  const int min = std::min(r, std::min(g, b));
  uint8_t h = 0, s = 0;
  if (max != min) {
    const int range = max - min;
    const float sat = float(double(range) / max);
    const float rc = float(double(max - r) / range);
    const float gc = float(double(max - g) / range);
    const float bc = float(double(max - b) / range);
    // Convert.c mixes float32 and double here; each sum is exact in double and rounded once.
    float hue = r == max ? bc - gc : g == max ? float(2.0 + rc - bc) : float(4.0 + gc - rc);
    // fmod(hue / 6 + 1, 1): the argument lies in [5/6, 2), where subtracting 1 is exact.
    const double turns = double(hue) / 6.0 + 1.0;
    hue = float(turns >= 1 ? turns - 1 : turns);
    h = uint8_t(double(hue) * 255);
    s = uint8_t(double(sat) * 255);
  }
  out[0] = h;
  out[1] = s;
  out[2] = uint8_t(max);
}

// Per hue byte: the sector floor(h * 6 / 255) and the float32 remainder; per saturation byte: the
// float32 s / 255. As libImaging's hsv2rgb computes them.
struct HsvTables {
  std::array<uint8_t, 256> sector;
  std::array<float, 256> remainder;
  std::array<float, 256> saturation;
  HsvTables() {
    for (int v = 0; v < 256; ++v) {
      const double i = std::floor(v * 6 / 255.0);
      sector[v] = uint8_t(int(i) % 6);
      remainder[v] = float(v * 6 / 255.0 - i);
      saturation[v] = float(v / 255.0);
    }
  }
};
const HsvTables hsv_tables;

// C's round() of a value in [0, 255]: halves away from zero. Written out because without SSE4.1 the
// compiler calls the library function, which costs more than the rest of the conversion.
uint8_t round_byte(double x) {
  const int i = int(x);
  return uint8_t(i + (x - i >= 0.5));
}

void pixel_to_rgb(const uint8_t* in, uint8_t* out) {
  const int h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = uint8_t(v);
    return;
  }
  const float f = hsv_tables.remainder[h];
  const float fs = hsv_tables.saturation[s];
  const uint8_t vv = uint8_t(v);
  const uint8_t x = round_byte(v * (1 - double(fs)));
  const uint8_t y = round_byte(v * (1 - double(fs * f)));
  const uint8_t z = round_byte(v * (1 - double(fs) * (1 - double(f))));
  uint8_t r, g, b;
  switch (hsv_tables.sector[h]) {
    case 0: r = vv; g = z; b = x; break;
    case 1: r = y; g = vv; b = x; break;
    case 2: r = x; g = vv; b = z; break;
    case 3: r = x; g = y; b = vv; break;
    case 4: r = z; g = x; b = vv; break;
    default: r = vv; g = x; b = y;
  }
  out[0] = r;
  out[1] = g;
  out[2] = b;
}

}  // namespace

DINO_SIMD_CLONES void blend(const uint8_t* a, const uint8_t* b, float alpha, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = blend_value(a[i], b[i], alpha);
}

void adjust_brightness(uint8_t* rgb, size_t pixels, float factor) {
  blend_with_constant(rgb, pixels * 3, 0, factor);
}

void adjust_contrast(uint8_t* rgb, size_t pixels, float factor) {
  uint64_t sum = 0;
  for (size_t i = 0; i < pixels; ++i) sum += luma(rgb + 3 * i);
  blend_with_constant(rgb, pixels * 3, int(std::floor(double(sum) / double(pixels) + 0.5)), factor);
}

void adjust_saturation(uint8_t* rgb, size_t pixels, float factor) {
  // As ImageEnhance.Color does it: the gray image in three channels, blended with the image byte by
  // byte; a chunk of pixels at a time.
  constexpr size_t kChunk = 256;
  uint8_t gray[3 * kChunk];
  for (size_t start = 0; start < pixels; start += kChunk) {
    const size_t n = std::min(kChunk, pixels - start);
    uint8_t* chunk = rgb + 3 * start;
    for (size_t i = 0; i < n; ++i) gray[3 * i] = gray[3 * i + 1] = gray[3 * i + 2] = luma(chunk + 3 * i);
    blend(gray, chunk, factor, chunk, 3 * n);
  }
}

void adjust_hue(uint8_t* rgb, size_t pixels, double hue_factor) {
  const uint8_t shift = uint8_t(int(hue_factor * 255) & 255);
  for (size_t i = 0; i < pixels; ++i, rgb += 3) {
    uint8_t hsv[3];
    pixel_to_hsv(rgb, hsv);
    hsv[0] = uint8_t(hsv[0] + shift);
    pixel_to_rgb(hsv, rgb);
  }
}

void grayscale(uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i, rgb += 3) rgb[0] = rgb[1] = rgb[2] = luma(rgb);
}

void solarize(uint8_t* data, size_t n) {
  for (size_t i = 0; i < n; ++i) data[i] = data[i] < 128 ? data[i] : uint8_t(255 - data[i]);
}

void rgb_to_hsv(const uint8_t* src, uint8_t* dst, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) pixel_to_hsv(src + 3 * i, dst + 3 * i);
}

void hsv_to_rgb(const uint8_t* src, uint8_t* dst, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) pixel_to_rgb(src + 3 * i, dst + 3 * i);
}

}  // namespace dino::image
