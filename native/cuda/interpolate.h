// Bicubic resampling on a CUDA device, mirroring native/cpu/interpolate.h (PyTorch's F.interpolate,
// mode='bicubic', align_corners=False, with the given scale factors). The taps are computed in each
// thread from the scale factors, so no scratch is needed; the sums run in the CPU's order, so results
// are bitwise the CPU's.
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (N, C, H, W) -> y (N, C, outH, outW), planes = N*C
Status bicubic_forward(int device, float* y, const float* x, int64_t planes, int64_t H, int64_t W, int64_t outH,
                       int64_t outW, double scaleH, double scaleW);

// dy (N, C, outH, outW) -> dx (N, C, H, W), written: each input pixel gathers its weights times dy (no
// atomics, deterministic).
Status bicubic_backward(int device, float* dx, const float* dy, int64_t planes, int64_t H, int64_t W, int64_t outH,
                        int64_t outW, double scaleH, double scaleW);

}  // namespace dino::cuda
