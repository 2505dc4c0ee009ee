#include <climits>

#include "common.cuh"
#include "dino/half.h"
#include "elementwise.h"
#include "reduce.cuh"

namespace dino::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 16;  // the grid-stride loops cover the rest
// Kernel arguments are passed by value, so the strides travel in a fixed-size struct.
constexpr int kMaxRank = 8;

unsigned blocks_for(int64_t work) {
  const int64_t b = ceil_div(work, kThreads);
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

// --- binary ops and broadcasts ------------------------------------------------------------------

// The output walked in order reads a and b through (size, stride) pairs, after merging.
struct Strided {
  int rank;
  int64_t size[kMaxRank];
  int64_t sa[kMaxRank];
  int64_t sb[kMaxRank];
};

enum Kind { kAdd, kSub, kMul, kDiv, kCopy };

// The _rn intrinsics are IEEE operations the compiler never fuses into an FMA nor replaces with an
// approximation, so each result is the CPU's bit for bit (also for subnormals, NaN and inf).
template <int kKind>
__device__ __forceinline__ float apply(float a, float b) {
  if constexpr (kKind == kAdd) return __fadd_rn(a, b);
  else if constexpr (kKind == kSub) return __fsub_rn(a, b);
  else if constexpr (kKind == kMul) return __fmul_rn(a, b);
  else if constexpr (kKind == kDiv) return __fdiv_rn(a, b);
  else return __fadd_rn(a, 0.0f);  // the CPU's broadcast_copy is x + 0, which turns -0 into +0
}

// I is uint32_t when every index and offset fits, which makes the divisions much cheaper.
template <int kKind, typename I>
__global__ void strided_binary_kernel(float* out, const float* a, const float* b, Strided L, I n) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    I rem = i, oa = 0, ob = 0;
    // Unrolled with a guard so that L's arrays are only indexed with constants (they stay in registers
    // or parameter space instead of being copied to local memory).
#pragma unroll
    for (int d = kMaxRank - 1; d >= 1; --d) {
      if (d < L.rank) {
        const I s = I(L.size[d]);
        const I q = rem / s;
        const I j = rem - q * s;
        oa += j * I(L.sa[d]);
        ob += j * I(L.sb[d]);
        rem = q;
      }
    }
    oa += rem * I(L.sa[0]);
    ob += rem * I(L.sb[0]);
    if constexpr (kKind == kCopy) out[i] = apply<kKind>(a[oa], 0.0f);
    else out[i] = apply<kKind>(a[oa], b[ob]);
  }
}

// Drops size-1 dims and merges a dim into the one before it where both inputs continue in memory
// ((B, T, C) + (C) becomes (B*T, C) + (C)). Sets *n to the element count; L is not set when it is 0.
Status collapse(const std::vector<int64_t>& shape, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
                Strided* L, int64_t* n) {
  std::vector<int64_t> size, pa, pb;
  *n = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    const int64_t s = shape[d];
    *n *= s;
    if (s == 1) continue;
    if (!size.empty() && pa.back() == sa[d] * s && pb.back() == sb[d] * s) {
      size.back() *= s;
      pa.back() = sa[d];
      pb.back() = sb[d];
    } else {
      size.push_back(s);
      pa.push_back(sa[d]);
      pb.push_back(sb[d]);
    }
  }
  if (*n == 0) return Status::OK();  // nothing to launch (the CPU takes empty tensors of any rank)
  if (size.empty()) {
    size.push_back(1);
    pa.push_back(0);
    pb.push_back(0);
  }
  DINO_CHECK(size.size() <= static_cast<size_t>(kMaxRank), kUnsupported, "a broadcast over ", size.size(),
             " dimensions that cannot be merged; the GPU kernel takes at most ", kMaxRank);
  L->rank = static_cast<int>(size.size());
  for (int d = 0; d < kMaxRank; ++d) {
    const bool in = d < L->rank;
    L->size[d] = in ? size[d] : 1;
    L->sa[d] = in ? pa[d] : 0;
    L->sb[d] = in ? pb[d] : 0;
  }
  return Status::OK();
}

// Whether n and every offset reachable through L fit in 31 bits (so i + step cannot wrap a uint32_t).
bool fits_32(const Strided& L, int64_t n) {
  int64_t ma = 0, mb = 0;
  for (int d = 0; d < L.rank; ++d) {
    ma += (L.size[d] - 1) * L.sa[d];
    mb += (L.size[d] - 1) * L.sb[d];
  }
  return n <= INT_MAX && ma <= INT_MAX && mb <= INT_MAX;
}

template <int kKind>
Status launch_strided(cudaStream_t stream, float* out, const float* a, const float* b, const Strided& L, int64_t n) {
  if (fits_32(L, n))
    strided_binary_kernel<kKind, uint32_t><<<blocks_for(n), kThreads, 0, stream>>>(out, a, b, L, uint32_t(n));
  else
    strided_binary_kernel<kKind, int64_t><<<blocks_for(n), kThreads, 0, stream>>>(out, a, b, L, n);
  DINO_CUDA_CHECK_LAUNCH("strided_binary_kernel");
  return Status::OK();
}

// --- affine --------------------------------------------------------------------------------------

__global__ void affine_kernel(float* out, const float* x, int64_t n, float alpha, float beta) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __fadd_rn(__fmul_rn(alpha, x[i]), beta);  // two roundings, as the CPU (built without FMA)
}

// --- sums ----------------------------------------------------------------------------------------

struct SumPlan {
  int64_t S;      // chunks along R (sum_axis_chunks)
  int64_t chunk;  // rows per chunk (the last may be shorter)
};

SumPlan plan_sum(int64_t outer, int64_t R, int64_t inner) {
  const int64_t S = sum_axis_chunks(outer, R, inner);
  return {S, S > 1 ? ceil_div(R, S) : R};
}

// Row sums (inner == 1): unit u = (o, s) adds x[o, s*chunk : (s+1)*chunk] with a warp or a block
// (Rows, reduce.cuh), each thread in double over a strided subset, then a fixed-order tree. Writes
// the final float when S == 1 (u == o), else the double partial of unit u.
template <typename Rows, bool kPartial>
__global__ void __launch_bounds__(1024)
    sum_rows_kernel(float* out, double* partial, const float* x, int64_t units, int64_t R, int64_t S,
                    int64_t chunk, float scale) {
  __shared__ double shared[32];
  for (int64_t u = Rows::first_row(); u < units; u += Rows::row_stride()) {
    const int64_t o = u / S, s = u - o * S;
    const int64_t r0 = s * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
    const float* row = x + o * R;
    double acc = 0.0;
#pragma unroll 4
    for (int64_t r = r0 + Rows::tid(); r < r1; r += Rows::nthreads()) acc += static_cast<double>(row[r]);
    acc = Rows::reduce(acc, shared, SumOp(), 0.0);
    if (Rows::tid() == 0) {
      if constexpr (kPartial) partial[u] = acc;
      else out[u] = static_cast<float>(acc * static_cast<double>(scale));
    }
  }
}

// Column sums (inner > 1): a thread per (o, s, i) walks its chunk of rows down column i, in order, so
// with S == 1 the double sum is the CPU's exactly. Neighbouring threads read neighbouring columns.
template <bool kPartial>
__global__ void sum_cols_kernel(float* out, double* partial, const float* x, int64_t outer, int64_t R,
                                int64_t inner, int64_t S, int64_t chunk, float scale) {
  const int64_t total = outer * S * inner;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t % inner, u = t / inner;
    const int64_t o = u / S, s = u - o * S;
    const int64_t r0 = s * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
    const float* col = x + (o * R + r0) * inner + i;
    double acc = 0.0;
#pragma unroll 4
    for (int64_t r = r0; r < r1; ++r, col += inner) acc += static_cast<double>(*col);
    if constexpr (kPartial) partial[t] = acc;
    else out[t] = static_cast<float>(acc * static_cast<double>(scale));
  }
}

// partial (outer, S, inner) -> out (outer, inner): the chunks added in order.
__global__ void sum_partials_kernel(float* out, const double* partial, int64_t outer, int64_t S, int64_t inner,
                                    float scale) {
  const int64_t total = outer * inner;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const double* p = partial + o * S * inner + i;
    double acc = 0.0;
    for (int64_t s = 0; s < S; ++s) acc += p[s * inner];
    out[t] = static_cast<float>(acc * static_cast<double>(scale));
  }
}

template <bool kPartial>
Status launch_sum_rows(cudaStream_t stream, float* out, double* partial, const float* x, int64_t outer, int64_t R,
                       const SumPlan& p, float scale) {
  const int64_t units = outer * p.S;
  const RowLaunch l = row_launch(units, p.chunk);
  if (l.warp_rows)
    sum_rows_kernel<WarpRows, kPartial><<<l.blocks, l.threads, 0, stream>>>(out, partial, x, units, R, p.S, p.chunk, scale);
  else
    sum_rows_kernel<BlockRows, kPartial><<<l.blocks, l.threads, 0, stream>>>(out, partial, x, units, R, p.S, p.chunk, scale);
  DINO_CUDA_CHECK_LAUNCH("sum_rows_kernel");
  return Status::OK();
}

// --- casts: the CPU's bit logic (dino/half.h), not cuda_fp16's conversions ---------------------------

__global__ void f32_to_bf16_kernel(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = f32_to_bf16_bits(float_bits(x[i]));
}

__global__ void bf16_to_f32_kernel(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = bits_float(bf16_to_f32_bits(x[i]));
}

__global__ void f32_to_f16_kernel(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = f32_to_f16_bits(float_bits(x[i]));
}

__global__ void f16_to_f32_kernel(float* out, const uint16_t* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = bits_float(f16_to_f32_bits(x[i]));
}

}  // namespace

// a, b (through sa, sb) -> out (shape)
Status binary_forward(int device, BinaryOp op, float* out, const float* a, const float* b,
                      const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                      const std::vector<int64_t>& sb) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  DINO_CHECK(sa.size() == shape.size() && sb.size() == shape.size(), kInternal, "binary_forward: ", shape.size(),
             " dims with ", sa.size(), " and ", sb.size(), " strides");
  Strided L;
  int64_t n = 0;
  DINO_RETURN_IF_ERROR(collapse(shape, sa, sb, &L, &n));
  if (n <= 0) return Status::OK();
  switch (op) {
    case BinaryOp::kAdd: return launch_strided<kAdd>(stream, out, a, b, L, n);
    case BinaryOp::kSub: return launch_strided<kSub>(stream, out, a, b, L, n);
    case BinaryOp::kMul: return launch_strided<kMul>(stream, out, a, b, L, n);
    case BinaryOp::kDiv: return launch_strided<kDiv>(stream, out, a, b, L, n);
  }
  return Status(Code::kInternal, "binary_forward: unknown op");
}

// x (through sx) -> out (shape)
Status broadcast_copy(int device, float* out, const float* x, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& sx) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  DINO_CHECK(sx.size() == shape.size(), kInternal, "broadcast_copy: ", shape.size(), " dims with ", sx.size(),
             " strides");
  Strided L;
  int64_t n = 0;
  DINO_RETURN_IF_ERROR(collapse(shape, sx, std::vector<int64_t>(shape.size(), 0), &L, &n));
  if (n <= 0) return Status::OK();
  return launch_strided<kCopy>(stream, out, x, nullptr, L, n);
}

// x (n) -> out (n); out may be x
Status affine_forward(int device, float* out, const float* x, int64_t n, float alpha, float beta) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  affine_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, x, n, alpha, beta);
  DINO_CUDA_CHECK_LAUNCH("affine_kernel");
  return Status::OK();
}

// x (outer, R, inner) -> out (outer, inner); scratch: sum_axis_scratch_bytes(outer, R, inner) bytes
Status sum_axis_forward(int device, float* out, const float* x, int64_t outer, int64_t R, int64_t inner,
                        float scale, void* scratch) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (outer <= 0 || inner <= 0) return Status::OK();
  const SumPlan p = plan_sum(outer, R, inner);  // R == 0: one chunk of nothing, zeros as on the CPU
  if (p.S == 1) {
    if (inner == 1) return launch_sum_rows<false>(stream, out, nullptr, x, outer, R, p, scale);
    sum_cols_kernel<false><<<blocks_for(outer * inner), kThreads, 0, stream>>>(out, nullptr, x, outer, R, inner,
                                                                              1, p.chunk, scale);
    DINO_CUDA_CHECK_LAUNCH("sum_cols_kernel");
    return Status::OK();
  }
  DINO_CHECK(scratch != nullptr, kInternal, "sum_axis_forward: no scratch for a split reduction");
  auto* partial = static_cast<double*>(scratch);
  if (inner == 1) {
    DINO_RETURN_IF_ERROR(launch_sum_rows<true>(stream, nullptr, partial, x, outer, R, p, scale));
  } else {
    sum_cols_kernel<true><<<blocks_for(outer * p.S * inner), kThreads, 0, stream>>>(nullptr, partial, x, outer, R,
                                                                                   inner, p.S, p.chunk, scale);
    DINO_CUDA_CHECK_LAUNCH("sum_cols_kernel");
  }
  sum_partials_kernel<<<blocks_for(outer * inner), kThreads, 0, stream>>>(out, partial, outer, p.S, inner, scale);
  DINO_CUDA_CHECK_LAUNCH("sum_partials_kernel");
  return Status::OK();
}

// x (n) f32 -> out (n) bf16
Status f32_to_bf16(int device, uint16_t* out, const float* x, int64_t n) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  f32_to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, x, n);
  DINO_CUDA_CHECK_LAUNCH("f32_to_bf16_kernel");
  return Status::OK();
}

// x (n) bf16 -> out (n) f32
Status bf16_to_f32(int device, float* out, const uint16_t* x, int64_t n) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  bf16_to_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, x, n);
  DINO_CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
  return Status::OK();
}

// x (n) f32 -> out (n) f16
Status f32_to_f16(int device, uint16_t* out, const float* x, int64_t n) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  f32_to_f16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, x, n);
  DINO_CUDA_CHECK_LAUNCH("f32_to_f16_kernel");
  return Status::OK();
}

// x (n) f16 -> out (n) f32
Status f16_to_f32(int device, float* out, const uint16_t* x, int64_t n) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(device, &stream));
  if (n <= 0) return Status::OK();
  f16_to_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, x, n);
  DINO_CUDA_CHECK_LAUNCH("f16_to_f32_kernel");
  return Status::OK();
}

}  // namespace dino::cuda
