// The colour operations of torchvision's ColorJitter, RandomGrayscale and DINO's Solarization on PIL
// images, reproduced to the bit, in place on 8-bit RGB pixels (3 bytes each):
// - brightness, contrast and saturation are PIL's ImageEnhance: Image.blend(degenerate, img, factor)
//   with a black, a mean-gray and a grayscale degenerate image. Blend (libImaging/Blend.c) computes
//   in1 + alpha * (in2 - in1) in float32 (alpha is the factor rounded to float32) and truncates,
//   clipping to [0, 255] (it only needs to when alpha is outside [0, 1]);
// - Contrast's gray level is the mean of convert('L') as PIL's ImageStat takes it from the histogram,
//   rounded with int(mean + 0.5);
// - convert('L') is ITU-R 601-2 in 16-bit fixed point: (19595 R + 38470 G + 7471 B + 32768) >> 16;
// - hue is torchvision's adjust_hue: PIL's RGB -> HSV conversion (libImaging/Convert.c, float32 and
//   double arithmetic as written there), H shifted by trunc(hue * 255) with uint8 wrap-around (what
//   numpy 1.x gave for np.uint8 of a negative value), and PIL's HSV -> RGB;
// - solarize is ImageOps.solarize(threshold 128): v >= 128 becomes 255 - v.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dino::image {

// PIL's Image.blend(a, b, alpha) on n bytes; out may be a or b.
void blend(const uint8_t* a, const uint8_t* b, float alpha, uint8_t* out, size_t n);

// ImageEnhance.Brightness(img).enhance(factor).
void adjust_brightness(uint8_t* rgb, size_t pixels, float factor);

// ImageEnhance.Contrast(img).enhance(factor).
void adjust_contrast(uint8_t* rgb, size_t pixels, float factor);

// ImageEnhance.Color(img).enhance(factor).
void adjust_saturation(uint8_t* rgb, size_t pixels, float factor);

// torchvision's adjust_hue(img, hue_factor), hue_factor in [-0.5, 0.5].
void adjust_hue(uint8_t* rgb, size_t pixels, double hue_factor);

// torchvision's to_grayscale(img, num_output_channels=3): convert('L') in all three channels.
void grayscale(uint8_t* rgb, size_t pixels);

// ImageOps.solarize(img, threshold=128), on n bytes.
void solarize(uint8_t* data, size_t n);

// PIL's convert('HSV') and convert('RGB') from HSV; src and dst may be the same.
void rgb_to_hsv(const uint8_t* src, uint8_t* dst, size_t pixels);
void hsv_to_rgb(const uint8_t* src, uint8_t* dst, size_t pixels);

}  // namespace dino::image
