#include "elementwise.h"

#include <cmath>
#include <cstring>

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
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) out[i] = static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    else out[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

void bf16_to_f32(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = static_cast<uint32_t>(x[i]) << 16;
    std::memcpy(&out[i], &u, 4);
  }
}

void f32_to_f16(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    uint16_t h;
    if (a > 0x7f800000u) h = 0x7e00;                       // NaN
    else if (a >= 0x477ff000u) h = 0x7c00;                 // rounds to or beyond the largest half: inf
    else if (a < 0x33000000u) h = 0;                       // below half the smallest subnormal: zero
    else if (a < 0x38800000u) {                            // subnormal half
      const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
      const int shift = 126 - static_cast<int>(a >> 23);  // 14..24
      uint32_t v = mant >> shift;
      const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
      if (rem > halfway || (rem == halfway && (v & 1u))) ++v;
      h = static_cast<uint16_t>(v);
    } else {                                               // normal: rebias, round to nearest even
      uint32_t v = a - 0x38000000u;
      v = (v + 0xfffu + ((v >> 13) & 1u)) >> 13;
      h = static_cast<uint16_t>(v);
    }
    out[i] = static_cast<uint16_t>(h | sign);
  }
}

void f16_to_f32(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t sign = (static_cast<uint32_t>(x[i]) & 0x8000u) << 16;
    const uint32_t e = (x[i] >> 10) & 0x1fu, m = x[i] & 0x3ffu;
    float f;
    if (e == 0) f = std::ldexp(static_cast<float>(m), -24);
    else if (e == 31) f = m ? NAN : INFINITY;
    else f = std::ldexp(static_cast<float>(m | 0x400u), static_cast<int>(e) - 25);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&out[i], &u, 4);
  }
}

}  // namespace dino::cpu
