// Matrix products: batched matmul with transposes, and the linear layer built on it.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';
import { add, reshape, sumTo } from './elementwise.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

// a (..., M, K) @ b (..., K, N) -> (..., M, N); transA / transB read a or b with its last two dims swapped.
// One operand may be 2-D and is then shared by every batch entry.
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  return runOp('matmul', [a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false })[0];
}

registerGradient('matmul', ([dy], { inputs: [a, b], attrs }) => {
  const ta = attrs.transA as boolean;
  const tb = attrs.transB as boolean;
  const g = dy!;
  // C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC; then undo the transposes.
  const da = ta ? (x: Tensor, y: Tensor) => matmul(y, x, { transA: tb, transB: true }) : (x: Tensor, y: Tensor) => matmul(x, y, { transB: !tb });
  const db = tb ? (x: Tensor, y: Tensor) => matmul(x, y, { transA: true, transB: ta }) : (x: Tensor, y: Tensor) => matmul(y, x, { transA: !ta });
  // An operand shared by the whole batch (2-D) gets the sum over the batch of its gradients.
  const gradA = sumTo(da(g, b), a.shape);
  if (b.rank === 2 && g.rank > 2 && !ta) {
    // x (B.., M, K) @ W: fold the batch into the rows, so dW is one GEMM rather than a batch and a sum.
    return [gradA, db(reshape(g, [-1, g.shape[g.rank - 1]]), reshape(a, [-1, a.shape[a.rank - 1]]))];
  }
  return [gradA, sumTo(db(g, a), b.shape)];
});

// x (..., in) @ weight (out, in)^T + bias (out): torch.nn.Linear with its weight layout, so state dicts
// map one to one.
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight, { transB: true });
  return bias === undefined ? y : add(y, bias);
}
