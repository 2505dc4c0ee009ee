// Vectorisable float32 math shared by the CPU kernels (softmax, attention, GELU, norms), and the
// multiversioning that compiles their hot loops for AVX-512 and AVX2 next to baseline x86-64.
#pragma once
#include <cstdint>
#include <cstring>

namespace dino::cpu {

// Loops worth vectorising are put in functions marked DINO_SIMD_CLONES: GCC compiles each for AVX-512,
// AVX2 and baseline x86-64, and the loader binds the best one the CPU has (function multiversioning; the
// kernels here run 2-5x faster than their baseline build). The OpenMP loops that call them must stay
// outside: a parallel region is outlined before cloning, so its body would only get the baseline code.
// Defining DINO_SIMD_CLONES on the command line (e.g. empty) overrides this, to test one variant.
#ifndef DINO_SIMD_CLONES
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define DINO_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef DINO_SIMD_CLONES
#define DINO_SIMD_CLONES
#endif

// Vectorisable math for float32 loops (`omp simd`), from arithmetic and bit operations only.
//
// c ? a : b. Written as a ternary on floats, GCC may move the arithmetic that computes a or b into
// the branch, and under the default -ftrapping-math it will not execute such code speculatively, so
// the branch stays and the loop does not vectorise. A bit mask always blends.
inline float select_f32(bool c, float a, float b) {
  uint32_t ai, bi;
  std::memcpy(&ai, &a, sizeof a);
  std::memcpy(&bi, &b, sizeof b);
  const uint32_t mask = 0u - static_cast<uint32_t>(c), r = (ai & mask) | (bi & ~mask);
  float f;
  std::memcpy(&f, &r, sizeof f);
  return f;
}

// exp(x). libm's expf is a call that the compiler cannot vectorise (without -ffast-math). Within 1.4 ulp
// of exp over the normal range; below FLT_MIN the results are subnormals down to exp(-103.9) and 0
// below that; above 88.72 it is +inf; NaN stays NaN.
inline float exp_f32(float x) {
  x = select_f32(x < -104.0f, -104.0f, x);  // NaN fails both comparisons and passes through
  x = select_f32(x > 89.0f, 89.0f, x);
  // n = round(x / ln 2): adding 1.5 * 2^23 leaves round(x * log2(e)) in the low mantissa bits of m.
  const float shifter = 12582912.0f;
  const float m = x * 1.44269504f + shifter;
  const float n = m - shifter;
  // r = x - n ln 2 with ln 2 in two parts (Cody-Waite): ln2_hi has 9 significant bits, so n * ln2_hi
  // is exact for the |n| <= 150 that occur.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r on |r| <= ln(2)/2 as 1 + r + r^2 q(r), q a minimax fit of (e^r - 1 - r) / r^2.
  const float q = 0.5f + r * (0.166665778f + r * (0.0416668542f + r * (0.00836314075f + r * 0.0013901284f)));
  const float p = 1.0f + r + r * r * q;
  // 2^n as two factors 2^(n/2) 2^(n - n/2), so that n from -150 (subnormal results) to 128 (overflow
  // to inf) needs no special case: each factor is a normal float.
  int32_t mbits;
  std::memcpy(&mbits, &m, sizeof m);
  const int32_t ni = mbits - 0x4B400000, n1 = ni >> 1, n2 = ni - n1;
  const uint32_t b1 = static_cast<uint32_t>(n1 + 127) << 23, b2 = static_cast<uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  return p * s1 * s2;
}

}  // namespace dino::cpu
