// Forward and dx: one warp per row for C up to 1024 (the ViT's 384 and 768), one block per row beyond,
// each row a few unit-stride passes like the CPU's. dweight and dbias: a column kernel in which each
// thread owns one column and sums a chunk of rows in order into double partials, then one thread per
// column adds the chunks in order. Every sum has a fixed order: runs are bitwise reproducible.
#include "common.cuh"
#include "layernorm.h"
#include "reduce.cuh"

namespace dino::cuda {
namespace {

constexpr int64_t kChunkRows = kLayerNormChunkRows;
constexpr int kColThreads = 256;

template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
layernorm_forward_kernel(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
    int64_t rows, int64_t C, float eps) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s = 0.0;
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) s += xr[c];
    s = Rows::reduce(s, ssum, SumOp(), 0.0);
    const double m = s / C;
    // Two passes in double: sum(x^2) - C m^2 would cancel badly when |mean| >> std.
    double v = 0.0;
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) {
      const double d = xr[c] - m;
      v += d * d;
    }
    v = Rows::reduce(v, ssum, SumOp(), 0.0);
    const float mf = static_cast<float>(m), rs = static_cast<float>(1.0 / sqrt(v / C + eps));
    // The mean as hi + lo floats: x - hi is exact for x near the mean, so x - hi - lo keeps the centred
    // value accurate to float precision even when |mean| >> std.
    const float mlo = static_cast<float>(m - mf);
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) yr[c] = ((xr[c] - mf) - mlo) * rs * weight[c] + bias[c];
    if (Rows::tid() == 0) {
      mean[r] = mf;
      rstd[r] = rs;
    }
  }
}

// dx per row, with xhat = (x - mean) rstd and g = dy * weight:
//   dx = rstd (g - mean(g) - xhat mean(g xhat)).
// u = x - mean uses the saved mean, rounded to float; the part it lost, lo = sum(u) / C, comes out of the
// same pass and is saved per row (lo_out) so the column kernel forms exactly the same xhat.
template <typename Rows>
__global__ void __launch_bounds__(kMaxRowThreads)
layernorm_backward_dx_kernel(float* dx, float* lo_out, const float* dy, const float* x, const float* weight,
    const float* mean, const float* rstd, int64_t rows, int64_t C) {
  __shared__ double ssum[32];
  for (int64_t r = Rows::first_row(); r < rows; r += Rows::row_stride()) {
    const float *dyr = dy + r * C, *xr = x + r * C;
    float* dxr = dx + r * C;
    const float m = mean[r], rs = rstd[r];
    double sg = 0.0, sgu = 0.0, su = 0.0;
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) {
      const float u = xr[c] - m, g = dyr[c] * weight[c];
      sg += g;
      sgu += static_cast<double>(g) * u;
      su += u;
    }
    sg = Rows::reduce(sg, ssum, SumOp(), 0.0);
    sgu = Rows::reduce(sgu, ssum, SumOp(), 0.0);
    su = Rows::reduce(su, ssum, SumOp(), 0.0);
    const double lo_d = su / C;
    const float lo = static_cast<float>(lo_d), mg = static_cast<float>(sg / C);
    const float mgx = static_cast<float>((sgu - lo_d * sg) / C * rs);
    for (int64_t c = Rows::tid(); c < C; c += Rows::nthreads()) {
      const float xhat = ((xr[c] - m) - lo) * rs;
      dxr[c] = rs * (dyr[c] * weight[c] - mg - xhat * mgx);
    }
    if (Rows::tid() == 0) lo_out[r] = lo;
  }
}

// Stage 1: block b covers columns [cb * blockDim, ...) of row chunk k = b / col_blocks; each thread sums
// its column over the chunk's rows in order. partial is (chunks, 2, C) doubles: dweight then dbias.
__global__ void layernorm_param_partial_kernel(double* partial, const float* dy, const float* x, const float* mean,
                                               const float* rstd, const float* lo, int64_t rows, int64_t C,
                                               int64_t col_blocks) {
  const int64_t k = blockIdx.x / col_blocks, cb = blockIdx.x % col_blocks;
  const int64_t c = cb * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t r0 = k * kChunkRows, r1 = r0 + kChunkRows < rows ? r0 + kChunkRows : rows;
  double pw = 0.0, pb = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const float xhat = ((x[r * C + c] - mean[r]) - lo[r]) * rstd[r], d = dy[r * C + c];
    pw += static_cast<double>(d) * xhat;
    pb += d;
  }
  partial[(k * 2) * C + c] = pw;
  partial[(k * 2 + 1) * C + c] = pb;
}

// Stage 2: the chunks in order, one thread per column. With no rows (chunks == 0) it writes zeros.
__global__ void layernorm_param_sum_kernel(float* dweight, float* dbias, const double* partial, int64_t chunks,
                                           int64_t C) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double w = 0.0, b = 0.0;
  // Unrolled so that several chunks' loads are in flight; the additions stay in chunk order.
#pragma unroll 8
  for (int64_t k = 0; k < chunks; ++k) {
    w += partial[(k * 2) * C + c];
    b += partial[(k * 2 + 1) * C + c];
  }
  dweight[c] = static_cast<float>(w);
  dbias[c] = static_cast<float>(b);
}

int64_t chunks_for(int64_t rows) { return ceil_div(rows, kChunkRows); }

}  // namespace

// x (rows, C), weight (C), bias (C) -> y (rows, C), mean (rows), rstd (rows)
Status layernorm_forward(int device, float* y, float* mean, float* rstd, const float* x, const float* weight,
                         const float* bias, int64_t rows, int64_t C, float eps) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (rows <= 0 || C <= 0) return Status::OK();
  DINO_LAUNCH_ROWS(layernorm_forward_kernel, stream, rows, C, y, mean, rstd, x, weight, bias, rows, C, eps);
  DINO_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
  return Status::OK();
}

// dy (rows, C), x (rows, C), weight (C), mean (rows), rstd (rows) -> dx (rows, C), dweight (C), dbias (C)
Status layernorm_backward(int device, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                          const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t C,
                          float* scratch) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (C <= 0) return Status::OK();
  float* lo = scratch;
  double* partial = reinterpret_cast<double*>(scratch + (rows + 1) / 2 * 2);
  const int64_t chunks = chunks_for(rows), col_blocks = ceil_div(C, kColThreads);
  if (rows > 0) {
    DINO_LAUNCH_ROWS(layernorm_backward_dx_kernel, stream, rows, C, dx, lo, dy, x, weight, mean, rstd, rows, C);
    DINO_CUDA_CHECK_LAUNCH("layernorm_backward_dx_kernel");
    // chunks * col_blocks stays far below gridDim.x's 2^31 - 1 for any tensor that fits in memory.
    layernorm_param_partial_kernel<<<static_cast<unsigned>(chunks * col_blocks), kColThreads, 0, stream>>>(
        partial, dy, x, mean, rstd, lo, rows, C, col_blocks);
    DINO_CUDA_CHECK_LAUNCH("layernorm_param_partial_kernel");
  }
  layernorm_param_sum_kernel<<<static_cast<unsigned>(col_blocks), kColThreads, 0, stream>>>(dweight, dbias, partial,
                                                                                            chunks, C);
  DINO_CUDA_CHECK_LAUNCH("layernorm_param_sum_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
