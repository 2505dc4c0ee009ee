#include <climits>

#include "common.cuh"
#include "../cpu/shape.h"
#include "shape.h"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 16;  // the grid-stride loops cover the rest
// Kernel arguments are passed by value, so the permute's dims travel in fixed-size structs.
constexpr int kMaxRank = 8;
// Edge of the square tiles of a transposing permute: a 32 x 32 tile goes through shared memory so that
// both the reads of x and the writes of out are coalesced.
constexpr int kTile = 32;
constexpr int kTileRows = 8;  // threads per tile column: each thread moves kTile / kTileRows elements

unsigned blocks_for(int64_t work) {
  const int64_t b = ceil_div(work, kThreads);
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

// --- range copies --------------------------------------------------------------------------------

// I is uint32_t when every index fits in 31 bits (so i + step cannot wrap), which makes the divisions cheap.
template <typename I>
__global__ void copy_range_kernel(float* dst, const float* src, I n, I run, I dst_row, I dst_off, I src_row,
                                  I src_off) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    const I o = i / run, j = i - o * run;
    dst[o * dst_row + dst_off + j] = src[o * src_row + src_off + j];
  }
}

template <typename I>
__global__ void slice_backward_kernel(float* dx, const float* dy, I n, I row, I head, I run) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    const I o = i / row, j = i - o * row;
    dx[i] = j >= head && j - head < run ? dy[o * run + (j - head)] : 0.0f;
  }
}

// --- permute -------------------------------------------------------------------------------------

// out walked in order reads x through (size, stride) pairs.
struct Gather {
  int rank;
  int64_t size[kMaxRank];
  int64_t stride[kMaxRank];
};

template <typename I>
__global__ void permute_gather_kernel(float* out, const float* x, Gather L, I n) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    I rem = i, off = 0;
    // Unrolled with a guard so that L's arrays are only indexed with constants.
#pragma unroll
    for (int d = kMaxRank - 1; d >= 1; --d) {
      if (d < L.rank) {
        const I s = I(L.size[d]);
        const I q = rem / s;
        off += (rem - q * s) * I(L.stride[d]);
        rem = q;
      }
    }
    out[i] = x[off + rem * I(L.stride[0])];
  }
}

// A transpose: out dim q reads x with stride 1, the last out dim (nl long) reads it with stride ls. The
// other dims (batch) index whole (nq, nl) planes, at x offset sum(i * bx) and out offset sum(i * bo).
struct Tiles {
  int nb;  // batch dims
  int64_t bsize[kMaxRank], bx[kMaxRank], bo[kMaxRank];
  int64_t nq, nl, ls, qstride_out, tq, tl;
};

// Each block moves one 32 x 32 tile per step: it reads it down x's rows (threadIdx.x along q, stride 1
// in x) and writes it along out's rows (threadIdx.x along the last dim, stride 1 in out).
__global__ void __launch_bounds__(kTile * kTileRows) permute_tiles_kernel(float* out, const float* x, Tiles L,
                                                                          int64_t units) {
  __shared__ float tile[kTile][kTile + 1];  // +1: the transposed reads hit 32 different banks
  const int tx = threadIdx.x, ty = threadIdx.y;
  // u is uniform across the block, so every thread reaches the __syncthreads the same number of times.
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t jt = u % L.tl, it = (u / L.tl) % L.tq;
    int64_t rem = u / (L.tl * L.tq), xoff = 0, ooff = 0;
#pragma unroll
    for (int d = 0; d < kMaxRank; ++d) {
      if (d < L.nb) {
        const int64_t i = rem % L.bsize[d];
        rem /= L.bsize[d];
        xoff += i * L.bx[d];
        ooff += i * L.bo[d];
      }
    }
    const int64_t i0 = it * kTile, j0 = jt * kTile;
    for (int k = ty; k < kTile; k += kTileRows) {
      const int64_t i = i0 + tx, j = j0 + k;
      if (i < L.nq && j < L.nl) tile[k][tx] = x[xoff + i + j * L.ls];
    }
    __syncthreads();
    for (int k = ty; k < kTile; k += kTileRows) {
      const int64_t i = i0 + k, j = j0 + tx;
      if (i < L.nq && j < L.nl) out[ooff + i * L.qstride_out + j] = tile[tx][k];
    }
    __syncthreads();  // the next step overwrites the tile
  }
}

}  // namespace

// src (outer, src_len, inner) range -> dst (outer, dst_len, inner) range
Status copy_axis_range(int device, float* dst, int64_t dst_len, int64_t dst_start, const float* src,
                       int64_t src_len, int64_t src_start, int64_t len, int64_t outer, int64_t inner) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  const int64_t run = len * inner, n = outer * run;
  if (run <= 0 || outer <= 0) return Status::OK();
  const int64_t dst_row = dst_len * inner, src_row = src_len * inner;
  const int64_t dst_off = dst_start * inner, src_off = src_start * inner;
  if (outer * dst_row <= INT_MAX && outer * src_row <= INT_MAX)
    copy_range_kernel<uint32_t><<<blocks_for(n), kThreads, 0, stream>>>(
        dst, src, uint32_t(n), uint32_t(run), uint32_t(dst_row), uint32_t(dst_off), uint32_t(src_row),
        uint32_t(src_off));
  else
    copy_range_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n, run, dst_row, dst_off, src_row,
                                                                       src_off);
  DINO_CUDA_CHECK_LAUNCH("copy_range_kernel");
  return Status::OK();
}

// dy (outer, len, inner) -> dx (outer, size, inner)
Status slice_backward(int device, float* dx, const float* dy, int64_t outer, int64_t size, int64_t start,
                      int64_t len, int64_t inner) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  const int64_t row = size * inner, n = outer * row;
  if (n <= 0) return Status::OK();
  const int64_t head = start * inner, run = len * inner;
  if (n <= INT_MAX)
    slice_backward_kernel<uint32_t><<<blocks_for(n), kThreads, 0, stream>>>(dx, dy, uint32_t(n), uint32_t(row),
                                                                            uint32_t(head), uint32_t(run));
  else
    slice_backward_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream>>>(dx, dy, n, row, head, run);
  DINO_CUDA_CHECK_LAUNCH("slice_backward_kernel");
  return Status::OK();
}

// x (shape) -> out (shape permuted by dims)
Status permute(int device, float* out, const float* x, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& dims) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  const int64_t nd = static_cast<int64_t>(shape.size());
  DINO_CHECK(static_cast<int64_t>(dims.size()) == nd, kInternal, "permute: ", dims.size(), " dims for rank ", nd);
  std::vector<int64_t> size, stride;
  const int64_t n = cpu::permute_runs(shape, dims, &size, &stride);
  if (n <= 0) return Status::OK();
  const int r = static_cast<int>(size.size());
  DINO_CHECK(r <= kMaxRank, kUnsupported, "a permutation that leaves ", r,
             " dimensions after merging; the GPU kernel takes at most ", kMaxRank);
  if (r == 0 || stride[r - 1] == 1) {
    // The last out dim runs along x: a gather whose reads are as coalesced as its writes.
    Gather L;
    L.rank = r ? r : 1;
    for (int d = 0; d < kMaxRank; ++d) {
      L.size[d] = d < r ? size[d] : 1;
      L.stride[d] = d < r ? stride[d] : 0;
    }
    if (n <= INT_MAX)
      permute_gather_kernel<uint32_t><<<blocks_for(n), kThreads, 0, stream>>>(out, x, L, uint32_t(n));
    else
      permute_gather_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream>>>(out, x, L, n);
    DINO_CUDA_CHECK_LAUNCH("permute_gather_kernel");
    return Status::OK();
  }
  int q = 0;
  while (stride[q] != 1) ++q;  // some dim has x-stride 1: x's last non-1 dim survives merging last
  std::vector<int64_t> ostride(r, 1);
  for (int d = r - 2; d >= 0; --d) ostride[d] = ostride[d + 1] * size[d + 1];
  Tiles L{};
  L.nq = size[q];
  L.nl = size[r - 1];
  L.ls = stride[r - 1];
  L.qstride_out = ostride[q];
  L.tq = ceil_div(L.nq, kTile);
  L.tl = ceil_div(L.nl, kTile);
  L.nb = 0;
  for (int d = r - 2; d >= 0; --d) {  // innermost first, as the kernel peels them off
    if (d == q) continue;
    L.bsize[L.nb] = size[d];
    L.bx[L.nb] = stride[d];
    L.bo[L.nb] = ostride[d];
    ++L.nb;
  }
  const int64_t units = n / (L.nq * L.nl) * L.tq * L.tl;
  const unsigned blocks = static_cast<unsigned>(units < (int64_t(1) << 20) ? units : (int64_t(1) << 20));
  permute_tiles_kernel<<<blocks, dim3(kTile, kTileRows), 0, stream>>>(out, x, L, units);
  DINO_CUDA_CHECK_LAUNCH("permute_tiles_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
