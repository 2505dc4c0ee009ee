// One warp per row for C up to 1024 (the DINO head's 256-wide bottleneck, the backbone features), one
// block per row beyond; sums in double in a fixed order (reduce.cuh), so runs are bitwise reproducible.
#include "common.cuh"
#include "l2norm.h"
#include "reduce.cuh"

namespace dino::cuda {
namespace {

template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
l2_normalize_forward_kernel(float* y, float* norm, const float* x, int64_t rows, int64_t C, float eps) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s = 0.0;
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) s += static_cast<double>(xr[c]) * xr[c];
    s = Rows::reduce(s, ssum, SumOp(), 0.0);
    // The clamp compares the float norm, as the backward pass sees it, so both take the same branch.
    const float n = static_cast<float>(sqrt(s));
    const float inv = 1.0f / (n >= eps ? n : eps);
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) yr[c] = xr[c] * inv;
    if (Rows::tid() == 0) norm[r] = n;
  }
}

// The dot product is taken on both branches (it is wasted only for rows with norm < eps), so that the
// block reduction is reached by every thread whatever the branch.
template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
l2_normalize_backward_kernel(float* dx, const float* dy, const float* x, const float* norm, int64_t rows, int64_t C,
    float eps) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float *dyr = dy + r * C, *xr = x + r * C;
    float* dxr = dx + r * C;
    const float n = norm[r];
    double dot = 0.0;
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) dot += static_cast<double>(dyr[c]) * xr[c];
    dot = Rows::reduce(dot, ssum, SumOp(), 0.0);
    if (n >= eps) {
      const double nd = n;
      const float inv = static_cast<float>(1.0 / nd), k = static_cast<float>(dot / (nd * nd * nd));
      for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) dxr[c] = dyr[c] * inv - xr[c] * k;
    } else {
      const float inv = 1.0f / eps;
      for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) dxr[c] = dyr[c] * inv;
    }
  }
}

}  // namespace

// x (rows, C) -> y (rows, C), norm (rows)
Status l2_normalize_forward(int device, float* y, float* norm, const float* x, int64_t rows, int64_t C, float eps) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (rows <= 0) return Status::OK();
  if (C <= 0) {
    // An empty row has norm 0, as the CPU writes.
    DINO_CUDA_CHECK(cudaMemsetAsync(norm, 0, static_cast<size_t>(rows) * sizeof(float), stream));
    return Status::OK();
  }
  DINO_LAUNCH_ROWS(l2_normalize_forward_kernel, stream, rows, C, y, norm, x, rows, C, eps);
  DINO_CUDA_CHECK_LAUNCH("l2_normalize_forward_kernel");
  return Status::OK();
}

// dy (rows, C), x (rows, C), norm (rows) -> dx (rows, C)
Status l2_normalize_backward(int device, float* dx, const float* dy, const float* x, const float* norm, int64_t rows,
                             int64_t C, float eps) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (rows <= 0 || C <= 0) return Status::OK();
  DINO_LAUNCH_ROWS(l2_normalize_backward_kernel, stream, rows, C, dx, dy, x, norm, rows, C, eps);
  DINO_CUDA_CHECK_LAUNCH("l2_normalize_backward_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
