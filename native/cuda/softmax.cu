// One warp per row for rows up to 1024 wide (attention's 197), one block per row beyond (the DINO
// head's 65,536). Each pass re-reads the row (from L1/L2 for these sizes) rather than staging it in
// shared memory, which keeps every kernel a few unit-stride loops like the CPU's. Each thread sums its
// strided share of the row in a fixed order and the reductions (reduce.cuh) combine the threads in a
// fixed order, so results are bitwise reproducible.
#include "common.cuh"
#include "reduce.cuh"
#include "softmax.h"

namespace dino::cuda {
namespace {

// max over the row with -inf as the identity: a row of only -inf has max -inf, and then
// (-inf) - (-inf) = NaN everywhere, which is PyTorch's answer (as on the CPU). A +inf entry makes the
// max +inf, so inf - inf = NaN reaches the sum and every output; a NaN entry reaches the sum through
// its own exp. A -inf entry in a row with a finite max gets exp(-inf) = 0.
template <typename Rows>
__device__ __forceinline__ float row_max(const float* x, int64_t N, float* shared) {
  float m = -INFINITY;
  for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) m = fmaxf(m, x[j]);
  return Rows::reduce(m, shared, MaxOp(), -INFINITY);
}

// The two forward passes share the max and the sum; only the last pass differs.
template <typename Rows, bool kLog>
__device__ void softmax_rows(float* y, const float* x, int64_t rows, int64_t N) {
  __shared__ float smax[32];
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float* xr = x + r * N;
    float* yr = y + r * N;
    const float m = row_max<Rows>(xr, N, smax);
    double s = 0.0;
    for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) s += expf(xr[j] - m);
    s = Rows::reduce(s, ssum, SumOp(), 0.0);
    if constexpr (kLog) {
      // (x - m) - log(s) rather than x - (m + log(s)): x - m is exact near the max, where it matters.
      const float ls = static_cast<float>(log(s));
      for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) yr[j] = (xr[j] - m) - ls;
    } else {
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) yr[j] = expf(xr[j] - m) * inv;
    }
  }
}

template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads) softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t N) {
  softmax_rows<Rows, false>(y, x, rows, N);
}

template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads) log_softmax_forward_kernel(float* y, const float* x, int64_t rows,
                                                                             int64_t N) {
  softmax_rows<Rows, true>(y, x, rows, N);
}

// A product of two floats is exact in double, so the row sum rounds once per addition, as on the CPU.
template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float *dyr = dy + r * N, *yr = y + r * N;
    float* dxr = dx + r * N;
    double s = 0.0;
    for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) s += static_cast<double>(dyr[j]) * yr[j];
    const float d = static_cast<float>(Rows::reduce(s, ssum, SumOp(), 0.0));
    for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) dxr[j] = yr[j] * (dyr[j] - d);
  }
}

template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
log_softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float *dyr = dy + r * N, *yr = y + r * N;
    float* dxr = dx + r * N;
    double s = 0.0;
    for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) s += dyr[j];
    const float sf = static_cast<float>(Rows::reduce(s, ssum, SumOp(), 0.0));
    for (int64_t j = Rows::tid(); j < N; j += Rows::nthreads()) dxr[j] = dyr[j] - expf(yr[j]) * sf;
  }
}

// The launchers' common body: the device's stream, nothing to do for an empty matrix, then the kernel.
#define DINO_SOFTMAX_LAUNCH(kernel, ...)                       \
  do {                                                         \
    cudaStream_t stream_;                                      \
    DINO_RETURN_IF_ERROR(use_device(device, &stream_));        \
    if (rows <= 0 || N <= 0) return Status::OK();              \
    DINO_LAUNCH_ROWS(kernel, stream_, rows, N, __VA_ARGS__);   \
    DINO_CUDA_CHECK_LAUNCH(#kernel);                           \
    return Status::OK();                                       \
  } while (0)

}  // namespace

// x (rows, N) -> y (rows, N)
Status softmax_forward(int device, float* y, const float* x, int64_t rows, int64_t N) {
  DINO_SOFTMAX_LAUNCH(softmax_forward_kernel, y, x, rows, N);
}

// dy (rows, N), y (rows, N) -> dx (rows, N)
Status softmax_backward(int device, float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  DINO_SOFTMAX_LAUNCH(softmax_backward_kernel, dx, dy, y, rows, N);
}

// x (rows, N) -> y (rows, N)
Status log_softmax_forward(int device, float* y, const float* x, int64_t rows, int64_t N) {
  DINO_SOFTMAX_LAUNCH(log_softmax_forward_kernel, y, x, rows, N);
}

// dy (rows, N), y (rows, N) -> dx (rows, N)
Status log_softmax_backward(int device, float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
  DINO_SOFTMAX_LAUNCH(log_softmax_backward_kernel, dx, dy, y, rows, N);
}

}  // namespace dino::cuda
