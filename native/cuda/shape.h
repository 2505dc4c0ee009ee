// Data movement on the GPU: range copies along one axis (concat, slice and its gradient) and
// permutations of the dimensions. The launchers mirror native/cpu/shape.h; all are exact copies.
#pragma once
#include <cstdint>
#include <vector>

#include "dino/status.h"

namespace dino::cuda {

// src (outer, src_len, inner)[:, src_start : src_start + len, :] -> dst (outer, dst_len, inner)[:, dst_start : dst_start + len, :]
Status copy_axis_range(int device, float* dst, int64_t dst_len, int64_t dst_start, const float* src,
                       int64_t src_len, int64_t src_start, int64_t len, int64_t outer, int64_t inner);

// dy (outer, len, inner) -> dx (outer, size, inner) = 0 except dx[:, start : start + len, :] = dy
Status slice_backward(int device, float* dx, const float* dy, int64_t outer, int64_t size, int64_t start,
                      int64_t len, int64_t inner);

// x (shape) -> out (shape[dims[0]], shape[dims[1]], ...), contiguous. Dims are merged as on the CPU;
// more than 8 dims left after that is refused.
Status permute(int device, float* out, const float* x, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& dims);

}  // namespace dino::cuda
