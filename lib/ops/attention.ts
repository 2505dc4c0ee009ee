// Multi-head self-attention on the output of the qkv Linear, with its gradient.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

export interface AttentionOptions {
  // Multiplies q k^T before the softmax; head_dim^-0.5 when omitted.
  scale?: number;
}

// qkv (B, T, 3*D) laid out (B, T, 3, H, hd) as the qkv Linear of a ViT writes it -> (B, T, D) laid out
// (B, T, H, hd), ready for the projection Linear: softmax(q k^T * scale) v for each head, non-causal.
export function attention(qkv: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  return runOp('attention', [qkv], { heads, scale: opts.scale })[0];
}

// The same, plus the attention probabilities (B, H, T, T) (attention maps; no gradient flows through them).
export function attentionWithProbs(qkv: Tensor, heads: number, opts: AttentionOptions = {}): { out: Tensor; probs: Tensor } {
  const [out, , probs] = runOp('attention', [qkv], { heads, scale: opts.scale, returnProbs: true });
  return { out, probs };
}

// Outputs: out, lse (saved for the backward) and, when asked for, probs.
registerGradient('attention', ([dout, dlse, dprobs], { inputs: [qkv], outputs: [out, lse], attrs }) => {
  if (dlse !== null || (dprobs ?? null) !== null) {
    throw new Error('attention: gradients flow only through the output, not through the log-sum-exp or the probabilities');
  }
  return [runOp('attention_backward', [dout!, qkv, out, lse], { heads: attrs.heads, scale: attrs.scale })[0]];
});
