// Multi-head self-attention (non-causal) on the CPU, forward and backward, read in place from the
// output of the ViT's qkv Linear and written where the projection Linear reads it.
//   qkv (B, T, 3, H, hd): row t of batch b holds [q | k | v], each split head by head
//   out (B, T, H, hd), lse (B, H, T): the log-sum-exp of each scaled score row
// The products go through the blocked GEMM; the scores of a chunk of (b, h) pairs live in a scratch
// buffer only, so memory grows with the chunk, not with B. Backward recomputes the probabilities
// from q, k and lse instead of keeping them.
#pragma once
#include <cstdint>

namespace dino::cpu {

// Floats of scratch the forward (without probs) and the backward need.
int64_t attention_forward_scratch(int64_t B, int64_t T);
int64_t attention_backward_scratch(int64_t B, int64_t T);

// qkv (B, T, 3*H*hd) -> out (B, T, H*hd), lse (B, H, T); probs (B, H, T, T) is written when not null
// (then the scratch is not used and may be null).
void attention_forward(float* out, float* lse, float* probs, const float* qkv, float* scratch, int64_t B,
                       int64_t T, int64_t H, int64_t hd, float scale);

// dout, out (B, T, H*hd), qkv (B, T, 3*H*hd), lse (B, H, T) -> dqkv (B, T, 3*H*hd), every element written.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t H, int64_t hd, float scale);

}  // namespace dino::cpu
