#include "shape.h"

#include <algorithm>
#include <cstring>

namespace dino::cpu {
namespace {

// Copies below this many elements stay on one thread: a parallel region costs more than the copy.
constexpr int64_t kParallelMin = 32768;
// Contiguous runs are split into pieces of this many elements so that a copy with few rows (an axis-0
// concat has one) still spreads over the threads.
constexpr int64_t kPiece = 16384;
// Edge of the square tiles of a transposing permute: a 32 x 32 float tile of the source and one of the
// destination (8 KB together) stay in L1 while the tile is written.
constexpr int64_t kTile = 32;

}  // namespace

void copy_axis_range(float* dst, int64_t dst_len, int64_t dst_start, const float* src, int64_t src_len,
                     int64_t src_start, int64_t len, int64_t outer, int64_t inner) {
  const int64_t run = len * inner;
  if (run == 0 || outer == 0) return;
  const int64_t pieces = (run + kPiece - 1) / kPiece;
#pragma omp parallel for collapse(2) schedule(static) if (outer * run > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t b = p * kPiece, e = std::min(run, b + kPiece);
      std::memcpy(dst + (o * dst_len + dst_start) * inner + b, src + (o * src_len + src_start) * inner + b,
                  static_cast<size_t>(e - b) * sizeof(float));
    }
  }
}

void slice_backward(float* dx, const float* dy, int64_t outer, int64_t size, int64_t start, int64_t len,
                    int64_t inner) {
  const int64_t row = size * inner, head = start * inner, run = len * inner;
  // One pass per row: each element of dx is written once, as zero or as a copy of dy.
#pragma omp parallel for schedule(static) if (outer * row > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    float* d = dx + o * row;
    std::fill(d, d + head, 0.0f);
    std::memcpy(d + head, dy + o * run, static_cast<size_t>(run) * sizeof(float));
    std::fill(d + head + run, d + row, 0.0f);
  }
}

int64_t permute_runs(const std::vector<int64_t>& shape, const std::vector<int64_t>& dims, std::vector<int64_t>* size,
                     std::vector<int64_t>* stride) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> xstride(nd, 1);
  for (int64_t d = nd - 2; d >= 0; --d) xstride[d] = xstride[d + 1] * shape[d + 1];
  size->clear();
  stride->clear();
  int64_t n = 1;
  for (int64_t k = 0; k < nd; ++k) {
    const int64_t s = shape[dims[k]], st = xstride[dims[k]];
    n *= s;
    if (s == 1) continue;
    if (!size->empty() && stride->back() == s * st) {
      size->back() *= s;
      stride->back() = st;
    } else {
      size->push_back(s);
      stride->push_back(st);
    }
  }
  return n;
}

void permute(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& dims) {
  std::vector<int64_t> size, stride;
  const int64_t n = permute_runs(shape, dims, &size, &stride);
  if (n == 0) return;
  const int64_t r = static_cast<int64_t>(size.size());
  if (r == 0 || stride[r - 1] == 1) {
    // The last output dim runs along x: contiguous rows, copied one after the other.
    const int64_t run = r ? size[r - 1] : 1, rows = n / run;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < rows; ++i) {
      int64_t off = 0, rem = i;
      for (int64_t d = r - 2; d >= 0; --d) {
        off += (rem % size[d]) * stride[d];
        rem /= size[d];
      }
      std::memcpy(out + i * run, x + off, static_cast<size_t>(run) * sizeof(float));
    }
    return;
  }
  // A transpose: the output dim q that reads x with stride 1 and the last output dim are copied in
  // square tiles, reading down x's rows and writing along out's rows; the other dims index the tiles.
  int64_t q = 0;
  while (stride[q] != 1) ++q;
  const int64_t nq = size[q], nl = size[r - 1], ls = stride[r - 1];
  int64_t qstride_out = 1;  // out's stride of dim q
  for (int64_t d = q + 1; d < r; ++d) qstride_out *= size[d];
  const int64_t tq = (nq + kTile - 1) / kTile, tl = (nl + kTile - 1) / kTile;
  const int64_t batches = n / (nq * nl), units = batches * tq * tl;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t jt = u % tl, it = (u / tl) % tq;
    // Offsets of this tile's batch entry in x and out, from its multi-index over the other dims.
    int64_t xoff = 0, ooff = 0, rem = u / (tl * tq), ostride = nl;
    for (int64_t d = r - 2; d >= 0; --d) {
      if (d == q) {
        ostride *= nq;
        continue;
      }
      const int64_t i = rem % size[d];
      rem /= size[d];
      xoff += i * stride[d];
      ooff += i * ostride;
      ostride *= size[d];
    }
    const int64_t i0 = it * kTile, i1 = std::min(nq, i0 + kTile);
    const int64_t j0 = jt * kTile, j1 = std::min(nl, j0 + kTile);
    for (int64_t i = i0; i < i1; ++i) {
      float* o = out + ooff + i * qstride_out;
      const float* s = x + xoff + i;
      for (int64_t j = j0; j < j1; ++j) o[j] = s[j * ls];
    }
  }
}

}  // namespace dino::cpu
