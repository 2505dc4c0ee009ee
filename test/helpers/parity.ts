// Parity against a PyTorch fixture case: the forward output, and the gradient of each input under the
// same loss sum(out * w) that the fixture script backpropagated.
import type { Test } from 'tap';
import { ops, tidy, valueAndGrads, type Tensor } from '../../lib/index.ts';
import { assertClose, type Tolerance } from './close.ts';
import { fromFixture, type FixtureCase } from './fixtures.ts';

export function checkParity(
  t: Test,
  name: string,
  c: FixtureCase,
  inputNames: string[],
  f: (...xs: Tensor[]) => Tensor,
  tol: Tolerance,
  gradTol: Tolerance = tol,
): void {
  tidy(() => {
    const xs = inputNames.map((n) => fromFixture(c, n));
    const w = fromFixture(c, 'w');
    let out: Float32Array | null = null;
    const withGrad = inputNames.map((n, i) => [n, xs[i]] as const).filter(([n]) => c.tensors['grad_' + n] !== undefined);
    const { grads } = valueAndGrads(() => {
      const y = f(...xs);
      t.same([...y.shape], c.tensors.out.shape, `${name}: output shape`);
      out = y.data();
      return ops.sum(ops.mul(y, w));
    }, withGrad.map(([, x]) => x));
    assertClose(t, out!, c.tensors.out.data, tol, `${name}: output`);
    withGrad.forEach(([n], i) => {
      const g = grads[i];
      if (g === null) t.fail(`${name}: no gradient for ${n}`);
      else assertClose(t, g, c.tensors['grad_' + n].data, gradTol, `${name}: gradient of ${n}`);
    });
  });
}
