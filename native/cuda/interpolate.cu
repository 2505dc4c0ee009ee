// Bicubic resampling kernels, one thread per output value (forward) or per input pixel (backward, a
// gather: no atomics). Each thread recomputes the few taps it needs from the scale factor, with the
// float arithmetic of native/cpu/interpolate.cpp written as explicit _rn intrinsics (nvcc would otherwise
// fuse multiply-adds that the CPU rounds twice), and adds its terms in the CPU's order, so the results
// are bitwise the CPU's.
#include "interpolate.h"

#include <algorithm>

#include "common.cuh"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

int grid_for(int64_t n) { return static_cast<int>(std::min(ceil_div(n, kThreads), kMaxBlocks)); }

// Keys' cubic convolution kernel with A = -0.75, in the Horner forms PyTorch evaluates.
constexpr float kA = -0.75f;
__device__ float cubic_near(float d) {
  return __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(__fmul_rn(kA + 2.0f, d), kA + 3.0f), d), d), 1.0f);
}
__device__ float cubic_far(float d) {
  return __fsub_rn(__fmul_rn(__fadd_rn(__fmul_rn(__fsub_rn(__fmul_rn(kA, d), 5.0f * kA), d), 8.0f * kA), d),
                   4.0f * kA);
}

// The source coordinate step * (i + 0.5) - 0.5 of output index i (step = 1/scale rounded to float, not
// clamped at 0), and the index of the pixel at or before it, capped at the last one. Non-decreasing in
// i, which the backward's search relies on.
__device__ float source_coord(int64_t i, float step) {
  return __fsub_rn(__fmul_rn(step, __fadd_rn(static_cast<float>(i), 0.5f)), 0.5f);
}
__device__ int64_t tap_base(float src, int64_t in) {
  return min(static_cast<int64_t>(floorf(src)), in - 1);
}

// The four source indices (clamped to the border) and weights of output index i along one axis.
__device__ void cubic_taps(int64_t i, int64_t in, float step, int64_t index[4], float weight[4]) {
  const float src = source_coord(i, step);
  const int64_t i0 = tap_base(src, in);
  const float f = fminf(fmaxf(__fsub_rn(src, static_cast<float>(i0)), 0.0f), 1.0f);
  const float g = __fsub_rn(1.0f, f);
  weight[0] = cubic_far(__fadd_rn(f, 1.0f));
  weight[1] = cubic_near(f);
  weight[2] = cubic_near(g);
  weight[3] = cubic_far(__fadd_rn(g, 1.0f));
  for (int j = 0; j < 4; ++j) index[j] = min(max(i0 - 1 + j, int64_t{0}), in - 1);
}

// The first output index whose taps can reach input index r: any with base >= r - 2 (r > 0), all from 0
// for r = 0 (the clamped border). Binary search over the non-decreasing base.
__device__ int64_t first_output(int64_t r, int64_t in, int64_t out, float step) {
  if (r == 0) return 0;
  int64_t lo = 0, hi = out;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (tap_base(source_coord(mid, step), in) >= r - 2)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// Past this output index no tap reaches r again: its base is beyond r + 1 (unless r is the last index,
// which the clamp keeps reaching).
__device__ bool past(int64_t o, int64_t r, int64_t in, float step) {
  return r < in - 1 && tap_base(source_coord(o, step), in) > r + 1;
}

// Separable as on the CPU: the W taps of each of the four rows first (a row value the CPU keeps in its
// scratch), then the four rows.
__global__ void bicubic_forward_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t planes,
                                       int64_t H, int64_t W, int64_t outH, int64_t outW, float stepH,
                                       float stepW) {
  const int64_t total = planes * outH * outW;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t ox = i % outW, t = i / outW;
    const int64_t oy = t % outH, pl = t / outH;
    int64_t ix[4], iy[4];
    float wx[4], wy[4];
    cubic_taps(ox, W, stepW, ix, wx);
    cubic_taps(oy, H, stepH, iy, wy);
    const float* src = x + pl * H * W;
    float acc = 0.0f;
    for (int j = 0; j < 4; ++j) {
      const float* line = src + iy[j] * W;
      float row = __fmul_rn(line[ix[0]], wx[0]);
      row = __fadd_rn(row, __fmul_rn(line[ix[1]], wx[1]));
      row = __fadd_rn(row, __fmul_rn(line[ix[2]], wx[2]));
      row = __fadd_rn(row, __fmul_rn(line[ix[3]], wx[3]));
      acc = j == 0 ? __fmul_rn(row, wy[0]) : __fadd_rn(acc, __fmul_rn(row, wy[j]));
    }
    y[i] = acc;
  }
}

// dx[r][c] gathers what the CPU's two scatter passes add into it, in their order: over the outputs ox
// (then taps) whose W taps hit c, weight times the row value rows[r][ox], itself the sum over the outputs
// oy (then taps) whose H taps hit r of weight times dy[oy][ox]. Both sums start from 0 as the CPU's
// zero-filled buffers do.
__global__ void bicubic_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy, int64_t planes,
                                        int64_t H, int64_t W, int64_t outH, int64_t outW, float stepH,
                                        float stepW) {
  const int64_t total = planes * H * W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t c = i % W, t = i / W;
    const int64_t r = t % H, pl = t / H;
    const float* g = dy + pl * outH * outW;
    const int64_t oy0 = first_output(r, H, outH, stepH);
    float acc = 0.0f;
    for (int64_t ox = first_output(c, W, outW, stepW); ox < outW && !past(ox, c, W, stepW); ++ox) {
      int64_t ix[4];
      float wx[4];
      cubic_taps(ox, W, stepW, ix, wx);
      if (ix[0] != c && ix[1] != c && ix[2] != c && ix[3] != c) continue;
      float row = 0.0f;
      for (int64_t oy = oy0; oy < outH && !past(oy, r, H, stepH); ++oy) {
        int64_t iy[4];
        float wy[4];
        cubic_taps(oy, H, stepH, iy, wy);
        const float gv = g[oy * outW + ox];
        for (int j = 0; j < 4; ++j)
          if (iy[j] == r) row = __fadd_rn(row, __fmul_rn(wy[j], gv));
      }
      for (int j = 0; j < 4; ++j)
        if (ix[j] == c) acc = __fadd_rn(acc, __fmul_rn(wx[j], row));
    }
    dx[i] = acc;
  }
}

}  // namespace

// x (N, C, H, W) -> y (N, C, outH, outW), planes = N*C
Status bicubic_forward(int device, float* y, const float* x, int64_t planes, int64_t H, int64_t W, int64_t outH,
                       int64_t outW, double scaleH, double scaleW) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (planes <= 0 || outH <= 0 || outW <= 0) return Status::OK();
  bicubic_forward_kernel<<<grid_for(planes * outH * outW), kThreads, 0, stream>>>(
      y, x, planes, H, W, outH, outW, static_cast<float>(1.0 / scaleH), static_cast<float>(1.0 / scaleW));
  DINO_CUDA_CHECK_LAUNCH("bicubic_forward_kernel");
  return Status::OK();
}

// dy (N, C, outH, outW) -> dx (N, C, H, W), planes = N*C
Status bicubic_backward(int device, float* dx, const float* dy, int64_t planes, int64_t H, int64_t W, int64_t outH,
                        int64_t outW, double scaleH, double scaleW) {
  cudaStream_t stream = nullptr;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (planes <= 0 || H <= 0 || W <= 0) return Status::OK();
  bicubic_backward_kernel<<<grid_for(planes * H * W), kThreads, 0, stream>>>(
      dx, dy, planes, H, W, outH, outW, static_cast<float>(1.0 / scaleH), static_cast<float>(1.0 / scaleW));
  DINO_CUDA_CHECK_LAUNCH("bicubic_backward_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
