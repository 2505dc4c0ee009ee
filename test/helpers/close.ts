// Comparisons with explicit tolerances: |actual - expected| <= atol + rtol * |expected| elementwise.
import type { Test } from 'tap';
import type { Tensor } from '../../lib/index.ts';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface Mismatch {
  index: number;
  actual: number;
  expected: number;
  maxAbsErr: number;
}

// The first element outside the tolerance (null when all are inside), plus the worst absolute error.
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): Mismatch | null {
  if (actual.length !== expected.length) return { index: -1, actual: actual.length, expected: expected.length, maxAbsErr: Infinity };
  let bad = -1;
  let maxAbsErr = 0;
  for (let i = 0; i < actual.length; i++) {
    // Equal infinities match (their difference would be NaN), as do two NaNs.
    if (actual[i] === expected[i] || (Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) continue;
    const err = Math.abs(actual[i] - expected[i]);
    const ok = err <= tol.atol + tol.rtol * Math.abs(expected[i]);
    if (!(err <= maxAbsErr)) maxAbsErr = err;
    if (!ok && bad < 0) bad = i;
  }
  return bad < 0 ? null : { index: bad, actual: actual[bad], expected: expected[bad], maxAbsErr };
}

export function assertClose(t: Test, actual: Tensor | ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, what: string): void {
  const a = 'data' in actual && typeof actual.data === 'function' ? (actual as Tensor).data() : (actual as ArrayLike<number>);
  const m = compare(a, expected, tol);
  if (m === null) t.pass(`${what} within atol ${tol.atol}, rtol ${tol.rtol}`);
  else if (m.index < 0) t.fail(`${what}: ${m.actual} values, expected ${m.expected}`);
  else t.fail(`${what}: element ${m.index} is ${m.actual}, expected ${m.expected} (max abs error ${m.maxAbsErr}; atol ${tol.atol}, rtol ${tol.rtol})`);
}

export function assertShape(t: Test, x: Tensor, shape: readonly number[], what: string): void {
  t.same([...x.shape], [...shape], `${what} has shape [${shape.join(', ')}]`);
}
