#include "elementwise.h"

#include <cmath>
#include <cstring>

#include "dino/half.h"

namespace dino::cpu {
namespace {

template <BinaryOp op>
inline float apply(float a, float b) {
  if constexpr (op == BinaryOp::kAdd) return a + b;
  else if constexpr (op == BinaryOp::kSub) return a - b;
  else if constexpr (op == BinaryOp::kMul) return a * b;
  else return a / b;
}

// The inner loop over the last dimension, specialised on whether each input moves (stride 1) or
// stays (stride 0), so that the common cases vectorise.
template <BinaryOp op, int SA, int SB>
inline void binary_row(float* out, const float* a, const float* b, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = apply<op>(a[j * SA], b[j * SB]);
}

template <BinaryOp op>
void binary_rows(float* out, const float* a, const float* b, const std::vector<int64_t>& shape,
                 const std::vector<int64_t>& sa, const std::vector<int64_t>& sb) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  const int64_t n = nd ? shape[nd - 1] : 1;
  const int64_t rows = n ? [&] { int64_t r = 1; for (int64_t d = 0; d + 1 < nd; ++d) r *= shape[d]; return r; }() : 0;
  const int64_t la = nd ? sa[nd - 1] : 0, lb = nd ? sb[nd - 1] : 0;
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    // Offsets of this row in a and b, from its multi-index over the leading dimensions.
    int64_t oa = 0, ob = 0, rem = r;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    float* o = out + r * n;
    if (la && lb) binary_row<op, 1, 1>(o, a + oa, b + ob, n);
    else if (la) binary_row<op, 1, 0>(o, a + oa, b + ob, n);
    else if (lb) binary_row<op, 0, 1>(o, a + oa, b + ob, n);
    else binary_row<op, 0, 0>(o, a + oa, b + ob, n);
  }
}

}  // namespace

void binary_forward(BinaryOp op, float* out, const float* a, const float* b, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& sa, const std::vector<int64_t>& sb) {
  switch (op) {
    case BinaryOp::kAdd: return binary_rows<BinaryOp::kAdd>(out, a, b, shape, sa, sb);
    case BinaryOp::kSub: return binary_rows<BinaryOp::kSub>(out, a, b, shape, sa, sb);
    case BinaryOp::kMul: return binary_rows<BinaryOp::kMul>(out, a, b, shape, sa, sb);
    case BinaryOp::kDiv: return binary_rows<BinaryOp::kDiv>(out, a, b, shape, sa, sb);
  }
}

void broadcast_copy(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& sx) {
  // x + 0 through the binary machinery: the zero operand is never moved (stride 0).
  static const float zero = 0.0f;
  std::vector<int64_t> s0(shape.size(), 0);
  binary_rows<BinaryOp::kAdd>(out, x, &zero, shape, sx, s0);
}

void affine_forward(float* out, const float* x, int64_t n, float alpha, float beta) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * x[i] + beta;
}

void sum_axis_forward(float* out, const float* x, int64_t outer, int64_t R, int64_t inner, float scale) {
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * R > 32768)
    for (int64_t o = 0; o < outer; ++o) {
      const float* row = x + o * R;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t r = 0; r < R; ++r) s += row[r];
      out[o] = static_cast<float>(s * scale);
    }
    return;
  }
  // Columns: each thread owns a block of inner columns and walks the rows, so reads stay sequential.
  const int64_t block = 256;
  const int64_t nblocks = (inner + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static) if (outer * R * inner > 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t bi = 0; bi < nblocks; ++bi) {
      const int64_t c0 = bi * block, c1 = std::min(inner, c0 + block);
      double acc[block];
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] = 0.0;
      for (int64_t r = 0; r < R; ++r) {
        const float* row = x + (o * R + r) * inner;
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; ++c) out[o * inner + c] = static_cast<float>(acc[c - c0] * scale);
    }
  }
}

void f32_to_bf16(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16_bits(float_bits(x[i]));
}

void bf16_to_f32(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bits_float(bf16_to_f32_bits(x[i]));
}

void f32_to_f16(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16_bits(float_bits(x[i]));
}

void f16_to_f32(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bits_float(f16_to_f32_bits(x[i]));
}

}  // namespace dino::cpu
