// The CUDA runtime side of the engine: probing the machine once, raw device memory, and copies.
//
// cudart is linked statically, so this file also runs where there is no driver and no GPU: the probe
// then records why, every entry point returns that reason as a kUnsupported Status, and the CPU engine
// carries on. All work on a device goes to that device's one stream (see common.cuh); the host waits only
// where it needs a result (a copy into host memory).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common.cuh"
#include "cublas_loader.h"
#include "cuda_backend.h"

namespace dino::cuda {
namespace {

// Host <-> device copies go through pinned buffers in pieces of up to this many bytes, two pieces in
// flight, so the memcpy of one piece overlaps the DMA of the other.
constexpr size_t kStagingMaxHalf = size_t(64) << 20;
constexpr size_t kStagingMinHalf = size_t(1) << 20;

// Does nothing. Asking the runtime for its attributes tells whether our fatbinary holds code this GPU
// can run (a cubin for its architecture, or PTX it can compile), before any real kernel is launched.
__global__ void probe_kernel() {}

struct DeviceState {
  std::mutex init_mu;
  std::atomic<bool> ready{false};
  cudaStream_t stream = nullptr;

  // Host memory from Node (ArrayBuffers) is pageable. The driver copies pageable memory through its own
  // staging, but first waits for all queued work on the stream; our own pinned staging lets an upload
  // proceed while kernels are still running.
  std::mutex staging_mu;
  char* staging = nullptr;  // two halves of staging_half bytes
  size_t staging_half = 0;
  cudaEvent_t half_done[2] = {nullptr, nullptr};  // recorded after the last DMA touching each half
};

struct Runtime {
  CudaStatus status;
  // One per device. Never freed: at exit the static runtime may be torn down before our destructors
  // run, and the process is about to release it all anyway.
  DeviceState* devices = nullptr;
};

std::string cuda_version(int v) { return str(v / 1000, ".", v % 1000 / 10); }

// 1536 -> "1536 bytes", 3 << 20 -> "3.0 MiB", 5 << 30 -> "5.00 GiB"
std::string format_bytes(size_t bytes) {
  char buf[64];
  if (bytes >= (size_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  else if (bytes >= (size_t(1) << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(size_t(1) << 20));
  else
    std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  return buf;
}

// cudaGetDeviceCount's error codes are terse, and 35 ("driver version is insufficient") is also what a
// machine with no driver at all gets: tell the two apart.
std::string no_device_reason(cudaError_t err) {
  int driver = 0, runtime_version = 0;
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&runtime_version);
  std::string call = cuda_error(err, "cudaGetDeviceCount").message();
  if (err == cudaErrorInsufficientDriver) {
    if (driver == 0) return str("no NVIDIA driver found (", call, ")");
    return str("the NVIDIA driver supports CUDA up to ", cuda_version(driver), ", this build needs ",
               cuda_version(runtime_version), " (", call, ")");
  }
  if (err == cudaErrorNoDevice) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return str("no CUDA device found", visible ? str(" with CUDA_VISIBLE_DEVICES=", visible) : "", " (",
               call, ")");
  }
  return call;
}

// Makes device `index` current (which creates its context) and checks our kernels can run on it.
Status check_kernels(int index) {
  DINO_CUDA_CHECK(cudaSetDevice(index));
  cudaFuncAttributes attr;
  cudaError_t err = cudaFuncGetAttributes(&attr, probe_kernel);
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) {
    std::string call = cuda_error(err, "cudaFuncGetAttributes").message();
    return Status(Code::kUnsupported, str("this build has no code for this GPU (", call,
                                          "); rebuild with its architecture in CMAKE_CUDA_ARCHITECTURES"));
  }
  if (err != cudaSuccess) return cuda_error(err, "cudaFuncGetAttributes");
  return Status::OK();
}

void probe_machine(Runtime* rt) {
  CudaStatus& s = rt->status;
  s.compiled = true;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    s.reason = no_device_reason(err);
  } else if (count == 0) {
    s.reason = "no CUDA device found";
  } else {
    s.device_count = count;
    cudaDeviceProp p;
    err = cudaGetDeviceProperties(&p, 0);
    if (err != cudaSuccess) {
      s.reason = str("device 0 does not answer: ", cuda_error(err, "cudaGetDeviceProperties").message());
    } else {
      // "NVIDIA H200, sm_90, 139 GiB"
      std::string desc = str(p.name, ", sm_", p.major, p.minor, ", ", p.totalGlobalMem >> 30, " GiB");
      Status k = check_kernels(0);
      if (!k.ok()) {
        s.reason = str(desc, ": ", k.message());
      } else {
        int driver = 0, runtime_version = 0;
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime_version);
        s.usable = true;
        s.reason = str(desc, count > 1 ? str(" (device 0 of ", count, ")") : "", ", driver ",
                       cuda_version(driver), ", runtime ", cuda_version(runtime_version));
        rt->devices = new DeviceState[count];
      }
    }
  }
  // Loading cuBLAS costs a tenth of a second and 200 MB; where CUDA cannot be used, only say where it
  // would have been looked for.
  if (s.usable) {
    std::string why;
    if (const CublasApi* api = cublas_api(&why)) {
      s.cublas_loaded = true;
      s.cublas_path = api->path;
    } else {
      s.cublas_reason = why;
    }
  } else {
    s.cublas_reason = "not loaded, CUDA is not usable; " + cublas_search_report();
  }
}

Runtime& runtime() {
  static Runtime rt;
  static std::once_flag once;
  std::call_once(once, [] { probe_machine(&rt); });
  return rt;
}

Status check_device(int index) {
  const CudaStatus& s = runtime().status;
  if (!s.usable) return Status(Code::kUnsupported, str("cuda:", index, " is not available: ", s.reason));
  if (index < 0 || index >= s.device_count) {
    return Status(Code::kUnsupported, str("cuda:", index, " does not exist: this machine has ",
                                          s.device_count, " CUDA device", s.device_count == 1 ? "" : "s"));
  }
  return Status::OK();
}

Status init_device(int index, DeviceState* d) {
  if (index != 0) DINO_RETURN_IF_ERROR(check_kernels(index));  // device 0 was checked by the probe
  DINO_CUDA_CHECK(cudaSetDevice(index));
  // A blocking stream (the default flags): anything that still lands on the legacy default stream, from
  // us or a library, stays ordered with it.
  cudaStream_t stream = nullptr;
  DINO_CUDA_CHECK(cudaStreamCreate(&stream));
  for (cudaEvent_t& e : d->half_done) {
    cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    if (err != cudaSuccess) {
      Status s = cuda_error(err, "cudaEventCreateWithFlags");
      for (cudaEvent_t& made : d->half_done) {
        if (made) cudaEventDestroy(made);
        made = nullptr;
      }
      cudaStreamDestroy(stream);
      return s;
    }
  }
  d->stream = stream;
  return Status::OK();
}

// Grows the pinned staging so that each half holds min(bytes, kStagingMaxHalf).
Status ensure_staging(DeviceState* d, size_t bytes) {
  size_t want = kStagingMinHalf;
  while (want < bytes && want < kStagingMaxHalf) want <<= 1;
  if (d->staging_half >= want) return Status::OK();
  if (d->staging) {
    // DMAs may still be reading the old buffer.
    for (cudaEvent_t e : d->half_done) DINO_CUDA_CHECK(cudaEventSynchronize(e));
    DINO_CUDA_CHECK(cudaFreeHost(d->staging));
    d->staging = nullptr;
    d->staging_half = 0;
  }
  void* p = nullptr;
  DINO_CUDA_CHECK(cudaMallocHost(&p, 2 * want));
  d->staging = static_cast<char*>(p);
  d->staging_half = want;
  return Status::OK();
}

Status copy_to_device(int index, void* dst, const void* src, size_t bytes) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(index, &stream));
  DeviceState* d = &runtime().devices[index];
  std::lock_guard<std::mutex> lock(d->staging_mu);
  Status staged = ensure_staging(d, bytes);
  if (staged.code() == Code::kOutOfMemory) {
    // No pinned memory to be had: let the driver stage the pageable memory, at the price of waiting for
    // the stream first.
    DINO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
    return Status::OK();
  }
  DINO_RETURN_IF_ERROR(staged);
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  for (size_t off = 0, i = 0; off < bytes; ++i) {
    size_t n = std::min(d->staging_half, bytes - off);
    char* half = d->staging + (i & 1) * d->staging_half;
    DINO_CUDA_CHECK(cudaEventSynchronize(d->half_done[i & 1]));  // its last DMA has read it
    std::memcpy(half, from + off, n);
    DINO_CUDA_CHECK(cudaMemcpyAsync(to + off, half, n, cudaMemcpyHostToDevice, stream));
    DINO_CUDA_CHECK(cudaEventRecord(d->half_done[i & 1], stream));
    off += n;
  }
  // The caller's memory has been read; the device sees the data in stream order, no need to wait.
  return Status::OK();
}

Status copy_to_host(int index, void* dst, const void* src, size_t bytes) {
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(index, &stream));
  DeviceState* d = &runtime().devices[index];
  std::lock_guard<std::mutex> lock(d->staging_mu);
  Status staged = ensure_staging(d, bytes);
  if (staged.code() == Code::kOutOfMemory) {
    DINO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
    DINO_CUDA_CHECK(cudaStreamSynchronize(stream));
    return Status::OK();
  }
  DINO_RETURN_IF_ERROR(staged);
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  size_t half = d->staging_half;
  size_t pieces = static_cast<size_t>(ceil_div(static_cast<int64_t>(bytes), static_cast<int64_t>(half)));
  // Piece i goes through half i % 2: the DMA of piece i + 1 is queued before piece i is copied out.
  auto enqueue = [&](size_t i) -> Status {
    size_t off = i * half, n = std::min(half, bytes - off);
    char* into = d->staging + (i & 1) * half;
    DINO_CUDA_CHECK(cudaMemcpyAsync(into, from + off, n, cudaMemcpyDeviceToHost, stream));
    DINO_CUDA_CHECK(cudaEventRecord(d->half_done[i & 1], stream));
    return Status::OK();
  };
  DINO_RETURN_IF_ERROR(enqueue(0));
  for (size_t i = 0; i < pieces; ++i) {
    if (i + 1 < pieces) DINO_RETURN_IF_ERROR(enqueue(i + 1));
    // Also where errors of earlier kernels on this stream surface.
    DINO_CUDA_CHECK(cudaEventSynchronize(d->half_done[i & 1]));
    size_t off = i * half;
    std::memcpy(to + off, d->staging + (i & 1) * half, std::min(half, bytes - off));
  }
  return Status::OK();
}

Status copy_between_devices(void* dst, int dst_index, const void* src, int src_index, size_t bytes) {
  cudaStream_t dst_stream, src_stream;
  DINO_RETURN_IF_ERROR(use_device(dst_index, &dst_stream));
  if (dst_index == src_index) {
    DINO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, dst_stream));
    return Status::OK();
  }
  DINO_RETURN_IF_ERROR(use_device(src_index, &src_stream));
  // Two streams, so order them by hand: the destination block may still be used by work queued on its
  // own device (the allocator recycles blocks in stream order), and work queued there afterwards must see
  // the data. Rare (more than one GPU), so plain synchronisation is good enough.
  DINO_CUDA_CHECK(cudaStreamSynchronize(dst_stream));
  DINO_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_index, src, src_index, bytes, src_stream));
  DINO_CUDA_CHECK(cudaStreamSynchronize(src_stream));
  return Status::OK();
}

}  // namespace

Status use_device(int index, cudaStream_t* stream) {
  *stream = nullptr;
  DINO_RETURN_IF_ERROR(check_device(index));
  DeviceState* d = &runtime().devices[index];
  if (!d->ready.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(d->init_mu);
    if (!d->ready.load(std::memory_order_relaxed)) {
      // A failure is not remembered: it may be transient (memory for the context), so the next call retries.
      DINO_RETURN_IF_ERROR(init_device(index, d).with_context(str("cuda:", index)));
      d->ready.store(true, std::memory_order_release);
    }
  }
  DINO_CUDA_CHECK(cudaSetDevice(index));
  *stream = d->stream;
  return Status::OK();
}

cudaStream_t stream(int index) {
  cudaStream_t s = nullptr;
  return use_device(index, &s).ok() ? s : nullptr;
}

Status malloc(int index, size_t bytes, void** out) {
  *out = nullptr;
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(index, &stream));
  cudaError_t err = cudaMalloc(out, std::max<size_t>(bytes, 1));
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    *out = nullptr;
    return Status(Code::kOutOfMemory, str("cudaMalloc: out of memory on cuda:", index, " allocating ",
                                          format_bytes(bytes), " (", format_bytes(free_bytes), " free of ",
                                          format_bytes(total_bytes), ")"));
  }
  if (err != cudaSuccess) {
    *out = nullptr;
    return cuda_error(err, "cudaMalloc")
        .with_context(str("cuda:", index, " allocating ", format_bytes(bytes)));
  }
  return Status::OK();
}

void free(int index, void* ptr) {
  if (!ptr || !check_device(index).ok()) return;
  // cudaFree waits for the device to finish using the block. A failure has nowhere to go (this runs from
  // destructors, and at exit after the runtime is gone); it only clears the error so that it is not
  // blamed on the next launch.
  if (cudaSetDevice(index) != cudaSuccess || cudaFree(ptr) != cudaSuccess) cudaGetLastError();
}

Status memset_zero(int index, void* ptr, size_t bytes) {
  if (bytes == 0) return Status::OK();
  cudaStream_t stream;
  DINO_RETURN_IF_ERROR(use_device(index, &stream));
  DINO_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream));
  return Status::OK();
}

Status copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return Status::OK();
  bool to_gpu = dst_device.type == DeviceType::kCUDA, from_gpu = src_device.type == DeviceType::kCUDA;
  if (to_gpu && from_gpu) return copy_between_devices(dst, dst_device.index, src, src_device.index, bytes);
  if (to_gpu) return copy_to_device(dst_device.index, dst, src, bytes);
  if (from_gpu) return copy_to_host(src_device.index, dst, src, bytes);
  std::memcpy(dst, src, bytes);
  return Status::OK();
}

CudaStatus probe() { return runtime().status; }

}  // namespace dino::cuda
