// Unfused attention on cuBLAS: layout kernels around strided-batched GEMMs, and the row passes between
// them (softmax with log-sum-exp forward, the softmax gradient backward), with the CPU's numerics.
#include <algorithm>
#include <cmath>

#include "attention.h"
#include "common.cuh"
#include "gemm.h"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
// 1-D grids with grid-stride loops: enough blocks to fill the GPU, far below the launch limit.
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

int grid_for(int64_t n, int threads) {
  return static_cast<int>(std::min<int64_t>(ceil_div(n, threads), kMaxBlocks));
}

// Between the token layout (B, T, S, H, hd), as the qkv Linear writes it (S = 3) or the projection
// reads it (S = 1), and the head layout (S, B, H, T, hd), where each (s, b, h) slice is a contiguous
// (T, hd) matrix. Walks the token layout so that its side is coalesced; the other side moves in runs
// of hd. to_heads: heads[j] = tokens[i]; otherwise tokens[i] = heads[j], every token element written.
__global__ void permute_heads_kernel(float* __restrict__ heads, float* __restrict__ tokens, int64_t B, int64_t T,
                                     int64_t S, int64_t H, int64_t hd, bool to_heads) {
  const int64_t n = B * T * S * H * hd;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = i;
    const int64_t c = r % hd;
    r /= hd;
    const int64_t h = r % H;
    r /= H;
    const int64_t s = r % S;
    r /= S;
    const int64_t t = r % T;
    const int64_t b = r / T;
    const int64_t j = (((s * B + b) * H + h) * T + t) * hd + c;
    if (to_heads) heads[j] = tokens[i];
    else tokens[i] = heads[j];
  }
}

Status permute_heads(cudaStream_t stream, float* heads, float* tokens, int64_t B, int64_t T, int64_t S, int64_t H,
                     int64_t hd, bool to_heads) {
  const int64_t n = B * T * S * H * hd;
  if (n == 0) return Status::OK();
  permute_heads_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(heads, tokens, B, T, S, H, hd, to_heads);
  DINO_CUDA_CHECK_LAUNCH("permute_heads_kernel");
  return Status::OK();
}

// Reductions over a block whose size is a multiple of 32; every thread of the block must call them
// (they synchronise). `shm` holds 32 floats; it is free again when they return.
__device__ float block_max(float v, float* shm) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shm[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) {
      const float w = __shfl_xor_sync(0xffffffffu, v, o);
      v = w > v ? w : v;
    }
    if (lane == 0) shm[0] = v;
  }
  __syncthreads();
  const float r = shm[0];
  __syncthreads();
  return r;
}

__device__ float block_sum(float v, float* shm) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shm[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) shm[0] = v;
  }
  __syncthreads();
  const float r = shm[0];
  __syncthreads();
  return r;
}

// s (rows, T) scaled scores -> softmax probabilities in place, lse (rows) their log-sum-exp; one block
// per row. As on the CPU: p = exp(s - max) * (1 / sum), lse = max + log(sum); a NaN anywhere in a row
// makes the whole row and its lse NaN (the max may skip it, as the CPU's does unless it is first, but
// the sum carries it), a row of -inf gives NaN (exp(-inf - -inf)).
__global__ void softmax_lse_kernel(float* __restrict__ s, float* __restrict__ lse, int64_t rows, int64_t T) {
  __shared__ float shm[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // uniform across the block
    float* row = s + r * T;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < T; j += blockDim.x) m = row[j] > m ? row[j] : m;
    m = block_max(m, shm);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < T; j += blockDim.x) sum += expf(row[j] - m);
    sum = block_sum(sum, shm);
    const float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < T; j += blockDim.x) row[j] = expf(row[j] - m) * inv;
    if (threadIdx.x == 0) lse[r] = m + logf(sum);
  }
}

// D (B*H*T) = rowsum(dout * out) per (b, h, t), both read in the token layout (B, T, H, hd); one warp
// per row, float sums as on the CPU.
__global__ void rowdot_kernel(float* __restrict__ d, const float* __restrict__ dout, const float* __restrict__ out,
                              int64_t B, int64_t T, int64_t H, int64_t hd) {
  const int64_t rows = B * H * T;
  const int lane = threadIdx.x & 31;
  const int64_t warps_per_block = blockDim.x >> 5;
  for (int64_t r = blockIdx.x * warps_per_block + (threadIdx.x >> 5); r < rows;
       r += int64_t{gridDim.x} * warps_per_block) {  // uniform across the warp
    const int64_t t = r % T, bh = r / T, h = bh % H, b = bh / H;
    const int64_t off = ((b * T + t) * H + h) * hd;
    float v = 0.0f;
    for (int64_t c = lane; c < hd; c += 32) v += dout[off + c] * out[off + c];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) d[r] = v;
  }
}

// p (rows, T) scaled scores -> P = exp(s - lse); ds (rows, T) dP -> dS = P * (dP - D), as on the CPU.
__global__ void softmax_grad_kernel(float* __restrict__ p, float* __restrict__ ds, const float* __restrict__ lse,
                                    const float* __restrict__ d, int64_t rows, int64_t T) {
  const int64_t n = rows * T;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / T;
    const float pv = expf(p[i] - lse[r]);
    p[i] = pv;
    ds[i] = pv * (ds[i] - d[r]);
  }
}

// Threads per softmax row: the row length rounded up to whole warps, at most kThreads.
int row_threads(int64_t T) { return static_cast<int>(std::min<int64_t>(ceil_div(T, 32) * 32, kThreads)); }

}  // namespace

Status attention_forward(int device, float* out, float* lse, float* probs, const float* qkv, float* scratch,
                         int64_t B, int64_t T, int64_t H, int64_t hd, float scale) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (B == 0 || T == 0 || H == 0 || hd == 0) return Status::OK();
  const int64_t pairs = B * H, E = T * hd, N = pairs * E, TT = T * T, cb = attention_chunk(B, T, H);
  float *q = scratch, *k = q + N, *v = k + N, *o = v + N;
  float* s_chunk = o + N;  // unused with probs
  // q, k, v (B*H, T, hd) from qkv (B, T, 3, H, hd); the kernel only reads `tokens` in this direction.
  DINO_RETURN_IF_ERROR(permute_heads(stream, q, const_cast<float*>(qkv), B, T, 3, H, hd, true));
  for (int64_t p0 = 0; p0 < pairs; p0 += cb) {
    const int64_t n = std::min(cb, pairs - p0);
    // With probs requested the scores go straight to their place: (B, H, T, T) is (B*H, T, T).
    float* s = probs ? probs + p0 * TT : s_chunk;
    // s (n, T, T) = scale * q k^T
    DINO_RETURN_IF_ERROR(sgemm_batched(device, false, true, T, T, hd, scale, q + p0 * E, hd, E, k + p0 * E, hd, E,
                                       0.0f, s, T, TT, n));
    const int64_t rows = n * T;
    softmax_lse_kernel<<<grid_for(rows, 1), row_threads(T), 0, stream>>>(s, lse + p0 * T, rows, T);
    DINO_CUDA_CHECK_LAUNCH("softmax_lse_kernel");
    // o (n, T, hd) = p v
    DINO_RETURN_IF_ERROR(sgemm_batched(device, false, false, T, hd, T, 1.0f, s, T, TT, v + p0 * E, hd, E, 0.0f,
                                       o + p0 * E, hd, E, n));
  }
  // out (B, T, H, hd) from o (B, H, T, hd)
  return permute_heads(stream, o, out, B, T, 1, H, hd, false);
}

Status attention_backward(int device, float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, float* scratch, int64_t B, int64_t T, int64_t H, int64_t hd,
                          float scale) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (B == 0 || T == 0 || H == 0 || hd == 0) return Status::OK();
  const int64_t pairs = B * H, E = T * hd, N = pairs * E, TT = T * T, cb = attention_chunk(B, T, H);
  float *q = scratch, *k = q + N, *v = k + N, *dO = v + N;
  float *dq = dO + N, *dk = dq + N, *dv = dk + N;
  float* d = dv + N;            // (B*H*T)
  float* p = d + pairs * T;     // (cb, T, T)
  float* ds = p + cb * TT;      // (cb, T, T)
  DINO_RETURN_IF_ERROR(permute_heads(stream, q, const_cast<float*>(qkv), B, T, 3, H, hd, true));
  DINO_RETURN_IF_ERROR(permute_heads(stream, dO, const_cast<float*>(dout), B, T, 1, H, hd, true));
  {
    const int64_t rows = pairs * T, per_block = kThreads / 32;
    rowdot_kernel<<<grid_for(rows, static_cast<int>(per_block)), kThreads, 0, stream>>>(d, dout, out, B, T, H, hd);
    DINO_CUDA_CHECK_LAUNCH("rowdot_kernel");
  }
  for (int64_t p0 = 0; p0 < pairs; p0 += cb) {
    const int64_t n = std::min(cb, pairs - p0), off = p0 * E;
    // p = scale * q k^T (exponentiated below), ds = dO v^T (turned into dS below)
    DINO_RETURN_IF_ERROR(sgemm_batched(device, false, true, T, T, hd, scale, q + off, hd, E, k + off, hd, E, 0.0f,
                                       p, T, TT, n));
    DINO_RETURN_IF_ERROR(sgemm_batched(device, false, true, T, T, hd, 1.0f, dO + off, hd, E, v + off, hd, E, 0.0f,
                                       ds, T, TT, n));
    const int64_t rows = n * T;
    softmax_grad_kernel<<<grid_for(rows * T, kThreads), kThreads, 0, stream>>>(p, ds, lse + p0 * T, d + p0 * T,
                                                                              rows, T);
    DINO_CUDA_CHECK_LAUNCH("softmax_grad_kernel");
    // dv = p^T dO, dq = scale * dS k, dk = scale * dS^T q
    DINO_RETURN_IF_ERROR(sgemm_batched(device, true, false, T, hd, T, 1.0f, p, T, TT, dO + off, hd, E, 0.0f,
                                       dv + off, hd, E, n));
    DINO_RETURN_IF_ERROR(sgemm_batched(device, false, false, T, hd, T, scale, ds, T, TT, k + off, hd, E, 0.0f,
                                       dq + off, hd, E, n));
    DINO_RETURN_IF_ERROR(sgemm_batched(device, true, false, T, hd, T, scale, ds, T, TT, q + off, hd, E, 0.0f,
                                       dk + off, hd, E, n));
  }
  // dqkv (B, T, 3, H, hd) from dq, dk, dv (3, B, H, T, hd), which are consecutive in the scratch
  return permute_heads(stream, dq, dqkv, B, T, 3, H, hd, false);
}

}  // namespace dino::cuda
