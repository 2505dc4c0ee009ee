// Finite-difference gradient checks. The scalar checked is L = sum(f(xs) * w) for a fixed random w, so
// that every output element carries a different upstream gradient; analytic gradients come from the
// tape, numeric ones from central differences of L evaluated in double precision on the host.
import type { Test } from 'tap';
import { ops, tensor, tidy, valueAndGrads, type Tensor } from '../../lib/index.ts';
import { compare, type Tolerance } from './close.ts';
import { randomValues } from './random-values.ts';

export { randomValues };

export interface GradcheckOptions extends Partial<Tolerance> {
  eps?: number;
  // Which inputs to check (default all).
  check?: number[];
  seed?: number;
}

// inputs: host values and shapes; f builds the output from engine tensors of those inputs.
export function gradcheck(
  t: Test,
  what: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  opts: GradcheckOptions = {},
): void {
  const eps = opts.eps ?? 1e-2;
  const tol = { atol: opts.atol ?? 2e-3, rtol: opts.rtol ?? 2e-2 };
  const check = opts.check ?? inputs.map((_, i) => i);
  tidy(() => {
    const xs = inputs.map((x) => tensor(x.data, x.shape));
    const outShape = tidy(() => [...f(...xs).shape]);
    const wData = randomValues(outShape.reduce((a, b) => a * b, 1), opts.seed ?? 7);
    const w = tensor(wData, outShape);
    const { grads } = valueAndGrads(() => ops.sum(ops.mul(f(...xs), w)), check.map((i) => xs[i]));
    const loss = (vals: Float32Array[]): number =>
      tidy(() => {
        const y = f(...vals.map((v, i) => tensor(v, inputs[i].shape))).data();
        let s = 0;
        for (let k = 0; k < y.length; k++) s += y[k] * wData[k];
        return s;
      });
    check.forEach((idx, j) => {
      const base = inputs.map((x) => Float32Array.from(x.data));
      const numeric = new Float64Array(inputs[idx].data.length);
      for (let k = 0; k < numeric.length; k++) {
        const orig = base[idx][k];
        base[idx][k] = orig + eps;
        const lp = loss(base);
        base[idx][k] = orig - eps;
        const lm = loss(base);
        base[idx][k] = orig;
        numeric[k] = (lp - lm) / (2 * eps);
      }
      const g = grads[j];
      if (g === null) {
        t.fail(`${what}: input ${idx} got no gradient`);
        return;
      }
      const m = compare(g.data(), numeric, tol);
      if (m === null) t.pass(`${what}: gradient of input ${idx} matches finite differences`);
      else t.fail(`${what}: gradient of input ${idx}, element ${m.index}: analytic ${m.actual}, numeric ${m.expected} (atol ${tol.atol}, rtol ${tol.rtol})`);
    });
  });
}
