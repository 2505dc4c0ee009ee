// CPU single-precision GEMM driver: cache blocking, packing and threading around the register-tile
// micro-kernels of gemm_avx512.cpp / gemm_avx2.cpp (or a portable one), picked once at run time.
//
// The structure follows the GotoBLAS / BLIS recipe, with the roles of A and B chosen for row-major C:
//   for each jc block of nc columns of C:              (nc: the packed B panel fills ~5/8 of L2)
//     for each pc block of kc along K:                 (kc: a packed A sliver fills about half of L1)
//       pack B[pc:pc+kc, jc:jc+nc] into NR-wide slivers           -> stays in L2
//       for each MR-row sliver ic of this thread's rows of C:
//         pack alpha * A[ic:ic+MR, pc:pc+kc] into one MR-tall sliver -> stays in L1
//         for each NR-wide sliver jr of the panel: micro-kernel C[ic, jc+jr] (MR x NR)
// Packing lays both operands out exactly as the micro-kernel reads them (contiguous, zero-padded to
// full tiles), so transA / transB cost only a different gather in the packing routines, and the
// kernel's loads are all unit-stride and aligned. An A sliver is packed right before its kernel
// calls so it is still in L1 for all of them; the B panel is read MR rows at a time from L2.
// While one sliver is computed, the source rows of the next A sliver and of the next B panel are
// prefetched a piece at a time, so packing does not stall on DRAM.
#include "dino/gemm.h"

#include <omp.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "gemm_kernels.h"

namespace dino::cpu {
namespace {

// One GEMM of the batch, with its operands already offset to batch entry b.
struct Gemm {
  bool transA, transB;
  int64_t K;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Portable micro-kernel with the same contract as the SIMD ones (gemm_kernels.h). 4 x 8 keeps the
// 32 accumulators within the 16 SSE registers of baseline x86-64 once the compiler vectorises j.
constexpr int kGenericMR = 4, kGenericNR = 8;
void sgemm_ukernel_generic(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                           float beta, int64_t m, int64_t n) {
  constexpr int MR = kGenericMR, NR = kGenericNR;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, Ap += MR, Bp += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += Ap[i] * Bp[j];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++)
      C[i * ldc + j] = beta == 0.0f ? acc[i][j] : acc[i][j] + beta * C[i * ldc + j];
}

// Cache sizes steer the blocking. sysconf reports them on Linux/glibc; inside some VMs it reports 0,
// so fall back to sizes typical of current x86 cores.
int64_t cache_bytes(int name, int64_t fallback) {
  long v = sysconf(name);
  return v > 0 ? v : fallback;
}

// kc: depth of a packed block. The MR x kc A sliver should take about half of L1d (the other half
// streams B and C); the blocks along K are evened out so a K just above the limit is not split
// into a full block plus a sliver (each extra block is one more read-modify-write pass over C).
template <int MR>
int64_t pick_kc(int64_t K) {
  static const int64_t max_kc = std::clamp<int64_t>(
      cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 32 << 10) / 2 / (MR * int64_t(sizeof(float))), 128, 1024);
  return round_up(ceil_div(K, ceil_div(K, max_kc)), 8);
}

// nc: width of the packed B panel; kc x nc floats should take about half of L2, leaving room for
// the A rows and C tiles streaming past. Evened out across blocks like kc.
template <int NR>
int64_t pick_nc(int64_t N, int64_t kc) {
  static const int64_t l2 = cache_bytes(_SC_LEVEL2_CACHE_SIZE, 1 << 20);
  const int64_t max_nc = std::max<int64_t>(NR, l2 * 5 / 8 / (kc * int64_t(sizeof(float))) / NR * NR);
  return round_up(ceil_div(N, ceil_div(N, max_nc)), NR);
}

// dst[k*W + r] = scale[r] * src[r][k] for r < W, k < kc: W rows read side by side and written out
// as kc columns, the transposing half of packing. 4 x 4 blocks are transposed in SSE registers
// (baseline on x86-64), about four times faster than moving one float at a time; rows past the
// last multiple of 4 (W = 6) go one float at a time. A zero scale blanks a padding row; its source
// pointer must still be readable for kc floats. (A non-finite value there gives NaN, but only in
// accumulators of the padding, which are never stored.)
template <int W>
void pack_transposed(const float* const* src, const float* scale, int64_t kc, float* dst) {
  constexpr int W4 = W / 4 * 4;
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    for (int r = 0; r < W4; r += 4) {
      __m128 c0 = _mm_loadu_ps(src[r] + k), c1 = _mm_loadu_ps(src[r + 1] + k);
      __m128 c2 = _mm_loadu_ps(src[r + 2] + k), c3 = _mm_loadu_ps(src[r + 3] + k);
      _MM_TRANSPOSE4_PS(c0, c1, c2, c3);  // now c0 holds column k of rows r..r+3, c1 column k+1...
      const __m128 s = _mm_loadu_ps(scale + r);
      _mm_storeu_ps(dst + (k + 0) * W + r, _mm_mul_ps(c0, s));
      _mm_storeu_ps(dst + (k + 1) * W + r, _mm_mul_ps(c1, s));
      _mm_storeu_ps(dst + (k + 2) * W + r, _mm_mul_ps(c2, s));
      _mm_storeu_ps(dst + (k + 3) * W + r, _mm_mul_ps(c3, s));
    }
    for (int r = W4; r < W; r++)
      for (int64_t kk = k; kk < k + 4; kk++) dst[kk * W + r] = scale[r] * src[r][kk];
  }
  for (; k < kc; k++)
    for (int r = 0; r < W; r++) dst[k * W + r] = scale[r] * src[r][k];
}

// Where a sliver's source lies in A or B: `count` runs of `len` floats, `stride` apart.
struct Runs {
  const float* first;
  int64_t count, len, stride;
};

// The source of the A sliver of rows i0..i0+m, depth p0..p0+kc: MR rows of kc floats, or kc rows
// of MR floats when A is transposed.
Runs a_source(const Gemm& g, int64_t i0, int64_t m, int64_t p0, int64_t kc) {
  if (g.transA) return {g.A + p0 * g.lda + i0, kc, m, g.lda};
  return {g.A + i0 * g.lda + p0, m, kc, g.lda};
}

// The source of the B sliver of columns j0..j0+n, depth p0..p0+kc.
Runs b_source(const Gemm& g, int64_t j0, int64_t n, int64_t p0, int64_t kc) {
  if (g.transB) return {g.B + j0 * g.ldb + p0, n, kc, g.ldb};
  return {g.B + p0 * g.ldb + j0, kc, n, g.ldb};
}

// Asks for runs [r0, r1) to be brought into cache (L1 with hint T0, L2 with T1). Packing reads rows of A and B
// that are usually in DRAM, and the hardware prefetcher barely tracks a dozen strided streams: a
// stalled pack cost up to a quarter of the time of small-K GEMMs. So the driver prefetches the next
// sliver (or panel) while working on the current one.
template <_mm_hint hint>
void prefetch_runs(const Runs& runs, int64_t r0, int64_t r1) {
  constexpr int64_t line = 64 / sizeof(float);
  for (int64_t r = r0; r < r1; r++) {
    const char* run = reinterpret_cast<const char*>(runs.first + r * runs.stride);
    for (int64_t x = 0; x < runs.len; x += line) _mm_prefetch(run + x * sizeof(float), hint);
    _mm_prefetch(run + (runs.len - 1) * sizeof(float), hint);  // the tail of an unaligned run
  }
}

// Packs alpha * op(A)[i0:i0+m, p0:p0+kc] as one (kc, MR) sliver: dst[k*MR + i]. Rows m..MR-1 are
// zero so the kernel can always run the full tile.
template <int MR>
void pack_a(const Gemm& g, int64_t i0, int64_t m, int64_t p0, int64_t kc, float* dst) {
  const float alpha = g.alpha;
  if (g.transA) {
    // op(A)(i, k) = A[k*lda + i]: each k reads MR contiguous values, a straight copy.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = g.A + (p0 + k) * g.lda + i0;
      float* d = dst + k * MR;
      for (int64_t i = 0; i < m; i++) d[i] = alpha * src[i];
      for (int64_t i = m; i < MR; i++) d[i] = 0.0f;
    }
  } else {
    // op(A)(i, k) = A[i*lda + k]: a transpose. Padding rows repeat row m-1 with a zero scale.
    const float* src[MR];
    float scale[MR];
    for (int i = 0; i < MR; i++) {
      src[i] = g.A + (i0 + std::min<int64_t>(i, m - 1)) * g.lda + p0;
      scale[i] = i < m ? alpha : 0.0f;
    }
    pack_transposed<MR>(src, scale, kc, dst);
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as ceil(nc/NR) slivers of (kc, NR): sliver s holds
// dst[s*kc*NR + k*NR + j] = op(B)(p0+k, j0+s*NR+j), columns past nc zero.
template <int NR>
void pack_b(const Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t s = 0; s * NR < nc; s++, dst += kc * NR) {
    const int64_t js = j0 + s * NR, n = std::min<int64_t>(NR, nc - s * NR);
    if (js + NR < j0 + nc) {
      const Runs next = b_source(g, js + NR, std::min<int64_t>(NR, j0 + nc - js - NR), p0, kc);
      prefetch_runs<_MM_HINT_T0>(next, 0, next.count);
    }
    if (!g.transB) {
      // op(B)(k, j) = B[k*ldb + j]: rows of the sliver are contiguous in B.
      for (int64_t k = 0; k < kc; k++) {
        const float* src = g.B + (p0 + k) * g.ldb + js;
        float* d = dst + k * NR;
        if (n == NR) {
          std::memcpy(d, src, NR * sizeof(float));
        } else {
          for (int64_t j = 0; j < n; j++) d[j] = src[j];
          for (int64_t j = n; j < NR; j++) d[j] = 0.0f;
        }
      }
    } else {
      // op(B)(k, j) = B[j*ldb + k]: a transpose. Padding columns repeat column n-1, scaled by 0.
      const float* src[NR];
      float scale[NR];
      for (int j = 0; j < NR; j++) {
        src[j] = g.B + (js + std::min<int64_t>(j, n - 1)) * g.ldb + p0;
        scale[j] = j < n ? 1.0f : 0.0f;
      }
      pack_transposed<NR>(src, scale, kc, dst);
    }
  }
}

// Per-thread packing buffers, kept across calls: reallocating (and page-faulting) a panel on every
// call would cost more than a small GEMM itself. Null when the system refuses the memory.
float* thread_buffer(int64_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buf;
  thread_local int64_t cap = 0;
  if (floats > cap) {
    const int64_t want = round_up(floats, 4096);
    buf.reset(static_cast<float*>(std::aligned_alloc(64, want * sizeof(float))));
    cap = buf ? want : 0;
  }
  return buf.get();
}

// The same block without packing, for a thread that could not get its few MiB of packing buffer:
// slow, but an exception thrown here (inside a parallel region) would end the process.
void unpacked_block(const Gemm& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t i = m0; i < m1; i++) {
    for (int64_t j = n0; j < n1; j++) {
      float acc = 0.0f;
      for (int64_t k = 0; k < g.K; k++)
        acc += (g.transA ? g.A[k * g.lda + i] : g.A[i * g.lda + k]) * (g.transB ? g.B[j * g.ldb + k] : g.B[k * g.ldb + j]);
      float* c = g.C + i * g.ldc + j;
      *c = g.beta == 0.0f ? g.alpha * acc : g.alpha * acc + g.beta * *c;
    }
  }
}

// C[m0:m1, n0:n1] of one GEMM on the calling thread. m0 is a multiple of MR and n0 of NR, so the
// tiles of different calls never overlap.
// A: op(A) (M, K), B: op(B) (K, N), C: (M, N); only rows m0..m1 and columns n0..n1 are touched.
template <int MR, int NR, sgemm_ukernel_fn ukernel>
void gemm_block(const Gemm& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kc_max = pick_kc<MR>(g.K), nc_max = pick_nc<NR>(n1 - n0, kc_max);
  float* bufB = thread_buffer(kc_max * nc_max + MR * kc_max);
  if (!bufB) return unpacked_block(g, m0, m1, n0, n1);
  float* bufA = bufB + kc_max * nc_max;  // kc_max * nc_max is a multiple of 64: aligned
  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < g.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, g.K - pc);
      // Later K blocks accumulate onto what the first one wrote.
      const float beta = pc == 0 ? g.beta : 1.0f;
      pack_b<NR>(g, pc, kc, jc, nc, bufB);
      // The source of the next B panel, fetched a little per A sliver so it is in cache when
      // packed: with a large K and few rows per thread, B packing otherwise stalls on DRAM.
      Runs next_b{nullptr, 0, 0, 0};
      if (pc + kc < g.K)
        next_b = b_source(g, jc, nc, pc + kc, std::min(kc_max, g.K - pc - kc));
      else if (jc + nc < n1)
        next_b = b_source(g, jc + nc, std::min(nc_max, n1 - jc - nc), 0, std::min(kc_max, g.K));
      const int64_t slivers = ceil_div(m1 - m0, MR), calls = ceil_div(nc, NR);
      for (int64_t s = 0; s < slivers; s++) {
        const int64_t ic = m0 + s * MR, m = std::min<int64_t>(MR, m1 - ic);
        prefetch_runs<_MM_HINT_T1>(next_b, next_b.count * s / slivers, next_b.count * (s + 1) / slivers);
        pack_a<MR>(g, ic, m, pc, kc, bufA);
        const Runs next_a = s + 1 < slivers
                                ? a_source(g, ic + MR, std::min<int64_t>(MR, m1 - ic - MR), pc, kc)
                                : Runs{nullptr, 0, 0, 0};
        float* c = g.C + ic * g.ldc + jc;
        for (int64_t t = 0; t < calls; t++) {
          const int64_t jr = t * NR;
          prefetch_runs<_MM_HINT_T1>(next_a, next_a.count * t / calls, next_a.count * (t + 1) / calls);
          ukernel(kc, bufA, bufB + jr * kc, c + jr, g.ldc, beta, m, std::min<int64_t>(NR, nc - jr));
        }
      }
    }
  }
}

// C = beta * C for one GEMM: what the product reduces to when K == 0 or alpha == 0.
void scale_c(float* C, int64_t M, int64_t N, int64_t ldc, float beta) {
  for (int64_t i = 0; i < M; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f)
      std::fill(row, row + N, 0.0f);
    else
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
  }
}

struct Kernel {
  const char* name;
  int mr, nr;
  void (*block)(const Gemm&, int64_t, int64_t, int64_t, int64_t);
};

const Kernel& kernel() {
  static const Kernel k = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
      return Kernel{"avx512", kAvx512MR, kAvx512NR,
                    gemm_block<kAvx512MR, kAvx512NR, sgemm_ukernel_avx512>};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      return Kernel{"avx2", kAvx2MR, kAvx2NR, gemm_block<kAvx2MR, kAvx2NR, sgemm_ukernel_avx2>};
    return Kernel{"generic", kGenericMR, kGenericNR,
                  gemm_block<kGenericMR, kGenericNR, sgemm_ukernel_generic>};
  }();
  return k;
}

}  // namespace

const char* sgemm_kernel_name() { return kernel().name; }

void sgemm_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA,
                   const float* B, int64_t ldb, int64_t strideB, float beta,
                   float* C, int64_t ldc, int64_t strideC, int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const Kernel& kern = kernel();

  // Below about a million multiply-adds the fork/join of a parallel region costs more than it saves.
  const double flops = 2.0 * double(M) * double(N) * double(std::max<int64_t>(K, 1)) * double(batch);
  const int threads = flops < 2e6 ? 1 : omp_get_max_threads();

  if (K <= 0 || alpha == 0.0f) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < batch; b++) scale_c(C + b * strideC, M, N, ldc, beta);
    return;
  }

  // Work units: whole GEMMs when the batch alone keeps every thread busy (and evenly so); otherwise
  // each GEMM is cut into `splits` rectangles of C, on a tm x tn grid of MR-row / NR-column tiles.
  // Each unit packs its own panels, so units need no synchronisation.
  const bool by_batch = batch >= threads && (batch % threads == 0 || batch >= 4 * threads);
  const int64_t splits = by_batch ? 1 : threads;
  const int64_t mt = ceil_div(M, kern.mr), nt = ceil_div(N, kern.nr);
  // Grid: the one with the least work in its biggest unit (partial tiles cost as much as full ones);
  // on ties, more cuts along M, since a cut along N repacks A in both halves.
  int64_t tm = 1, best = -1;
  for (int64_t t = splits; t >= 1; t--) {
    if (splits % t) continue;
    const int64_t cost = ceil_div(mt, t) * ceil_div(nt, splits / t);
    if (best < 0 || cost < best) best = cost, tm = t;
  }
  const int64_t tn = splits / tm;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t u = 0; u < batch * splits; u++) {
    const int64_t b = u / splits, ti = u % splits / tn, tj = u % tn;
    const int64_t m0 = mt * ti / tm * kern.mr, m1 = std::min(M, mt * (ti + 1) / tm * kern.mr);
    const int64_t n0 = nt * tj / tn * kern.nr, n1 = std::min(N, nt * (tj + 1) / tn * kern.nr);
    if (m0 >= m1 || n0 >= n1) continue;
    const Gemm g{transA, transB, K, alpha, beta, A + b * strideA, lda,
                 B + b * strideB, ldb, C + b * strideC, ldc};
    kern.block(g, m0, m1, n0, n1);
  }
}

}  // namespace dino::cpu
