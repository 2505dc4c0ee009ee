// CUDA emulation for tests: native/cuda compiled as host C++ against this header, so that a machine
// without a GPU (CI) still runs every kernel, the ops' CUDA dispatch, the caching allocator on a
// device, the copies and the cuBLAS mapping. Built only with -DDINO_CUDA_EMULATION=ON; it lives under
// test/ because it is test infrastructure and never part of an addon meant for use.
//
// How: test/emu/rewrite.mjs turns each `kernel<<<grid, block, shm, stream>>>(args)` into
// `::emu::launch("kernel", kernel, ::emu::Config(grid, block, shm, stream), args)` (and each __shared__
// array into a static one that is poisoned at the start of every block). runtime.cpp runs a launch on
// the calling thread: blocks one after another, the threads of a block as coroutines, switched at
// __syncthreads and at warp shuffles, with checks that every thread of the block reaches each barrier
// and every lane of the warp each full-mask shuffle. Device memory is host memory; streams and events
// exist but all work runs at once, in issue order. cuBLAS is a reference GEMM (runtime.cpp).
//
// It declares what native/cuda uses, no more: code that needs another runtime function or intrinsic
// fails to compile in the emulated build until it is added here, with the semantics of the real one.
// __CUDACC__ and __CUDA_ARCH__ stay undefined: shared host/device code takes its host branch.
#pragma once
#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "driver_types.h"
#include "library_types.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// rewrite.mjs replaces `__shared__ T name[...];` declarations; anything else gets plain static storage,
// which is per block because blocks run one at a time.
#define __shared__ static

// ---------------------------------------------------------------------------------------------------
// Runtime API (runtime.cpp). Same signatures and error codes as the real runtime.

cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaMemset2DAsync(void* ptr, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream);

// Every kernel of this build runs on the emulated device.
template <typename F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, F* /*kernel*/) {
  attr->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------------
// Built-in variables and device functions

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// Set by the scheduler before it switches to a thread. Plain globals: launches never overlap (runtime.cpp).
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

// The _rn intrinsics round to nearest even, as IEEE float and double arithmetic on the host does (these
// files are compiled with -ffp-contract=off, so nothing is fused behind their back).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }

// CUDA's integer min/max overloads (its float ones are fminf/fmaxf, from <math.h> here).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

namespace emu {

struct Config {
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  Config(dim3 g, dim3 b, size_t shm = 0, cudaStream_t s = nullptr) : grid(g), block(b), shared_bytes(shm), stream(s) {}
};

// Runs body(ctx) once per thread of the grid (runtime.cpp). Sets the thread's last error as the real
// runtime would: cudaErrorInvalidConfiguration for a bad shape, cudaErrorLaunchFailure (with the
// emulator's finding in cudaGetErrorString) for a kernel that broke the rules above.
void run_kernel(const char* name, const Config& config, void (*body)(void*), void* ctx);
// A kernel's pointer argument must be null or point into a cudaMalloc block (or one past its end).
bool check_kernel_pointer(const char* kernel, int index, const void* p);

template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), const Config& config, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
  // The arguments converted to the parameter types once, as the real launch copies them.
  std::tuple<std::decay_t<P>...> values(std::forward<A>(args)...);
  bool ok = true;
  int index = 0;
  std::apply(
      [&](const auto&... v) {
        auto check = [&](const auto& x) {
          if constexpr (std::is_pointer_v<std::decay_t<decltype(x)>>) ok = check_kernel_pointer(name, index, x) && ok;
          ++index;
        };
        (check(v), ...);
      },
      values);
  if (!ok) return;
  struct Ctx {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...>* values;
  } ctx{kernel, &values};
  run_kernel(name, config, [](void* p) {
    auto* c = static_cast<Ctx*>(p);
    std::apply(c->kernel, *c->values);
  }, &ctx);
}

// Marks the start of a __shared__ array's life in the current block: the first thread to get here
// fills it with 0xff bytes (NaN for floats), so reading a value no thread of this block wrote shows.
void shared_array(void* p, size_t bytes);

void syncthreads();
// kind: 0 xor, 1 down, 2 up, 3 index. Returns the source lane's `bits`.
uint64_t shuffle(unsigned mask, uint64_t bits, int arg, int width, int kind);

template <typename T>
T shuffle_as(unsigned mask, T v, int arg, int width, int kind) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(mask, bits, arg, width, kind);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

}  // namespace emu

inline void __syncthreads() { emu::syncthreads(); }
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) { return emu::shuffle_as(mask, v, lane_mask, width, 0); }
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) { return emu::shuffle_as(mask, v, int(delta), width, 1); }
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) { return emu::shuffle_as(mask, v, int(delta), width, 2); }
template <typename T>
T __shfl_sync(unsigned mask, T v, int lane, int width = 32) { return emu::shuffle_as(mask, v, lane, width, 3); }
