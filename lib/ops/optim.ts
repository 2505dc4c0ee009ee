// Fused optimizer updates that write their tensors in place (AdamW, the teacher EMA, per-tensor gradient
// clipping) and the L2 norm. The in-place ops are not differentiable: call them outside valueAndGrads,
// on tensors no recorded computation still needs (the same Tensor objects see the new values).
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

export interface AdamWOptions {
  lr: number;
  weightDecay: number;
  // 1-based count of steps taken with this state, including this one (the bias corrections use it).
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

// One torch.optim.AdamW step on one tensor: updates param, expAvg and expAvgSq in place (all float32,
// one shape, four distinct tensors). beta1 0.9, beta2 0.999 and eps 1e-8 by default, as in PyTorch.
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, opts: AdamWOptions): void {
  runOp('adamw_step', [param, grad, expAvg, expAvgSq], {
    lr: opts.lr,
    weightDecay: opts.weightDecay,
    step: opts.step,
    beta1: opts.beta1 ?? 0.9,
    beta2: opts.beta2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
  });
}

// dst's values replaced by src's, in place (same shape, float32, distinct tensors): loading weights into
// parameters an optimizer already holds.
export function assign(dst: Tensor, src: Tensor): void {
  runOp('assign', [dst, src]);
}

// teacher = momentum * teacher + (1 - momentum) * student, in place (DINO's teacher update).
export function emaUpdate(teacher: Tensor, student: Tensor, momentum: number): void {
  runOp('ema_update', [teacher, student], { momentum });
}

// ||x||_2 as a 0-d tensor (accumulated in double); differentiable.
export const norm = (x: Tensor): Tensor => runOp('norm', [x])[0];

// DINO's per-tensor gradient clipping: grad is scaled in place by maxNorm / (||grad|| + 1e-6) when that
// is below 1. Returns the norm before clipping as a 0-d tensor, so that no device read is forced;
// call item() on it to log it.
export const clipGradNorm = (grad: Tensor, maxNorm: number): Tensor => runOp('clip_grad_norm', [grad], { maxNorm })[0];

registerGradient('norm', ([dy], { inputs: [x], outputs: [n] }) => [runOp('norm_backward', [x, n, dy!])[0]]);
