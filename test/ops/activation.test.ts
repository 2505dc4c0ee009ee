import t from 'tap';
import { ops, runOp, tensor, tidy, valueAndGrads } from '../../lib/index.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('activation');
const r = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

// GELU: the kernel's normal CDF is within 1e-7 of the exact one, PyTorch's float32 GELU within ~1.1e-6
// (measured against float64 on a grid of [-12, 12]); y = x Phi(x) reaches |y| = 10 here, where ulp is
// 9.5e-7. Observed 5.3e-7 on outputs, 2.7e-7 on gradients.
const geluTol = { atol: 2e-6, rtol: 1e-6 };
// Softmax: probabilities in [0, 1] from an exp within 1.4 ulp and a double row sum; observed 6.6e-8
// on outputs and 8.2e-8 on gradients (y (dy - sum(dy y)), |dy| ~ 1).
const softmaxTol = { atol: 2e-7, rtol: 1e-5 };
// Log-softmax: (x - max) - log(sum) is exact up to ulp(|y|), and |y| reaches 160 in the large case:
// observed 5.6e-6 there, 1.2e-6 at |y| ~ 10. Gradients dy - p sum(dy) carry the rounding of a
// 3001-term sum of |dy| ~ 1 on PyTorch's side: observed 4.8e-6.
const logSoftmaxOut = { atol: 2e-6, rtol: 1e-6 };
const logSoftmaxGrad = { atol: 1e-6, rtol: 1e-5 };

t.test('parity with PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    if (name.startsWith('gelu_')) checkParity(t, name, c, ['x'], ops.gelu, geluTol);
    else if (name.startsWith('softmax_')) checkParity(t, name, c, ['x'], ops.softmax, softmaxTol);
    else if (name.startsWith('log_softmax_')) checkParity(t, name, c, ['x'], ops.logSoftmax, logSoftmaxOut, logSoftmaxGrad);
    else t.fail(`no test for fixture case ${name}`);
  }
});

t.test('finite-difference gradients', async (t) => {
  // Step 1e-2 on inputs of size ~1-3: the truncation error eps^2 |f'''| / 6 is below 1e-4 for these
  // smooth functions (GELU's f''' peaks at ~1.2, softmax's at ~1), and float32 rounding of the loss adds
  // ~1e-6 / (2 eps) = 5e-5; both are well inside atol 2e-3, rtol 2e-2.
  gradcheck(t, 'gelu', ops.gelu, [r([2, 7], 1, -3, 3)]);
  gradcheck(t, 'softmax', ops.softmax, [r([3, 5], 2, -2, 2)]);
  gradcheck(t, 'softmax 3-D', ops.softmax, [r([2, 2, 3], 3, -2, 2)]);
  gradcheck(t, 'logSoftmax', ops.logSoftmax, [r([3, 5], 4, -2, 2)]);
  gradcheck(t, 'logSoftmax 3-D', ops.logSoftmax, [r([2, 2, 3], 5, -2, 2)]);
  // Through a composition: the gradient functions read the saved outputs, not the inputs.
  gradcheck(t, 'softmax(gelu(x))', (x) => ops.softmax(ops.gelu(x)), [r([2, 6], 6, -2, 2)]);
});

// Softmax and log-softmax of a row from float64 arithmetic on the same float32 inputs.
function reference(x: Float32Array, rows: number, n: number) {
  const p = new Float64Array(rows * n);
  const logp = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) {
    const row = x.subarray(i * n, (i + 1) * n);
    const m = row.reduce((a, b) => Math.max(a, b), -Infinity);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(row[j] - m);
    for (let j = 0; j < n; j++) {
      p[i * n + j] = Math.exp(row[j] - m) / s;
      logp[i * n + j] = row[j] - m - Math.log(s);
    }
  }
  return { p, logp };
}

t.test('rows of 65,536 (the DINO loss) against float64', async (t) => {
  tidy(() => {
    const n = 65536;
    const data = randomValues(2 * n, 7, -12, 12);
    const x = tensor(data, [2, n]);
    const { p, logp } = reference(data, 2, n);
    // Each probability is exp(x - max) with x - max rounded to float32 (up to ulp(24) / 2 = 9.5e-7 in the
    // exponent, as in PyTorch), an exp within 1.4 ulp, and two roundings of the double row sum: relative
    // 1.4e-6 at most.
    assertClose(t, ops.softmax(x), p, { atol: 0, rtol: 2e-6 }, 'softmax');
    // |log p| <= 35: ulp(32) = 3.8e-6 bounds the rounding of the final subtraction.
    assertClose(t, ops.logSoftmax(x), logp, { atol: 4e-6, rtol: 0 }, 'logSoftmax');
    // Backward: with y the exact output, dx = y (dy - sum(dy y)) and dy - p sum(dy).
    const dyData = randomValues(2 * n, 8);
    const dy = tensor(dyData, [2, n]);
    const expSm = new Float64Array(2 * n);
    const expLsm = new Float64Array(2 * n);
    for (let i = 0; i < 2; i++) {
      let dot = 0;
      let sum = 0;
      for (let j = i * n; j < (i + 1) * n; j++) {
        dot += dyData[j] * p[j];
        sum += dyData[j];
      }
      for (let j = i * n; j < (i + 1) * n; j++) {
        expSm[j] = p[j] * (dyData[j] - dot);
        expLsm[j] = dyData[j] - p[j] * sum;
      }
    }
    // The relative error of p (1.4e-6) carries over to dx = p (dy - dot); near dy = dot, where dx
    // vanishes, the rounding of dy - dot remains: ulp(2) / 2 = 1.2e-7 times p <= 4e-4 (the largest
    // probability of these rows) is 4.8e-11, and atol is twice that.
    assertClose(t, runOp('softmax_backward', [dy, ops.softmax(x)])[0], expSm, { atol: 1e-10, rtol: 2e-6 }, 'softmax backward');
    // dx = dy - p sum(dy): |p sum(dy)| is tiny next to |dy| ~ 1, so the error is ulp(|dy|).
    assertClose(t, runOp('log_softmax_backward', [dy, ops.logSoftmax(x)])[0], expLsm, { atol: 2e-7, rtol: 0 }, 'logSoftmax backward');
  });
});

t.test('non-finite and extreme inputs behave like PyTorch', async (t) => {
  tidy(() => {
    const inf = Infinity;
    // -inf entries get probability 0; a row of only -inf, or one holding +inf or NaN, is all NaN.
    const x = tensor([-inf, 0, Math.log(3), -inf, -inf, -inf, inf, 1, 2, NaN, 1, 2, 3e38, -3e38, 0], [5, 3]);
    const nan = NaN;
    const p = ops.softmax(x);
    assertClose(t, p, [0, 0.25, 0.75, nan, nan, nan, nan, nan, nan, nan, nan, nan, 1, 0, 0], { atol: 1e-7, rtol: 0 }, 'softmax');
    const lp = ops.logSoftmax(x).data();
    t.equal(lp[0], -inf, 'log_softmax of a -inf entry is -inf');
    assertClose(t, lp.slice(1, 3), [Math.log(0.25), Math.log(0.75)], { atol: 2e-7, rtol: 0 }, 'the finite entries of that row');
    t.ok(lp.slice(3, 12).every(Number.isNaN), 'rows of only -inf, or with +inf or NaN, are NaN');
    t.same([lp[12], lp[13]], [0, -inf], 'a spread of 6e38 overflows to -inf, not NaN');
    // The gradient at a -inf entry is 0 for softmax and dy for log-softmax (its probability is 0).
    const xf = tensor([-inf, 0, 1], [1, 3]);
    const w = tensor([0.5, -1, 2], [1, 3]);
    const gs = valueAndGrads(() => ops.sum(ops.mul(ops.softmax(xf), w)), [xf]).grads[0]!.data();
    t.equal(gs[0], 0, 'softmax gradient at -inf is 0');
    t.ok(gs.every(Number.isFinite), 'softmax gradient is finite');
    const dy = tensor([0.5, -1, 2], [1, 3]);
    const gl = runOp('log_softmax_backward', [dy, ops.logSoftmax(xf)])[0].data();
    t.equal(gl[0], 0.5, 'log_softmax gradient at -inf is dy');
    // GELU far out in both tails, and NaN.
    const g = ops.gelu(tensor([-1e4, 1e4, -40, 40, NaN], [5])).data();
    t.same([Math.abs(g[0]), g[1], Math.abs(g[2]), g[3]], [0, 1e4, 0, 40], 'gelu saturates to 0 and x');
    t.ok(Number.isNaN(g[4]), 'gelu(NaN) is NaN');
  });
});

t.test('bad arguments throw clear errors and leave the engine usable', async (t) => {
  tidy(() => {
    const x = tensor(randomValues(6, 9), [2, 3]);
    t.throws(() => ops.softmax(tensor([1], [])), /softmax.*x must have at least 1 dimension/);
    t.throws(() => ops.logSoftmax(tensor([1], [])), /log_softmax.*x must have at least 1 dimension/);
    t.throws(() => ops.gelu(ops.cast(x, 'float16')), /gelu.*x must be float32, got float16/);
    t.throws(() => runOp('gelu_backward', [tensor(randomValues(6, 1), [3, 2]), x]), /dy must have shape \[2, 3\], got \[3, 2\]/);
    t.throws(() => runOp('softmax_backward', [tensor(randomValues(3, 1), [3]), x]), /softmax_backward.*dy must have shape \[2, 3\], got \[3\]/);
    t.throws(() => runOp('log_softmax_backward', [x, tensor([1], [])]), /y must have at least 1 dimension/);
    t.throws(() => runOp('softmax', [x, x]), /expects 1 inputs, got 2/);
    assertClose(t, ops.softmax(tensor([0, 0], [2])), [0.5, 0.5], { atol: 0, rtol: 0 }, 'a valid call afterwards');
  });
});
