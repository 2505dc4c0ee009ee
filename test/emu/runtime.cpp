// The emulated CUDA runtime and cuBLAS (see cuda_runtime.h): one device, "CPU emulation of a CUDA
// device", whose memory is host memory and whose kernels run on the calling thread.
//
// Kernels. A launch runs its blocks one after another; a block's threads are coroutines on one OS thread
// (x86-64 stack switching below, a few nanoseconds a switch). Each thread runs until it finishes or
// waits: at __syncthreads for the whole block, at a shuffle for its whole warp. When no thread can run,
// the scheduler releases the warps whose 32 lanes all wait at a shuffle, else the barrier if every
// thread of the block waits there; anything else (a thread that left while others wait at a barrier, a
// warp split between a shuffle and something else, a partial warp or mask) is reported as the kernel's
// failure, with what was found, instead of hanging or guessing. Threads run in index order, and in
// reverse order every other step, so a read of shared memory that some other thread writes without a
// barrier in between sees the wrong value in one of the two orders.
//
// Launches, copies, memsets and GEMMs take one lock: the device does one thing at a time, in the order
// the host issued it, and kernels may use static storage for __shared__ arrays and the built-ins.
//
// Not emulated (tests pass here and may still fail on a GPU): timing, races between blocks or within a
// warp, the memory model, out-of-bounds accesses inside an allocation, shared-memory and register
// limits, the GPU's rounding where it differs from the host's (nvcc fuses a * b + c into one FMA,
// expf/logf/erfcf differ in the last bits, cuBLAS sums in its own order).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cublas_loader.h"
#include "cuda_runtime.h"
#include "dino/status.h"

#if !defined(__x86_64__)
#error "the CUDA emulation switches stacks with x86-64 code"
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

constexpr int kVersion = 13000;  // what the driver and the runtime report: CUDA 13.0
constexpr size_t kDeviceBytes = size_t{16} << 30;
constexpr size_t kAlignment = 256;  // cudaMalloc's alignment

std::mutex g_device_mu;  // one thing at a time on the device (see the top of the file)
thread_local cudaError_t t_last_error = cudaSuccess;
// The emulator's own finding behind the last error it raised: returned by cudaGetErrorString for it.
std::mutex g_detail_mu;
cudaError_t g_detail_error = cudaSuccess;
std::string g_detail;

cudaError_t fail(cudaError_t err, const std::string& what) {
  std::fprintf(stderr, "CUDA emulation: %s\n", what.c_str());
  {
    std::lock_guard<std::mutex> lock(g_detail_mu);
    g_detail_error = err;
    g_detail = what;
  }
  t_last_error = err;
  return err;
}

cudaError_t ok_or(cudaError_t err) {
  if (err != cudaSuccess) t_last_error = err;
  return err;
}

// ---------------------------------------------------------------------------------------------------
// Memory: device blocks are 256-byte aligned host blocks, remembered so that copies and kernels can
// check that a pointer is what it should be.

std::map<uintptr_t, size_t> g_device_blocks;  // start -> bytes; guarded by g_device_mu
std::set<uintptr_t> g_host_blocks;            // pinned; guarded by g_device_mu
size_t g_device_used = 0;
std::set<cudaStream_t> g_streams;
std::set<cudaEvent_t> g_events;

// The block holding [p, p + bytes) (p == end allowed for bytes == 0), or end().
std::map<uintptr_t, size_t>::const_iterator find_block(const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_device_blocks.upper_bound(a);
  if (it == g_device_blocks.begin()) return g_device_blocks.end();
  --it;
  if (a - it->first + bytes > it->second) return g_device_blocks.end();
  return it;
}

bool on_device(const void* p, size_t bytes) { return find_block(p, bytes) != g_device_blocks.end(); }

bool valid_stream(cudaStream_t s) { return s == nullptr || g_streams.count(s) > 0; }

std::string hex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

// Checks the two sides of a copy (or a memset's one side, src == nullptr) against `kind`.
cudaError_t check_copy(const char* call, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev != on_device(dst, bytes))
    return fail(cudaErrorInvalidValue, dino::str(call, ": destination ", hex(dst), " (", bytes, " bytes) is ",
                                                 dst_dev ? "not inside a device allocation" : "device memory"));
  if (src && src_dev != on_device(src, bytes))
    return fail(cudaErrorInvalidValue, dino::str(call, ": source ", hex(src), " (", bytes, " bytes) is ",
                                                 src_dev ? "not inside a device allocation" : "device memory"));
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------------
// Coroutines: emu_switch saves the callee-saved registers, MXCSR and the x87 control word on the current
// stack, stores the stack pointer in *save and continues on `next` (a stack emu_switch saved earlier, or
// a fresh one made by new_stack).

extern "C" void emu_switch(void** save, void* next);
asm(R"(
    .text
    .p2align 4
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

constexpr size_t kStackBytes = size_t{256} << 10;

struct Stack {
  char* base;  // lowest usable address; a guard page lies below it
};

std::vector<Stack> g_free_stacks;  // reused across threads, blocks and launches

Stack take_stack() {
  if (!g_free_stacks.empty()) {
    Stack s = g_free_stacks.back();
    g_free_stacks.pop_back();
    return s;
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "CUDA emulation: no memory for a thread stack\n");
    std::abort();
  }
  mprotect(p, page, PROT_NONE);  // a stack overflow faults instead of corrupting its neighbour
  return Stack{static_cast<char*>(p) + page};
}

enum class State { kFresh, kReady, kBarrier, kShuffle, kDone };

struct Thread {
  uint3 idx;
  State state;
  void* sp;
  Stack stack;
  // The pending shuffle.
  unsigned mask;
  int arg, width, kind;
  uint64_t bits, result;
};

struct Block {
  std::vector<Thread> threads;
  Thread* current = nullptr;
  void* scheduler_sp = nullptr;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  std::vector<void*> shared_seen;  // __shared__ arrays poisoned in this block
};

Block g_block;  // the running block; guarded by g_device_mu

[[noreturn]] void thread_entry() {
  g_block.body(g_block.ctx);
  g_block.current->state = State::kDone;
  emu_switch(&g_block.current->sp, g_block.scheduler_sp);
  __builtin_unreachable();
}

// A fresh stack whose first emu_switch "returns" into thread_entry with the alignment of a call.
void* new_stack(const Stack& s) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(s.base) + kStackBytes) & ~uintptr_t{15};
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                               // thread_entry's (never used) return address
  *--sp = reinterpret_cast<uint64_t>(&thread_entry);       // where emu_switch's ret goes
  for (int i = 0; i < 6; ++i) *--sp = 0;                   // rbp rbx r12 r13 r14 r15
  uint32_t csr[2];
  asm volatile("stmxcsr %0" : "=m"(csr[0]));
  asm volatile("fnstcw %0" : "=m"(csr[1]));
  *--sp = uint64_t{csr[0]} | uint64_t{csr[1]} << 32;
  return sp;
}

// Runs t until it waits or finishes.
void resume(Thread& t) {
  if (t.state == State::kFresh) {
    t.stack = take_stack();
    t.sp = new_stack(t.stack);
  }
  t.state = State::kReady;
  threadIdx = t.idx;
  g_block.current = &t;
  emu_switch(&g_block.scheduler_sp, t.sp);
  g_block.current = nullptr;
  if (t.state == State::kDone) g_free_stacks.push_back(t.stack);
}

// Parks the current thread in `state` and returns to the scheduler; returns when it is released.
void wait(State state) {
  Thread* t = g_block.current;
  t->state = state;
  emu_switch(&t->sp, g_block.scheduler_sp);
  threadIdx = t->idx;
}

std::string where(const Thread& t) { return dino::str("thread (", t.idx.x, ",", t.idx.y, ",", t.idx.z, ")"); }

// Releases the warps whose lanes all wait at a shuffle. Returns false with *error set when a warp is
// split between a shuffle and something else, or the shuffle is not one the emulation can honour.
bool release_shuffles(bool* released, std::string* error) {
  std::vector<Thread>& th = g_block.threads;
  const size_t n = th.size();
  for (size_t w0 = 0; w0 < n; w0 += 32) {
    const size_t lanes = std::min<size_t>(32, n - w0);
    size_t at_shuffle = 0;
    for (size_t l = 0; l < lanes; ++l) at_shuffle += th[w0 + l].state == State::kShuffle;
    if (at_shuffle == 0) continue;
    const Thread& first = *std::find_if(th.begin() + w0, th.begin() + w0 + lanes,
                                        [](const Thread& t) { return t.state == State::kShuffle; });
    const std::string warp = dino::str("warp ", w0 / 32, " (threads ", w0, "..", w0 + lanes - 1, ")");
    if (first.mask != 0xffffffffu) {
      *error = dino::str(where(first), " shuffles with mask ", hex(reinterpret_cast<void*>(uintptr_t{first.mask})),
                         ": only full-mask shuffles are emulated");
      return false;
    }
    if (lanes < 32) {
      *error = dino::str("a full-mask shuffle in ", warp, ", which has only ", lanes,
                         " lanes (the block size is not a multiple of 32)");
      return false;
    }
    if (at_shuffle < lanes) {
      for (size_t l = 0; l < lanes; ++l) {
        const Thread& t = th[w0 + l];
        if (t.state != State::kShuffle) {
          *error = dino::str("a full-mask shuffle in ", warp, " while lane ", l, " ",
                             t.state == State::kDone ? "has left the kernel" : "waits at __syncthreads");
          return false;
        }
      }
    }
    for (size_t l = 0; l < lanes; ++l) {
      const Thread& t = th[w0 + l];
      if (t.mask != first.mask || t.kind != first.kind || t.width != first.width) {
        *error = dino::str("lanes 0 and ", l, " of ", warp, " are at different shuffles");
        return false;
      }
    }
    if (first.width != 32) {
      *error = dino::str("a shuffle of width ", first.width, ": only width 32 is emulated");
      return false;
    }
    for (size_t l = 0; l < lanes; ++l) {
      Thread& t = th[w0 + l];
      int src = static_cast<int>(l);
      switch (t.kind) {
        case 0: src = static_cast<int>(l) ^ t.arg; break;
        case 1: src = static_cast<int>(l) + t.arg; break;
        case 2: src = static_cast<int>(l) - t.arg; break;
        default: src = t.arg & 31; break;
      }
      if (src < 0 || src > 31) src = static_cast<int>(l);  // out of the warp: the lane keeps its own value
      t.result = th[w0 + src].bits;
    }
    for (size_t l = 0; l < lanes; ++l) th[w0 + l].state = State::kReady;
    *released = true;
  }
  return true;
}

// Runs one block to the end. Returns false with *error set on a broken rule.
bool run_block(std::string* error) {
  std::vector<Thread>& th = g_block.threads;
  const int n = static_cast<int>(th.size());
  g_block.shared_seen.clear();
  int i = 0;
  for (unsigned z = 0; z < blockDim.z; ++z)
    for (unsigned y = 0; y < blockDim.y; ++y)
      for (unsigned x = 0; x < blockDim.x; ++x) {
        Thread& t = th[i++];
        t.idx = uint3{x, y, z};
        t.state = State::kFresh;
      }
  for (int step = 0;; ++step) {
    const bool reverse = step & 1;
    for (int k = 0; k < n; ++k) {
      Thread& t = th[reverse ? n - 1 - k : k];
      if (t.state == State::kFresh || t.state == State::kReady) resume(t);
    }
    bool released = false;
    if (!release_shuffles(&released, error)) return false;
    if (released) continue;
    int done = 0, at_barrier = 0;
    const Thread* left = nullptr;
    for (const Thread& t : th) {
      if (t.state == State::kDone) {
        ++done;
        left = &t;
      }
      at_barrier += t.state == State::kBarrier;
    }
    if (done == n) return true;
    if (done > 0) {
      *error = dino::str(where(*left), " left the kernel while ", at_barrier, " threads of the block wait at __syncthreads");
      return false;
    }
    for (Thread& t : th) t.state = State::kReady;  // every thread waits at the barrier
  }
}

// Threads still parked when a block fails are dropped: their stacks go back to the pool.
void drop_block() {
  for (Thread& t : g_block.threads)
    if (t.state != State::kFresh && t.state != State::kDone) g_free_stacks.push_back(t.stack);
  g_block.threads.clear();
}

}  // namespace

namespace emu {

bool check_kernel_pointer(const char* kernel, int index, const void* p) {
  if (!p) return true;
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (on_device(p, 0)) return true;
  fail(cudaErrorIllegalAddress,
       dino::str("kernel ", kernel, ": argument ", index, " (", hex(p), ") is not device memory"));
  return false;
}

void run_kernel(const char* name, const Config& c, void (*body)(void*), void* ctx) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 ||
      c.grid.z > 65535 || c.block.x == 0 || c.block.y == 0 || c.block.z == 0 || c.block.x > 1024 ||
      c.block.y > 1024 || c.block.z > 64 || threads > 1024) {
    fail(cudaErrorInvalidConfiguration,
         dino::str("kernel ", name, ": invalid launch configuration, grid (", c.grid.x, ",", c.grid.y, ",", c.grid.z,
                   ") block (", c.block.x, ",", c.block.y, ",", c.block.z, ")"));
    return;
  }
  if (c.shared_bytes > 0) {  // no kernel of ours uses it
    fail(cudaErrorInvalidValue, dino::str("kernel ", name, ": dynamic shared memory is not emulated"));
    return;
  }
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!valid_stream(c.stream)) {
    fail(cudaErrorInvalidResourceHandle, dino::str("kernel ", name, ": launched on a stream that does not exist"));
    return;
  }
  gridDim = c.grid;
  blockDim = c.block;
  g_block.body = body;
  g_block.ctx = ctx;
  g_block.threads.assign(threads, Thread{});
  std::string error;
  for (unsigned z = 0; z < c.grid.z; ++z)
    for (unsigned y = 0; y < c.grid.y; ++y)
      for (unsigned x = 0; x < c.grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        if (!run_block(&error)) {
          drop_block();
          fail(cudaErrorLaunchFailure, dino::str("kernel ", name, ", block (", x, ",", y, ",", z, "): ", error));
          return;
        }
      }
  g_block.threads.clear();
}

void shared_array(void* p, size_t bytes) {
  for (void* q : g_block.shared_seen)
    if (q == p) return;
  g_block.shared_seen.push_back(p);
  std::memset(p, 0xff, bytes);
}

void syncthreads() { wait(State::kBarrier); }

uint64_t shuffle(unsigned mask, uint64_t bits, int arg, int width, int kind) {
  Thread* t = g_block.current;
  t->mask = mask;
  t->bits = bits;
  t->arg = arg;
  t->width = width;
  t->kind = kind;
  wait(State::kShuffle);
  return t->result;
}

}  // namespace emu

// -----------------------------------------------------------------------------------------------------
// Runtime API

cudaError_t cudaGetLastError() {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
#define DINO_EMU_NAME(e) \
  case e: return #e;
    DINO_EMU_NAME(cudaSuccess)
    DINO_EMU_NAME(cudaErrorInvalidValue)
    DINO_EMU_NAME(cudaErrorMemoryAllocation)
    DINO_EMU_NAME(cudaErrorInvalidConfiguration)
    DINO_EMU_NAME(cudaErrorInvalidDevice)
    DINO_EMU_NAME(cudaErrorInvalidDeviceFunction)
    DINO_EMU_NAME(cudaErrorInsufficientDriver)
    DINO_EMU_NAME(cudaErrorNoDevice)
    DINO_EMU_NAME(cudaErrorInvalidResourceHandle)
    DINO_EMU_NAME(cudaErrorIllegalAddress)
    DINO_EMU_NAME(cudaErrorHardwareStackError)
    DINO_EMU_NAME(cudaErrorIllegalInstruction)
    DINO_EMU_NAME(cudaErrorMisalignedAddress)
    DINO_EMU_NAME(cudaErrorInvalidPc)
    DINO_EMU_NAME(cudaErrorAssert)
    DINO_EMU_NAME(cudaErrorLaunchFailure)
    DINO_EMU_NAME(cudaErrorNoKernelImageForDevice)
#undef DINO_EMU_NAME
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  {
    static thread_local std::string detail;
    std::lock_guard<std::mutex> lock(g_detail_mu);
    if (err != cudaSuccess && err == g_detail_error) {
      detail = "emulated device: " + g_detail;
      return detail.c_str();
    }
  }
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    default: return "emulated CUDA error";
  }
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = kVersion;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = kVersion;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return ok_or(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "%s", "CPU emulation of a CUDA device");
  p->totalGlobalMem = kDeviceBytes;
  p->major = 9;
  p->minor = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return ok_or(cudaErrorInvalidDevice);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  *s = reinterpret_cast<cudaStream_t>(new char);
  g_streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!g_streams.erase(s)) return ok_or(cudaErrorInvalidResourceHandle);
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  return valid_stream(s) ? cudaSuccess : ok_or(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  *e = reinterpret_cast<cudaEvent_t>(new char);
  g_events.insert(*e);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!g_events.erase(e)) return ok_or(cudaErrorInvalidResourceHandle);
  delete reinterpret_cast<char*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  return g_events.count(e) && valid_stream(s) ? cudaSuccess : ok_or(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  return g_events.count(e) ? cudaSuccess : ok_or(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  std::lock_guard<std::mutex> lock(g_device_mu);
  const size_t rounded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded > kDeviceBytes - g_device_used) return ok_or(cudaErrorMemoryAllocation);
  void* q = std::aligned_alloc(kAlignment, rounded);
  if (!q) return ok_or(cudaErrorMemoryAllocation);
  std::memset(q, 0xff, rounded);  // fresh device memory is garbage: NaNs show reads of unwritten values
  g_device_blocks[reinterpret_cast<uintptr_t>(q)] = bytes;
  g_device_used += rounded;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_device_mu);
  auto it = g_device_blocks.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_device_blocks.end()) return fail(cudaErrorInvalidValue, dino::str("cudaFree(", hex(p), "): not a device block"));
  g_device_used -= (std::max<size_t>(it->second, 1) + kAlignment - 1) / kAlignment * kAlignment;
  g_device_blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  *p = std::aligned_alloc(kAlignment, (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment);
  if (!*p) return ok_or(cudaErrorMemoryAllocation);
  g_host_blocks.insert(reinterpret_cast<uintptr_t>(*p));
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!g_host_blocks.erase(reinterpret_cast<uintptr_t>(p)))
    return fail(cudaErrorInvalidValue, dino::str("cudaFreeHost(", hex(p), "): not a pinned block"));
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  *free_bytes = kDeviceBytes - g_device_used;
  *total_bytes = kDeviceBytes;
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!valid_stream(s)) return ok_or(cudaErrorInvalidResourceHandle);
  if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice)
    return fail(cudaErrorInvalidValue, dino::str("cudaMemcpyAsync: kind ", int(kind), " is not emulated"));
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind)) return e;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes, cudaStream_t s) {
  if (dst_device != 0 || src_device != 0) return ok_or(cudaErrorInvalidDevice);
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!valid_stream(s)) return ok_or(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_copy("cudaMemsetAsync", p, nullptr, bytes, cudaMemcpyHostToDevice)) return e;
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!valid_stream(s)) return ok_or(cudaErrorInvalidResourceHandle);
  if (width > pitch) return fail(cudaErrorInvalidValue, dino::str("cudaMemset2DAsync: width ", width, " > pitch ", pitch));
  if (width == 0 || height == 0) return cudaSuccess;
  if (cudaError_t e = check_copy("cudaMemset2DAsync", p, nullptr, pitch * (height - 1) + width, cudaMemcpyHostToDevice))
    return e;
  for (size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(p) + r * pitch, value, width);
  return cudaSuccess;
}

// -----------------------------------------------------------------------------------------------------
// cuBLAS: the functions cublas_loader.cpp hands out in this build, with the real ones' column-major
// semantics and argument checks. Products are summed in float in k order, as a plain SGEMM does;
// cuBLAS's own order (tiles, split K) is not reproduced.

namespace dino::cuda {
namespace {

struct EmuHandle {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};
std::set<cublasHandle_t> g_handles;  // guarded by g_device_mu

EmuHandle* handle_of(cublasHandle_t h) {
  return g_handles.count(h) ? reinterpret_cast<EmuHandle*>(h) : nullptr;
}

cublasStatus_t emu_create(cublasHandle_t* h) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  *h = reinterpret_cast<cublasHandle_t>(new EmuHandle);
  g_handles.insert(*h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t emu_destroy(cublasHandle_t h) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  EmuHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  g_handles.erase(h);
  delete e;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t emu_set_stream(cublasHandle_t h, cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  EmuHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!valid_stream(s)) return CUBLAS_STATUS_INVALID_VALUE;
  e->stream = s;
  e->workspace = nullptr;  // as cuBLAS: a new stream goes back to the default workspace
  e->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t emu_set_math_mode(cublasHandle_t h, cublasMath_t mode) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  EmuHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  e->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t emu_set_workspace(cublasHandle_t h, void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  EmuHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (reinterpret_cast<uintptr_t>(p) % 256 != 0 || (bytes > 0 && !on_device(p, bytes))) return CUBLAS_STATUS_INVALID_VALUE;
  e->workspace = p;
  e->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

// float32 rounded to TF32 (10 mantissa bits, to nearest even), what tensor cores multiply.
float to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
  std::memcpy(&x, &u, 4);
  return x;
}

// Whether a column-major (rows, cols) operand with leading dimension ld, `batch` of them `stride`
// apart, lies inside one device block.
bool operand_on_device(const void* p, int rows, int cols, int ld, long long stride, int batch) {
  if (rows == 0 || cols == 0 || batch == 0) return true;
  const long long last = (batch - 1) * stride + (long long)(cols - 1) * ld + rows;
  return stride >= 0 && on_device(p, static_cast<size_t>(last) * sizeof(float));
}

cublasStatus_t emu_gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                        int k, const void* alpha_p, const void* A, cudaDataType_t At, int lda,
                                        long long sA, const void* B, cudaDataType_t Bt, int ldb, long long sB,
                                        const void* beta_p, void* C, cudaDataType_t Ct, int ldc, long long sC,
                                        int batch, cublasComputeType_t compute, cublasGemmAlgo_t) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  EmuHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (At != CUDA_R_32F || Bt != CUDA_R_32F || Ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC && compute != CUBLAS_COMPUTE_32F_FAST_TF32)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
  const int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = *static_cast<const float*>(alpha_p), beta = *static_cast<const float*>(beta_p);
  const bool reads_ab = k > 0 && alpha != 0.0f;
  if ((reads_ab && (!operand_on_device(A, a_rows, a_cols, lda, sA, batch) || !operand_on_device(B, b_rows, b_cols, ldb, sB, batch))) ||
      !operand_on_device(C, m, n, ldc, sC, batch)) {
    fail(cudaErrorIllegalAddress, "cublasGemmStridedBatchedEx: an operand is not inside a device block");
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  const float* a = static_cast<const float*>(A);
  const float* b = static_cast<const float*>(B);
  float* c = static_cast<float*>(C);
  // Columns are independent: threads change nothing in the result.
#pragma omp parallel for collapse(2) schedule(static)
  for (int p = 0; p < batch; ++p) {
    for (int j = 0; j < n; ++j) {
      const float* ap = a + p * sA;
      const float* bp = b + p * sB;
      float* cj = c + p * sC + (long long)j * ldc;
      for (int i = 0; i < m; ++i) {
        float acc = 0.0f;
        if (reads_ab) {
          for (int l = 0; l < k; ++l) {
            float av = ta == CUBLAS_OP_N ? ap[i + (long long)l * lda] : ap[l + (long long)i * lda];
            float bv = tb == CUBLAS_OP_N ? bp[l + (long long)j * ldb] : bp[j + (long long)l * ldb];
            if (tf32) {
              av = to_tf32(av);
              bv = to_tf32(bv);
            }
            acc += av * bv;
          }
        }
        // beta == 0: C is not read (it may hold NaNs), as in cuBLAS.
        cj[i] = beta == 0.0f ? alpha * acc : alpha * acc + beta * cj[i];
      }
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t emu_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                        const void* alpha, const void* A, cudaDataType_t At, int lda, const void* B, cudaDataType_t Bt,
                        int ldb, const void* beta, void* C, cudaDataType_t Ct, int ldc, cublasComputeType_t compute,
                        cublasGemmAlgo_t algo) {
  return emu_gemm_strided_batched(h, ta, tb, m, n, k, alpha, A, At, lda, 0, B, Bt, ldb, 0, beta, C, Ct, ldc, 0, 1,
                                  compute, algo);
}

cublasStatus_t emu_sscal(cublasHandle_t h, int n, const float* alpha, float* x, int incx) {
  std::lock_guard<std::mutex> lock(g_device_mu);
  if (!handle_of(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;  // nothing to do, as in the reference BLAS
  if (!on_device(x, (static_cast<size_t>(n - 1) * incx + 1) * sizeof(float))) {
    fail(cudaErrorIllegalAddress, "cublasSscal_v2: x is not inside a device block");
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  for (int i = 0; i < n; ++i) x[static_cast<size_t>(i) * incx] *= *alpha;
  return CUBLAS_STATUS_SUCCESS;
}

const char* emu_status_string(cublasStatus_t s) { return cublas_status_name(s); }

// cuBLASLt is not emulated: a call says so instead of crashing.
template <typename F>
struct Unsupported;
template <typename... A>
struct Unsupported<cublasStatus_t (*)(A...)> {
  static cublasStatus_t call(A...) {
    fail(cudaErrorInvalidValue, "cuBLASLt is not emulated");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
};

}  // namespace

void fill_emulated_cublas(CublasApi* api) {
  api->cublasCreate_v2 = emu_create;
  api->cublasDestroy_v2 = emu_destroy;
  api->cublasSetStream_v2 = emu_set_stream;
  api->cublasSetMathMode = emu_set_math_mode;
  api->cublasSetWorkspace_v2 = emu_set_workspace;
  api->cublasGemmEx = emu_gemm;
  api->cublasGemmStridedBatchedEx = emu_gemm_strided_batched;
  api->cublasGetStatusString = emu_status_string;
  api->cublasSscal_v2 = emu_sscal;
#define DINO_EMU_UNSUPPORTED(name) api->name = Unsupported<decltype(api->name)>::call;
  DINO_EMU_UNSUPPORTED(cublasLtCreate)
  DINO_EMU_UNSUPPORTED(cublasLtDestroy)
  DINO_EMU_UNSUPPORTED(cublasLtMatmul)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulDescCreate)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulDescDestroy)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulDescSetAttribute)
  DINO_EMU_UNSUPPORTED(cublasLtMatrixLayoutCreate)
  DINO_EMU_UNSUPPORTED(cublasLtMatrixLayoutDestroy)
  DINO_EMU_UNSUPPORTED(cublasLtMatrixLayoutSetAttribute)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulPreferenceCreate)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulPreferenceDestroy)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulPreferenceSetAttribute)
  DINO_EMU_UNSUPPORTED(cublasLtMatmulAlgoGetHeuristic)
#undef DINO_EMU_UNSUPPORTED
  api->cublasLtGetVersion = nullptr;
  api->path = "the CUDA emulation's reference GEMM (no cuBLAS library)";
  api->lt_path = "";
  api->version = "emulated";
}

}  // namespace dino::cuda
