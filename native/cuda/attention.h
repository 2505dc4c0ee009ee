// Multi-head self-attention (non-causal) on a GPU, forward and backward, with the layouts and results
// of native/cpu/attention.h:
//   qkv (B, T, 3, H, hd): row t of batch b holds [q | k | v], each split head by head
//   out (B, T, H, hd), lse (B, H, T): the log-sum-exp of each scaled score row
// Unfused baseline on cuBLAS: the heads are first gathered into contiguous (B*H, T, hd) blocks so every
// product is one strided-batched GEMM over all (b, h) pairs; the score matrices exist for a chunk of
// pairs at a time, so their memory is bounded whatever B is. Backward recomputes the probabilities from
// q, k and lse. No atomics: results are bitwise reproducible.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dino/status.h"

namespace dino::cuda {

// (b, h) pairs whose T x T scores are held at once: up to 2^26 floats (256 MiB) per score buffer, evened
// out so the last chunk is not a sliver. Inline (as are the scratch sizes) because the ops size their
// scratch tensors with it even in a build without CUDA.
inline int64_t attention_chunk(int64_t B, int64_t T, int64_t H) {
  constexpr int64_t kScoreFloats = int64_t{1} << 26;
  const int64_t pairs = B * H;
  if (pairs <= 0) return 0;  // nothing to hold (and T alone may be too large to square)
  const int64_t per = std::max<int64_t>(T * T, 1);
  const int64_t cb = std::clamp<int64_t>(kScoreFloats / per, 1, pairs);
  const int64_t chunks = (pairs + cb - 1) / cb;
  return (pairs + chunks - 1) / chunks;
}

// Floats of scratch. Forward: q, k, v and o by head (4*B*T*H*hd), plus one chunk of scores unless they
// go straight to probs. Backward: q, k, v, dO, dq, dk, dv by head (7*B*T*H*hd), D = rowsum(dO * O)
// (B*H*T), and two chunks of scores (P and dS).
inline int64_t attention_forward_scratch(int64_t B, int64_t T, int64_t H, int64_t hd, bool with_probs) {
  return 4 * B * T * H * hd + (with_probs ? 0 : attention_chunk(B, T, H) * T * T);
}
inline int64_t attention_backward_scratch(int64_t B, int64_t T, int64_t H, int64_t hd) {
  return 7 * B * T * H * hd + B * H * T + 2 * attention_chunk(B, T, H) * T * T;
}

// qkv (B, T, 3*H*hd) -> out (B, T, H*hd), lse (B, H, T); probs (B, H, T, T) is written when not null.
// scratch: attention_forward_scratch(B, T, H, hd, probs != nullptr) floats.
Status attention_forward(int device, float* out, float* lse, float* probs, const float* qkv, float* scratch,
                         int64_t B, int64_t T, int64_t H, int64_t hd, float scale);

// dout, out (B, T, H*hd), qkv (B, T, 3*H*hd), lse (B, H, T) -> dqkv (B, T, 3*H*hd), every element written.
// scratch: attention_backward_scratch(B, T, H, hd) floats.
Status attention_backward(int device, float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, float* scratch, int64_t B, int64_t T, int64_t H, int64_t hd,
                          float scale);

}  // namespace dino::cuda
