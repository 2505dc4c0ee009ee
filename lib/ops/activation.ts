// Activations: exact GELU, softmax and log-softmax over the last axis, with their gradients.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

// x * Phi(x), Phi the standard normal CDF: the erf form of torch.nn.GELU(), not the tanh approximation.
export const gelu = (x: Tensor): Tensor => runOp('gelu', [x])[0];
// Over the last axis. A row of only -inf gives NaN, as in PyTorch; -inf entries elsewhere give 0.
export const softmax = (x: Tensor): Tensor => runOp('softmax', [x])[0];
export const logSoftmax = (x: Tensor): Tensor => runOp('log_softmax', [x])[0];

registerGradient('gelu', ([dy], { inputs: [x] }) => runOp('gelu_backward', [dy!, x]));
// Both backward passes need only the output y, not x.
registerGradient('softmax', ([dy], { outputs: [y] }) => runOp('softmax_backward', [dy!, y]));
registerGradient('log_softmax', ([dy], { outputs: [y] }) => runOp('log_softmax_backward', [dy!, y]));
