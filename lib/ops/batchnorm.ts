// Batch normalisation over the rows of a (N, C) matrix (the DINO head's optional BatchNorm1d), with its
// gradient.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

export interface BatchNormOptions {
  // true: normalise with the batch's statistics and update the running ones; false: use the running ones.
  training: boolean;
  momentum?: number;
  eps?: number;
}

// x (N, C) -> (N, C), as torch.nn.functional.batch_norm with BatchNorm1d's defaults (momentum 0.1,
// eps 1e-5). In training the batch mean and biased variance normalise x (N >= 2), and, in place,
// runningMean and runningVar move towards the batch mean and the unbiased variance by momentum and
// numBatchesTracked (a 0-d tensor) grows by one. Not differentiable with respect to the running statistics.
export function batchNorm(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  numBatchesTracked: Tensor,
  opts: BatchNormOptions,
): Tensor {
  return runOp('batch_norm', [x, weight, bias, runningMean, runningVar, numBatchesTracked], {
    training: opts.training,
    momentum: opts.momentum ?? 0.1,
    eps: opts.eps ?? 1e-5,
  })[0];
}

// Outputs: y, then the mean and rstd that normalised it (saved for the backward pass).
registerGradient('batch_norm', ([dy, dmean, drstd], { inputs: [x, weight], outputs: [, mean, rstd], attrs }) => {
  if (dmean !== null || drstd !== null) throw new Error('batch_norm: only the first output is differentiable; the others are saved statistics');
  const [dx, dweight, dbias] = runOp('batch_norm_backward', [dy!, x, weight, mean, rstd], { training: attrs.training });
  return [dx, dweight, dbias, null, null, null];
});
