// float32 <-> bfloat16 / float16 on bit patterns, for the CPU and the CUDA kernels alike (host and
// device code), so that a cast gives the same bits on every device: round to nearest even, NaNs stay
// (quiet) NaNs, what rounds past the largest half becomes inf, float16 subnormals are exact.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define DINO_HOST_DEVICE __host__ __device__
#else
#define DINO_HOST_DEVICE
#endif

namespace dino {

DINO_HOST_DEVICE inline uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

DINO_HOST_DEVICE inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

DINO_HOST_DEVICE inline uint16_t f32_to_bf16_bits(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

DINO_HOST_DEVICE inline uint32_t bf16_to_f32_bits(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

DINO_HOST_DEVICE inline uint16_t f32_to_f16_bits(uint32_t u) {
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
  return static_cast<uint16_t>(h | sign);
}

// Every float16 is a float32 exactly. A NaN becomes the canonical quiet NaN with the sign kept.
DINO_HOST_DEVICE inline uint32_t f16_to_f32_bits(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t u;
  if (e == 0) u = float_bits(static_cast<float>(m) * 5.9604644775390625e-8f);  // m * 2^-24: exact
  else if (e == 31) u = m ? 0x7fc00000u : 0x7f800000u;
  else u = ((e + 112u) << 23) | (m << 13);  // (1024 + m) * 2^(e - 25): exponent e - 15 + 127
  return u | sign;
}

}  // namespace dino
