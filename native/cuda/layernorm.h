// Layer normalisation over the last axis of a (rows, C) matrix on the GPU: the launchers mirror
// native/cpu/layernorm.h (row statistics in double, the mean kept as hi + lo floats).
#pragma once
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// x (rows, C), weight (C), bias (C) -> y (rows, C), mean (rows), rstd (rows)
Status layernorm_forward(int device, float* y, float* mean, float* rstd, const float* x, const float* weight,
                         const float* bias, int64_t rows, int64_t C, float eps);

// Rows per chunk of the dweight / dbias reduction: each thread of the column kernel sums one column over
// a chunk in order; ~780 chunks for 100k rows, times C / 256 column blocks, fill the GPU.
constexpr int64_t kLayerNormChunkRows = 128;

// Scratch floats layernorm_backward needs for (rows, C), which the op allocates (launchers never do):
// rows floats for a per-row correction, rounded up to an even count so that what follows is 8-byte
// aligned, then (chunks, 2, C) doubles of partial sums, two floats each.
inline int64_t layernorm_backward_scratch(int64_t rows, int64_t C) {
  const int64_t chunks = (rows + kLayerNormChunkRows - 1) / kLayerNormChunkRows;
  return (rows + 1) / 2 * 2 + chunks * 2 * C * 2;
}

// dy (rows, C), x (rows, C), weight (C), mean (rows), rstd (rows) -> dx (rows, C), dweight (C), dbias (C).
// All three are written, not accumulated. dweight and dbias are summed over the rows in a fixed order
// (per-chunk partials in double, then the chunks in order), so runs are bitwise reproducible.
// scratch: layernorm_backward_scratch(rows, C) floats of device memory.
Status layernorm_backward(int device, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                          const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t C,
                          float* scratch);

}  // namespace dino::cuda
