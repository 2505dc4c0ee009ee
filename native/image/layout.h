// Moving the pixels of 8-bit RGB images (3 bytes a pixel, rows packed) without changing them, and
// torchvision's ToTensor + Normalize, which ends every crop.
#pragma once
#include <cstdint>

namespace dino::image {

// PIL's transpose(FLIP_LEFT_RIGHT), in place.
void flip_horizontal(uint8_t* rgb, int64_t width, int64_t height);

// Pixel (x, y) of src (width x height, rows src_stride bytes apart) to pixel (y, x) of dst (height x
// width, rows dst_stride bytes apart). The separable filters run their horizontal passes through it,
// as passes over whole rows, which vectorise.
void transpose(const uint8_t* src, int64_t width, int64_t height, int64_t src_stride, uint8_t* dst, int64_t dst_stride);

// HWC bytes to CHW float32 through a table of the 256 normalised values of each channel
// (table[256 * c + v]).
void to_normalized_chw(const uint8_t* rgb, int64_t pixels, const float* table, float* out);

}  // namespace dino::image
