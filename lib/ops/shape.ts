// Concatenation, slicing along one axis and permutation of the dimensions, with their gradients.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

// A possibly negative axis as an index (out-of-range axes are left to the native op to report).
const axisIndex = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

// The inputs joined along axis (negative counts from the end); their other dims must agree.
export const concat = (xs: readonly Tensor[], axis: number): Tensor => runOp('concat', xs, { axis })[0];

// x[..., start:end, ...] along axis, with Python's rules: negative bounds count from the end, bounds
// past either end are clamped, and start >= end gives an empty axis. end defaults to the axis' end.
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  return runOp('slice', [x], { axis, start, end: end ?? x.shape[axisIndex(axis, x.rank)] })[0];
}

// A contiguous copy with y.shape[k] = x.shape[dims[k]].
export const permute = (x: Tensor, dims: readonly number[]): Tensor => runOp('permute', [x], { dims: [...dims] })[0];

registerGradient('concat', ([dy], { inputs, attrs }) => {
  const axis = axisIndex(attrs.axis as number, inputs[0].rank);
  let at = 0;
  return inputs.map((x) => {
    const start = at;
    at += x.shape[axis];
    return slice(dy!, axis, start, at);
  });
});

// The slice's start follows the forward op's rules, which slice_backward applies again.
registerGradient('slice', ([dy], { inputs: [x], attrs }) => {
  const size = x.shape[axisIndex(attrs.axis as number, x.rank)];
  return [runOp('slice_backward', [dy!], { axis: attrs.axis, start: attrs.start, size })[0]];
});

registerGradient('permute', ([dy], { attrs }) => {
  const dims = attrs.dims as number[];
  const inverse = new Array<number>(dims.length);
  dims.forEach((d, k) => {
    inverse[axisIndex(d, dims.length)] = k;
  });
  return [permute(dy!, inverse)];
});
