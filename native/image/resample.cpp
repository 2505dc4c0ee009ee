#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../cpu/simd.h"
#include "layout.h"
#include "scratch.h"

namespace dino::image {
namespace {

constexpr int kPrecisionBits = 22;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
constexpr double kOne = 1 << kPrecisionBits;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

double bilinear(double x) {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

// Output i of a pass reads count[i] inputs from start[i], with weights[i * ksize ...] in fixed point.
struct Taps {
  int64_t ksize;
  std::vector<int64_t> start;
  std::vector<int32_t> count;
  std::vector<int32_t> weights;
};

Taps compute_taps(int64_t in_size, int64_t out_size, Filter filter) {
  double (*kernel)(double) = filter == Filter::kBicubic ? bicubic : bilinear;
  const double kernel_support = filter == Filter::kBicubic ? 2 : 1;
  const double scale = double(in_size) / double(out_size);
  const double filter_scale = scale < 1 ? 1 : scale;
  const double support = kernel_support * filter_scale;
  const double inv_filter_scale = 1 / filter_scale;
  Taps taps;
  taps.ksize = int64_t(std::ceil(support)) * 2 + 1;
  taps.start.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(out_size * taps.ksize, 0);
  std::vector<double> raw(taps.ksize);
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = (double(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(int64_t(center + support + 0.5), in_size);
    const int64_t n = hi - lo;
    double sum = 0;
    for (int64_t x = 0; x < n; ++x) {
      raw[x] = kernel((double(x + lo) - center + 0.5) * inv_filter_scale);
      sum += raw[x];
    }
    int32_t* w = &taps.weights[i * taps.ksize];
    for (int64_t x = 0; x < n; ++x) {
      const double k = sum != 0 ? raw[x] / sum : raw[x];
      w[x] = int32_t(k < 0 ? -0.5 + k * kOne : 0.5 + k * kOne);
    }
    taps.start[i] = lo;
    taps.count[i] = int32_t(n);
  }
  return taps;
}

uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One pass over whole lines: output line j (`length` bytes, at dst + j * dst_stride) is the weighted
// sum of input lines start[j] .. start[j] + count[j] - 1 (`stride` bytes apart), byte by byte. The
// sums stay below 2^31 in magnitude (255 * sum |w| < 1.3 * 2^30).
DINO_SIMD_CLONES void resample_lines(const uint8_t* src, int64_t stride, int64_t length, const Taps& taps,
                                     int64_t out_lines, uint8_t* dst, int64_t dst_stride) {
  auto acc = scratch<int32_t>(length);
  for (int64_t j = 0; j < out_lines; ++j) {
    const uint8_t* line = src + taps.start[j] * stride;
    const int32_t* w = &taps.weights[j * taps.ksize];
    std::fill(acc.get(), acc.get() + length, kHalf);
    for (int32_t t = 0; t < taps.count[j]; ++t, line += stride) {
      const int32_t wt = w[t];
      for (int64_t i = 0; i < length; ++i) acc[i] += int32_t(line[i]) * wt;
    }
    uint8_t* out = dst + j * dst_stride;
    for (int64_t i = 0; i < length; ++i) out[i] = clip8(acc[i]);
  }
}

// The horizontal pass of `rows` rows (width pixels each, from src, rows src_stride bytes apart) into
// dst (rows x out_width, packed). Bands of rows are transposed so that the pass runs over whole lines
// like the vertical one, then transposed back.
void resample_rows(const uint8_t* src, int64_t src_stride, int64_t width, int64_t rows, const Taps& taps,
                   int64_t out_width, uint8_t* dst) {
  constexpr int64_t kBand = 64;
  const int64_t band = std::min(rows, kBand);
  auto columns = scratch<uint8_t>(width * band * 3);
  auto resampled = scratch<uint8_t>(out_width * band * 3);
  for (int64_t y = 0; y < rows; y += band) {
    const int64_t n = std::min(band, rows - y);
    transpose(src + y * src_stride, width, n, src_stride, columns.get(), n * 3);
    resample_lines(columns.get(), n * 3, n * 3, taps, out_width, resampled.get(), n * 3);
    transpose(resampled.get(), n, out_width, n * 3, dst + y * out_width * 3, out_width * 3);
  }
}

}  // namespace

void resample(Filter filter, const uint8_t* src, int64_t src_width, Box box, uint8_t* dst, int64_t out_width,
              int64_t out_height) {
  const int64_t src_stride = src_width * 3;
  const int64_t row_length = out_width * 3;
  const uint8_t* origin = src + box.top * src_stride + box.left * 3;
  const bool horizontal = out_width != box.width;
  const bool vertical = out_height != box.height;
  if (!horizontal && !vertical) {
    for (int64_t y = 0; y < box.height; ++y) std::memcpy(dst + y * row_length, origin + y * src_stride, row_length);
    return;
  }
  if (!horizontal) {
    resample_lines(origin, src_stride, row_length, compute_taps(box.height, out_height, filter), out_height, dst,
                   row_length);
    return;
  }
  const Taps columns = compute_taps(box.width, out_width, filter);
  if (!vertical) {
    resample_rows(origin, src_stride, box.width, box.height, columns, out_width, dst);
    return;
  }
  Taps rows = compute_taps(box.height, out_height, filter);
  // Only the rows the vertical taps reach; the vertical taps then count from the first of them.
  const int64_t first = rows.start.front();
  const int64_t last = rows.start.back() + rows.count.back();
  for (int64_t& s : rows.start) s -= first;
  auto resized = scratch<uint8_t>((last - first) * row_length);
  resample_rows(origin + first * src_stride, src_stride, box.width, last - first, columns, out_width, resized.get());
  resample_lines(resized.get(), row_length, row_length, rows, out_height, dst, row_length);
}

}  // namespace dino::image
