#include "dino/allocator.h"

#include <unistd.h>

#include <mutex>
#include <unordered_map>
#include <vector>

#include "dino/device.h"

namespace dino {
namespace {

// One pool per device (CPU, then one per CUDA index).
struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> blocks
  AllocatorStats stats;
};

Pool& pool_for(Device d) {
  static Pool pools[1 + kMaxCudaDevices];
  return pools[d.type == DeviceType::kCPU ? 0 : 1 + d.index];
}

size_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : SIZE_MAX;
}

void release_cached(Pool& p, Device d) {
  for (auto& [size, blocks] : p.free_lists) {
    for (void* b : blocks) device_free(d, b);
    p.stats.cached -= size * blocks.size();
  }
  p.free_lists.clear();
}

}  // namespace

// Classes: 512 bytes minimum, then eight steps per power of two, so a block wastes at most 12.5%.
size_t allocator_round(size_t bytes) {
  if (bytes <= 512) return 512;
  size_t pow2 = 1;
  while (pow2 < bytes) pow2 <<= 1;
  size_t step = pow2 / 16;
  return (bytes + step - 1) / step * step;
}

Status allocate(Device device, size_t bytes, void** out) {
  Pool& p = pool_for(device);
  size_t rounded = allocator_round(bytes);
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.stats.limit == 0 && device.type == DeviceType::kCPU) p.stats.limit = physical_memory();
  if (p.stats.limit != 0 && rounded > p.stats.limit - std::min(p.stats.limit, p.stats.in_use))
    return Status(Code::kOutOfMemory, str("cannot allocate ", bytes, " bytes: ", p.stats.in_use,
                                          " in use of a limit of ", p.stats.limit));
  p.stats.allocs++;
  auto it = p.free_lists.find(rounded);
  if (it != p.free_lists.end() && !it->second.empty()) {
    *out = it->second.back();
    it->second.pop_back();
    p.stats.cached -= rounded;
    p.stats.cache_hits++;
  } else {
    Status s = device_malloc(device, rounded, out);
    if (!s.ok() && s.code() == Code::kOutOfMemory) {
      // Cached blocks of other sizes may be what stands in the way: give them back and retry once.
      release_cached(p, device);
      s = device_malloc(device, rounded, out);
    }
    DINO_RETURN_IF_ERROR(s);
  }
  p.stats.in_use += rounded;
  if (p.stats.in_use > p.stats.peak) p.stats.peak = p.stats.in_use;
  return Status::OK();
}

void deallocate(Device device, void* ptr, size_t bytes) {
  if (!ptr) return;
  Pool& p = pool_for(device);
  size_t rounded = allocator_round(bytes);
  std::lock_guard<std::mutex> lock(p.mu);
  p.free_lists[rounded].push_back(ptr);
  p.stats.in_use -= rounded;
  p.stats.cached += rounded;
}

AllocatorStats allocator_stats(Device device) {
  Pool& p = pool_for(device);
  std::lock_guard<std::mutex> lock(p.mu);
  return p.stats;
}

void allocator_reset_peak(Device device) {
  Pool& p = pool_for(device);
  std::lock_guard<std::mutex> lock(p.mu);
  p.stats.peak = p.stats.in_use;
}

void allocator_empty_cache(Device device) {
  Pool& p = pool_for(device);
  std::lock_guard<std::mutex> lock(p.mu);
  release_cached(p, device);
}

}  // namespace dino
