// Patch embedding as im2col + cuBLAS GEMM. Patches do not overlap, so im2col is a gather and col2im a
// gather the other way (each image pixel reads at most one column entry): no sums, no atomics.
#include <algorithm>

#include "common.cuh"
#include "gemm.h"
#include "patch_embed.h"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>(ceil_div(n, kThreads), kMaxBlocks)); }

// The geometry as kernel arguments (PatchGeometry's methods are host-only).
struct Geo {
  int64_t B, C, H, W, p, R, Q, N, K;  // R x Q = N patches, K = C*p*p
};

Geo geo(const cpu::PatchGeometry& g) {
  return {g.B, g.C, g.H, g.W, g.p, g.rows(), g.cols(), g.patches(), g.patch_size()};
}

// x (B, C, H, W) -> cols (B*N, K): row b*N + py*Q + px holds its patch's pixels in (c, ky, kx) order,
// the order of the weight's (C, p, p) dims.
__global__ void im2col_kernel(float* __restrict__ cols, const float* __restrict__ x, Geo g) {
  const int64_t n = g.B * g.N * g.K;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t k = i % g.K, m = i / g.K;
    const int64_t b = m / g.N, patch = m % g.N, py = patch / g.Q, px = patch % g.Q;
    const int64_t c = k / (g.p * g.p), rem = k % (g.p * g.p), ky = rem / g.p, kx = rem % g.p;
    cols[i] = x[((b * g.C + c) * g.H + py * g.p + ky) * g.W + px * g.p + kx];
  }
}

// cols (B*N, K) -> x (B, C, H, W), every pixel written: 0 where no patch covers it (floor semantics).
__global__ void col2im_kernel(float* __restrict__ x, const float* __restrict__ cols, Geo g) {
  const int64_t n = g.B * g.C * g.H * g.W;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ix = i % g.W, iy = (i / g.W) % g.H, bc = i / (g.W * g.H), c = bc % g.C, b = bc / g.C;
    const int64_t py = iy / g.p, px = ix / g.p;
    float v = 0.0f;
    if (py < g.R && px < g.Q) {
      const int64_t ky = iy % g.p, kx = ix % g.p;
      v = cols[(b * g.N + py * g.Q + px) * g.K + (c * g.p + ky) * g.p + kx];
    }
    x[i] = v;
  }
}

// y (M, D) = bias in every row, before the GEMM adds the product (beta = 1), as on the CPU.
__global__ void fill_rows_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t M, int64_t D) {
  const int64_t n = M * D;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = bias[i % D];
}

// partial (blocks, D) = column sums of dy (M, D) over row blocks of kPatchBiasRows, in double; one thread
// per (block, column), adjacent threads on adjacent columns so the loads coalesce.
__global__ void column_partials_kernel(double* __restrict__ partial, const float* __restrict__ dy, int64_t M,
                                       int64_t D, int64_t blocks) {
  const int64_t n = blocks * D;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t d = i % D, rb = i / D;
    const int64_t r0 = rb * kPatchBiasRows, r1 = min(M, r0 + kPatchBiasRows);
    double s = 0.0;
    for (int64_t r = r0; r < r1; ++r) s += dy[r * D + d];
    partial[i] = s;
  }
}

// dbias (D) = the partials of each column added in block order, rounded to float once, as the CPU's
// double column sums are.
__global__ void column_finish_kernel(float* __restrict__ dbias, const double* __restrict__ partial, int64_t D,
                                     int64_t blocks) {
  for (int64_t d = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; d < D; d += int64_t{gridDim.x} * blockDim.x) {
    double s = 0.0;
    for (int64_t rb = 0; rb < blocks; ++rb) s += partial[rb * D + d];
    dbias[d] = static_cast<float>(s);
  }
}

Status im2col(cudaStream_t stream, float* cols, const float* x, const Geo& g) {
  const int64_t n = g.B * g.N * g.K;
  if (n == 0) return Status::OK();
  im2col_kernel<<<grid_for(n), kThreads, 0, stream>>>(cols, x, g);
  DINO_CUDA_CHECK_LAUNCH("im2col_kernel");
  return Status::OK();
}

}  // namespace

Status patch_embed_forward(int device, float* y, const float* x, const float* weight, const float* bias,
                           float* scratch, const cpu::PatchGeometry& pg, int64_t D) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  const Geo g = geo(pg);
  const int64_t M = g.B * g.N;
  if (M == 0 || D == 0) return Status::OK();
  DINO_RETURN_IF_ERROR(im2col(stream, scratch, x, g));
  fill_rows_kernel<<<grid_for(M * D), kThreads, 0, stream>>>(y, bias, M, D);
  DINO_CUDA_CHECK_LAUNCH("fill_rows_kernel");
  // y (M, D) = bias + cols (M, K) @ weight^T
  return sgemm_batched(device, false, true, M, D, g.K, 1.0f, scratch, g.K, 0, weight, g.K, 0, 1.0f, y, D, 0, 1);
}

Status patch_embed_backward(int device, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                            const float* weight, float* scratch, const cpu::PatchGeometry& pg, int64_t D) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  const Geo g = geo(pg);
  const int64_t M = g.B * g.N;
  if (dx) {
    const int64_t nx = g.B * g.C * g.H * g.W;
    // dcols (M, K) = dy (M, D) @ weight (D, K), gathered back to the image (D == 0 gives zeros)
    DINO_RETURN_IF_ERROR(
        sgemm_batched(device, false, false, M, g.K, D, 1.0f, dy, D, 0, weight, g.K, 0, 0.0f, scratch, g.K, 0, 1));
    if (nx > 0) {
      col2im_kernel<<<grid_for(nx), kThreads, 0, stream>>>(dx, scratch, g);
      DINO_CUDA_CHECK_LAUNCH("col2im_kernel");
    }
  }
  // dweight (D, K) = dy^T @ cols, with the im2col matrix rebuilt in the same scratch (M == 0: zeros)
  DINO_RETURN_IF_ERROR(im2col(stream, scratch, x, g));
  DINO_RETURN_IF_ERROR(
      sgemm_batched(device, true, false, D, g.K, M, 1.0f, dy, D, 0, scratch, g.K, 0, 0.0f, dweight, g.K, 0, 1));
  if (D == 0) return Status::OK();
  const int64_t blocks = ceil_div(M, kPatchBiasRows);
  double* partial = reinterpret_cast<double*>(scratch + patch_embed_bias_offset(pg));
  if (blocks > 0) {
    column_partials_kernel<<<grid_for(blocks * D), kThreads, 0, stream>>>(partial, dy, M, D, blocks);
    DINO_CUDA_CHECK_LAUNCH("column_partials_kernel");
  }
  column_finish_kernel<<<grid_for(D), kThreads, 0, stream>>>(dbias, partial, D, blocks);
  DINO_CUDA_CHECK_LAUNCH("column_finish_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
