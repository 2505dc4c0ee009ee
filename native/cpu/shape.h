// Data movement on the CPU: copies of ranges along one axis (concat, slice and its gradient) and
// permutations of the dimensions. A tensor seen along an axis is (outer, len, inner): the dims before
// the axis, the axis itself and the dims after it, so every range copy is a set of contiguous runs.
#pragma once
#include <cstdint>
#include <vector>

namespace dino::cpu {

// dst (outer, dst_len, inner)[:, dst_start : dst_start + len, :] = src (outer, src_len, inner)[:, src_start : src_start + len, :]
void copy_axis_range(float* dst, int64_t dst_len, int64_t dst_start, const float* src, int64_t src_len,
                     int64_t src_start, int64_t len, int64_t outer, int64_t inner);

// dx (outer, size, inner) = 0 except dx[:, start : start + len, :] = dy (outer, len, inner)
void slice_backward(float* dx, const float* dy, int64_t outer, int64_t size, int64_t start, int64_t len,
                    int64_t inner);

// The permuted output, walked in order, reads x through (size, stride) pairs: size-1 dims are dropped,
// and an output dim whose x-stride times its size is the previous dim's x-stride continues it in
// memory, so the two merge: (1, g, g, D) -> (1, D, g, g) becomes a plain (g*g, D) transpose. Returns
// the element count. Shared with the CUDA permute, so both devices merge alike.
int64_t permute_runs(const std::vector<int64_t>& shape, const std::vector<int64_t>& dims, std::vector<int64_t>* size,
                     std::vector<int64_t>* stride);

// out = x (shape) with its dims reordered: out.shape[k] = shape[dims[k]]; out is contiguous.
void permute(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& dims);

}  // namespace dino::cpu
