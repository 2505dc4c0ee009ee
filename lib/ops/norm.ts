// Normalisations over the last axis: layer norm (the ViT's) and L2 normalisation (the DINO head's
// bottleneck, evaluation features), with their gradients.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

// x (..., C), weight (C), bias (C) -> (..., C): each row of x centred, divided by sqrt(var + eps) (biased
// variance), times weight plus bias, as torch.nn.LayerNorm(C, eps). DINO's ViT uses eps 1e-6.
export const layerNorm = (x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-6): Tensor =>
  runOp('layer_norm', [x, weight, bias], { eps })[0];

// x (..., C) -> x / max(||x||, eps) along the last axis, as torch.nn.functional.normalize(x, 2, -1, eps).
export const l2Normalize = (x: Tensor, eps = 1e-12): Tensor => runOp('l2_normalize', [x], { eps })[0];

// The ops' extra outputs (layer_norm's mean and rstd, l2_normalize's norm) are statistics saved for the
// backward pass; a gradient reaching them would be silently dropped, so refuse it.
function savedOnly(op: string, dys: readonly (Tensor | null)[]): Tensor {
  if (dys.slice(1).some((d) => d !== null)) throw new Error(`${op}: only the first output is differentiable; the others are saved statistics`);
  return dys[0]!;
}

registerGradient('layer_norm', (dys, { inputs: [x, weight], outputs: [, mean, rstd] }) =>
  runOp('layer_norm_backward', [savedOnly('layer_norm', dys), x, weight, mean, rstd]));
registerGradient('l2_normalize', (dys, { inputs: [x], outputs: [, norm], attrs }) =>
  runOp('l2_normalize_backward', [savedOnly('l2_normalize', dys), x, norm], { eps: attrs.eps }));
