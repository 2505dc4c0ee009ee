// Warp and block reductions for the row kernels (softmax, layer norm, l2 norm). They are deterministic:
// the combining order depends only on the thread layout, never on timing, so two runs give bitwise-equal
// results. The xor butterfly leaves the same value in every lane (a + b == b + a exactly, and max is
// exact), and the block version has every warp reduce the per-warp results in the same order, so every
// thread of the block gets the identical result without a broadcast through shared memory.
//
// Requirements: every lane of each warp must take part (full-mask shuffles), so blockDim.x must be a
// multiple of 32 and no thread may have left the kernel; block_reduce must be reached by the whole
// block (it synchronises), and blockDim.x <= 1024 (32 warps).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dino::cuda {

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// fmaxf ignores a NaN operand; the CPU's `x > m ? x : m` ignores it too when it comes second. Rows that
// hold a NaN come out all NaN either way (softmax.h), so which max is found there does not matter.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// `shared` holds at least 32 T. The leading __syncthreads lets the same buffer serve consecutive calls:
// no warp overwrites it while another is still reading the previous call's values.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T* shared, Op op, T identity) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : identity;
  return warp_reduce(v, op);
}

// How a row kernel spreads one row over threads, chosen at compile time:
//   WarpRows:  one warp per row, blockDim.x / 32 rows per block (short rows: attention, ViT widths);
//   BlockRows: one block per row (long rows: the DINO head's 65,536 logits).
// rows are visited with a grid-stride loop; `row` is uniform across the unit (warp or block), so a unit
// either processes a row or skips it as a whole and the reductions never run with missing lanes.
struct WarpRows {
  __device__ __forceinline__ static int tid() { return threadIdx.x & 31; }
  __device__ __forceinline__ static int nthreads() { return 32; }
  __device__ __forceinline__ static int64_t first_row() {
    return int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  }
  __device__ __forceinline__ static int64_t row_stride() { return int64_t(gridDim.x) * (blockDim.x >> 5); }
  template <typename T, typename Op>
  __device__ __forceinline__ static T reduce(T v, T* /*shared*/, Op op, T /*identity*/) { return warp_reduce(v, op); }
};

struct BlockRows {
  __device__ __forceinline__ static int tid() { return threadIdx.x; }
  __device__ __forceinline__ static int nthreads() { return blockDim.x; }
  __device__ __forceinline__ static int64_t first_row() { return blockIdx.x; }
  __device__ __forceinline__ static int64_t row_stride() { return gridDim.x; }
  template <typename T, typename Op>
  __device__ __forceinline__ static T reduce(T v, T* shared, Op op, T identity) {
    return block_reduce(v, shared, op, identity);
  }
};

// Launch shape of a row kernel over (rows, N): rows up to kWarpRowMax wide get a warp each, longer rows
// a block each. Grids are capped (the kernels loop over rows), well inside gridDim.x's limit.
// Row kernels are declared __launch_bounds__(kMaxRowThreads) so that the compiler keeps their register
// use within what a 1024-thread block may have.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kMaxRowThreads = 1024;
constexpr int kWarpRowsThreads = 256;  // 8 rows per block
constexpr int64_t kMaxRowBlocks = int64_t(1) << 20;

struct RowLaunch {
  bool warp_rows;
  int threads;
  unsigned blocks;
};

inline RowLaunch row_launch(int64_t rows, int64_t N) {
  RowLaunch l;
  l.warp_rows = N <= kWarpRowMax;
  int64_t blocks;
  if (l.warp_rows) {
    l.threads = kWarpRowsThreads;
    blocks = (rows + kWarpRowsThreads / 32 - 1) / (kWarpRowsThreads / 32);
  } else {
    // 65,536-wide rows: 1024 threads each read 64 values per pass; mid-sized rows use smaller blocks.
    l.threads = N > 8192 ? 1024 : 256;
    blocks = rows;
  }
  l.blocks = static_cast<unsigned>(blocks < kMaxRowBlocks ? blocks : kMaxRowBlocks);
  return l;
}

}  // namespace dino::cuda

// kernel<WarpRows> or kernel<BlockRows> over (rows, N), as row_launch decides; rows and N must be > 0.
// The caller checks the launch with DINO_CUDA_CHECK_LAUNCH.
#define DINO_LAUNCH_ROWS(kernel, stream, rows, N, ...)                                                    \
  do {                                                                                                    \
    const ::dino::cuda::RowLaunch dino_rl_ = ::dino::cuda::row_launch(rows, N);                           \
    if (dino_rl_.warp_rows)                                                                               \
      kernel<::dino::cuda::WarpRows><<<dino_rl_.blocks, dino_rl_.threads, 0, stream>>>(__VA_ARGS__);      \
    else                                                                                                  \
      kernel<::dino::cuda::BlockRows><<<dino_rl_.blocks, dino_rl_.threads, 0, stream>>>(__VA_ARGS__);     \
  } while (0)
