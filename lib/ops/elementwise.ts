// Elementwise arithmetic (NumPy broadcasting), reductions, reshape and casts, with their gradients.
import type { DType } from '../engine/native.ts';
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

export const add = (a: Tensor, b: Tensor): Tensor => runOp('add', [a, b])[0];
export const sub = (a: Tensor, b: Tensor): Tensor => runOp('sub', [a, b])[0];
export const mul = (a: Tensor, b: Tensor): Tensor => runOp('mul', [a, b])[0];
export const div = (a: Tensor, b: Tensor): Tensor => runOp('div', [a, b])[0];
// alpha * x + beta
export const affine = (x: Tensor, alpha: number, beta = 0): Tensor => runOp('affine', [x], { alpha, beta })[0];
export const scale = (x: Tensor, alpha: number): Tensor => affine(x, alpha, 0);
export const neg = (x: Tensor): Tensor => affine(x, -1, 0);
export const addScalar = (x: Tensor, value: number): Tensor => affine(x, 1, value);

// Over the given axes (all when omitted), keeping them as size-1 dimensions when keepdim.
export const sum = (x: Tensor, axes?: number[], keepdim = false): Tensor => runOp('sum', [x], { axes, keepdim })[0];
export const mean = (x: Tensor, axes?: number[], keepdim = false): Tensor => runOp('mean', [x], { axes, keepdim })[0];

export const broadcastTo = (x: Tensor, shape: readonly number[]): Tensor => runOp('broadcast_to', [x], { shape: [...shape] })[0];
// A view with another shape (one dimension may be -1).
export const reshape = (x: Tensor, shape: readonly number[]): Tensor => runOp('reshape', [x], { shape: [...shape] })[0];
export const cast = (x: Tensor, dtype: DType): Tensor => runOp('cast', [x], { dtype })[0];

// Sums a broadcast gradient back to the shape of the operand it came from.
export function sumTo(dy: Tensor, shape: readonly number[]): Tensor {
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return dy;
  return reshape(sum(dy, axes, true), shape);
}

// Inputs that want no gradient (a constant operand: a mask, a teacher's probabilities) get none, which
// saves a full-size product per backward pass.
registerGradient('add', ([dy], { inputs: [a, b], needsGrad: [ga, gb] }) => [ga ? sumTo(dy!, a.shape) : null, gb ? sumTo(dy!, b.shape) : null]);
registerGradient('sub', ([dy], { inputs: [a, b], needsGrad: [ga, gb] }) => [ga ? sumTo(dy!, a.shape) : null, gb ? sumTo(neg(dy!), b.shape) : null]);
registerGradient('mul', ([dy], { inputs: [a, b], needsGrad: [ga, gb] }) => [
  ga ? sumTo(mul(dy!, b), a.shape) : null,
  gb ? sumTo(mul(dy!, a), b.shape) : null,
]);
// d(a/b)/db = -(a/b)/b = -out/b
registerGradient('div', ([dy], { inputs: [a, b], outputs: [out], needsGrad: [ga, gb] }) => [
  ga ? sumTo(div(dy!, b), a.shape) : null,
  gb ? sumTo(neg(div(mul(dy!, out), b)), b.shape) : null,
]);
registerGradient('affine', ([dy], { attrs }) => [scale(dy!, attrs.alpha as number)]);
registerGradient('broadcast_to', ([dy], { inputs: [x] }) => [sumTo(dy!, x.shape)]);
registerGradient('reshape', ([dy], { inputs: [x] }) => [reshape(dy!, x.shape)]);
registerGradient('cast', ([dy], { inputs: [x] }) => [cast(dy!, x.dtype)]);

// The reduced axes as non-negative indices (all of them when none were given).
function reducedAxes(rank: number, axes: unknown): number[] {
  const list = (axes as number[] | undefined) ?? [];
  return list.length === 0 ? [...Array(rank).keys()] : list.map((a) => (a < 0 ? a + rank : a));
}

function reduceGrad(dy: Tensor, x: Tensor, axes: unknown, factor: number): Tensor {
  const reduced = new Set(reducedAxes(x.rank, axes));
  const keptShape = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const g = broadcastTo(reshape(dy, keptShape), x.shape);
  return factor === 1 ? g : scale(g, factor);
}

registerGradient('sum', ([dy], { inputs: [x], attrs }) => [reduceGrad(dy!, x, attrs.axes, 1)]);
registerGradient('mean', ([dy], { inputs: [x], attrs }) => {
  const count = reducedAxes(x.rank, attrs.axes).reduce((n, a) => n * x.shape[a], 1);
  return [reduceGrad(dy!, x, attrs.axes, 1 / count)];
});
