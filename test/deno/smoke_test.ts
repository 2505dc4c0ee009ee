// Deno smoke test: the same library and the same addon under Deno 2 (`deno test -A test/deno`).
// The tap suite does not run under Deno, so this file uses Deno's own runner.
import { addon, ops, tensor, tidy, valueAndGrads } from '../../lib/index.ts';

declare const Deno: { test(name: string, fn: () => void): void };

function assert(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

function near(a: ArrayLike<number>, b: number[], tol: number): boolean {
  return a.length === b.length && b.every((v, i) => Math.abs(a[i] - v) <= tol);
}

Deno.test('the addon loads and reports its build', () => {
  const info = addon.buildInfo();
  assert(typeof info.version === 'string' && info.threads >= 1, 'buildInfo answers');
  assert(addon.opNames().includes('matmul'), 'ops are registered');
});

Deno.test('a forward and backward pass', () => {
  const before = addon.memoryStats('cpu').inUse;
  tidy(() => {
    // loss = sum((x @ w + b)^2): dL/dw = x^T 2y, dL/db = colsum(2y), checked against hand-computed values.
    const x = tensor([1, 2, 3, 4], [2, 2]);
    const w = tensor([0.5, -1, 1, 0], [2, 2]);
    const b = tensor([0.25, 1], [2]);
    const { value, grads } = valueAndGrads(() => {
      const y = ops.add(ops.matmul(x, w), b);
      return ops.sum(ops.mul(y, y));
    }, [w, b]);
    // y = [[2.75, 0], [5.75, -2]]
    assert(Math.abs(value.item() - (2.75 ** 2 + 5.75 ** 2 + 4)) < 1e-4, `loss ${value.item()}`);
    assert(near(grads[0]!.data(), [40, -12, 57, -16], 1e-4), `dL/dw ${grads[0]!.data()}`);
    assert(near(grads[1]!.data(), [17, -4], 1e-4), `dL/db ${grads[1]!.data()}`);
  });
  assert(addon.memoryStats('cpu').inUse === before, 'the scope freed everything');
});

Deno.test('errors arrive as exceptions', () => {
  let message = '';
  try {
    tidy(() => ops.add(tensor([1, 2, 3], [3]), tensor([1, 2], [2])));
  } catch (e) {
    message = String(e);
  }
  assert(/cannot be broadcast/.test(message), `got: ${message}`);
});
