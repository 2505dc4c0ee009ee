// A size-bucketed caching allocator per device. Freed blocks go back to a free list of their size
// class instead of to the system, so the few hundred allocations of a training step cost a list pop.
#pragma once
#include <cstddef>

#include "dino/status.h"
#include "dino/tensor.h"

namespace dino {

struct AllocatorStats {
  size_t in_use = 0;     // bytes handed out (rounded to their size class)
  size_t cached = 0;     // bytes held in free lists
  size_t peak = 0;       // highest in_use since start or the last reset_peak
  size_t limit = 0;      // requests beyond this fail with kOutOfMemory (CPU: physical memory)
  size_t allocs = 0;     // requests served
  size_t cache_hits = 0; // of which from a free list
};

Status allocate(Device device, size_t bytes, void** out);
void deallocate(Device device, void* ptr, size_t bytes);
AllocatorStats allocator_stats(Device device);
void allocator_reset_peak(Device device);
// Returns every cached block to the system.
void allocator_empty_cache(Device device);
// The size class a request of `bytes` is served from.
size_t allocator_round(size_t bytes);

}  // namespace dino
