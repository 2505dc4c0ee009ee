// Bicubic resampling on the CPU with the semantics of PyTorch's
// F.interpolate(x, scale_factor=(sh, sw), mode='bicubic', align_corners=False): the source coordinate
// of output index i is (i + 0.5) / scale - 0.5 with the GIVEN scale factor (not in/out, which differs
// when in*scale is not an integer: DINO's position embeddings), cubic convolution with A = -0.75, and
// indices past the border clamped to it. No antialiasing.
#pragma once
#include <cstdint>

namespace dino::cpu {

// Floats of scratch both passes need: one (H, outW) row buffer per thread. The caller allocates it, so
// that an absurd size is an allocation error and not an exception inside a parallel region.
int64_t bicubic_scratch(int64_t H, int64_t outW);

// x (N, C, H, W) -> y (N, C, outH, outW), planes = N*C
void bicubic_forward(float* y, const float* x, float* scratch, int64_t planes, int64_t H, int64_t W, int64_t outH,
                     int64_t outW, double scaleH, double scaleW);

// dy (N, C, outH, outW) -> dx (N, C, H, W): each input pixel gets the sum of its weights times dy.
void bicubic_backward(float* dx, const float* dy, float* scratch, int64_t planes, int64_t H, int64_t W, int64_t outH,
                      int64_t outW, double scaleH, double scaleW);

}  // namespace dino::cpu
