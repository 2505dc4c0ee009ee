import t from 'tap';
import { ops, runOp, tensor, tidy, valueAndGrads } from '../../lib/index.ts';
import { loadFixtures, fromFixture } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { onOneAndSeveralThreads } from '../helpers/threads.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('norm');
const r = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

// Layer norm. Outputs are xhat * weight + bias with |y| <= 5 here, computed from double row statistics:
// each side rounds a few times at ulp(4) = 4.8e-7; observed 7.2e-7. The gradients subtract row means
// (dx) or sum over up to 140 rows (dweight, dbias, |values| up to 27): observed 9.3e-7 on dx and
// 8.0e-6 on dweight (3e-7 relative). The |mean| >> std case has a float64 reference (PyTorch's float32
// is off by 2e-4 there); against it, observed 2.7e-7 on y and 4.2e-6 on dx (|dx| up to 89).
const lnOut = { atol: 1e-6, rtol: 1e-6 };
const lnGrad = { atol: 2e-6, rtol: 1e-5 };
// dx = rstd (g - mean(g) - xhat mean(g xhat)) is a difference of terms of size rstd |g|, so its rounding
// error is a few ulp of that, whatever the size of the result:
const lnGradCase: Record<string, { atol: number; rtol: number }> = {
  // C = 1: each row equals its mean, the exact dx is 0, and both sides return the rounding of
  // g - mean(g), up to ulp(|g| < 4) = 4.8e-7, times rstd = 1 / sqrt(1e-6) = 1000 (observed 2.4e-5).
  layer_norm_c1: { atol: 5e-4, rtol: 1e-5 },
  // variance ~ eps: rstd |g| reaches 570, ulp(570) = 6.1e-5 (observed 9.5e-5; PyTorch's own float32
  // result is 8.5e-5 from float64 there).
  layer_norm_eps: { atol: 2e-4, rtol: 1e-5 },
};
// L2 normalisation. y = x / n is one rounding of a double-precision norm: observed 8.2e-8 at |y| <= 1.
// dx = dy / n - x sum(dy x) / n^3 cancels along x, leaving rounding of order ulp(|dy| / n): observed
// 1.7e-7; in the eps branch dx = dy / eps reaches 1e12 and is checked relatively (observed 3.3e-7).
const l2Out = { atol: 1e-7, rtol: 1e-6 };
const l2Grad = { atol: 1e-6, rtol: 1e-5 };

t.test('parity with PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    if (name.startsWith('layer_norm')) {
      const eps = c.attrs.eps as number | undefined;
      checkParity(t, name, c, ['x', 'weight', 'bias'], (x, w, b) => ops.layerNorm(x, w, b, eps), lnOut, lnGradCase[name] ?? lnGrad);
    } else if (name.startsWith('l2_normalize')) {
      const eps = c.attrs.eps as number | undefined;
      checkParity(t, name, c, ['x'], (x) => ops.l2Normalize(x, eps), l2Out, l2Grad);
    } else t.fail(`no test for fixture case ${name}`);
  }
});

t.test('saved statistics', async (t) => {
  tidy(() => {
    const c = cases.layer_norm_3d;
    const x = fromFixture(c, 'x');
    const [, mean, rstd] = runOp('layer_norm', [x, fromFixture(c, 'weight'), fromFixture(c, 'bias')], { eps: 1e-6 });
    t.same([...mean.shape], [6], 'mean has one value per row');
    t.same([...rstd.shape], [6], 'rstd has one value per row');
    const xs = c.tensors.x.data;
    const expMean: number[] = [];
    const expRstd: number[] = [];
    for (let i = 0; i < 6; i++) {
      const row = xs.slice(i * 5, i * 5 + 5);
      const m = row.reduce((a, b) => a + b, 0) / 5;
      expMean.push(m);
      expRstd.push(1 / Math.sqrt(row.reduce((a, b) => a + (b - m) ** 2, 0) / 5 + 1e-6));
    }
    assertClose(t, mean, expMean, { atol: 1e-7, rtol: 1e-6 }, 'mean (biased statistics, double reference)');
    assertClose(t, rstd, expRstd, { atol: 0, rtol: 1e-6 }, 'rstd');
    const [, norm] = runOp('l2_normalize', [tensor([3, 4, 0, 0, 1e-14, 0], [3, 2])]);
    assertClose(t, norm, [5, 0, 1e-14], { atol: 0, rtol: 1e-6 }, 'l2_normalize returns the unclamped norms');
  });
});

t.test('finite-difference gradients', async (t) => {
  // Central differences with step 1e-2 on O(1) inputs: the truncation error is ~eps^2 |f'''| / 6, about
  // 1e-4 for layer norm rows whose std is ~0.5 (f''' ~ rstd^3), and float32 rounding of the loss adds
  // ~1e-6 / (2 eps) = 5e-5; both are well inside atol 2e-3, rtol 2e-2.
  gradcheck(t, 'layerNorm 2-D', (x, w, b) => ops.layerNorm(x, w, b), [r([3, 5], 1), r([5], 2, 0.5, 1.5), r([5], 3)]);
  gradcheck(t, 'layerNorm 3-D', (x, w, b) => ops.layerNorm(x, w, b, 1e-5), [r([2, 3, 4], 4), r([4], 5, 0.5, 1.5), r([4], 6)]);
  gradcheck(t, 'l2Normalize', (x) => ops.l2Normalize(x), [r([3, 4], 7)]);
  gradcheck(t, 'l2Normalize 3-D', (x) => ops.l2Normalize(x), [r([2, 2, 5], 8)]);
  // Every row's norm (< 2) is below eps = 10: y = x / 10 is linear and the differences are exact.
  gradcheck(t, 'l2Normalize, eps branch', (x) => ops.l2Normalize(x, 10), [r([2, 4], 9)]);
  // Rows far on either side of eps = 0.5 (norms ~0.1 and ~2.5), so no difference straddles the kink.
  const mixed = Float32Array.from([0.05, -0.04, 0.07, 0.02, 1.5, -1.2, 0.9, -1.4]);
  gradcheck(t, 'l2Normalize, both branches', (x) => ops.l2Normalize(x, 0.5), [{ data: mixed, shape: [2, 4] }]);
});

t.test('dweight and dbias do not depend on the thread count', async (t) => {
  tidy(() => {
    // 300 rows: five blocks of the row reduction, and enough work for the parallel path.
    const [x, w, b, dy] = [r([300, 128], 10), r([128], 11), r([128], 12), r([300, 128], 13)].map((v) => tensor(v.data, v.shape));
    const [, mean, rstd] = runOp('layer_norm', [x, w, b]);
    const [one, several] = onOneAndSeveralThreads(() => runOp('layer_norm_backward', [dy, x, w, mean, rstd]).map((g) => g.data()));
    t.same(several, one, 'bitwise equal with 1 and several threads');
  });
});

t.test('bad arguments throw clear errors and leave the engine usable', async (t) => {
  tidy(() => {
    const x = tensor(randomValues(6, 15), [2, 3]);
    const w = tensor([1, 1, 1], [3]);
    const b = tensor([0, 0, 0], [3]);
    t.throws(() => ops.layerNorm(x, tensor([1, 1], [2]), b), /layer_norm.*weight must have shape \[3\], got \[2\]/);
    t.throws(() => ops.layerNorm(x, w, tensor([0, 0, 0], [1, 3])), /bias must have shape \[3\], got \[1, 3\]/);
    t.throws(() => ops.layerNorm(tensor([1], []), tensor([1], [1]), tensor([0], [1])), /x must have at least 1 dimension/);
    t.throws(() => ops.layerNorm(tensor([], [2, 0]), tensor([], [0]), tensor([], [0])), /normalised \(last\) dimension of x is empty/);
    t.throws(() => ops.layerNorm(x, w, b, -1e-5), /attribute 'eps' must be a finite number >= 0, got -1e-05/);
    t.throws(() => ops.layerNorm(x, w, b, NaN), /attribute 'eps' must be a finite number >= 0/);
    t.throws(() => ops.layerNorm(ops.cast(x, 'bfloat16'), w, b), /x must be float32, got bfloat16/);
    t.throws(() => runOp('layer_norm', [x, w]), /expects 3 inputs, got 2/);
    const [, mean, rstd] = runOp('layer_norm', [x, w, b]);
    t.throws(() => runOp('layer_norm_backward', [x, x, w, rstd, tensor([1, 1, 1], [3])]), /rstd must have shape \[2\], got \[3\]/);
    t.throws(() => runOp('layer_norm_backward', [tensor(randomValues(6, 1), [3, 2]), x, w, mean, rstd]), /dy must have shape \[2, 3\], got \[3, 2\]/);
    t.throws(() => ops.l2Normalize(x, -1), /l2_normalize.*attribute 'eps' must be a finite number >= 0, got -1/);
    t.throws(() => ops.l2Normalize(tensor([2], [])), /x must have at least 1 dimension/);
    const [, norm] = runOp('l2_normalize', [x]);
    t.throws(() => runOp('l2_normalize_backward', [x, x, tensor([1, 1, 1], [3])]), /norm must have shape \[2\], got \[3\]/);
    t.throws(() => runOp('l2_normalize_backward', [x, x, norm], { eps: 'small' }), /attribute 'eps' must be a number/);
    // A gradient reaching a saved statistic is refused rather than dropped.
    t.throws(() => valueAndGrads(() => ops.sum(runOp('layer_norm', [x, w, b])[1]), [x]), /only the first output is differentiable/);
    // Still working after all of the above.
    assertClose(t, ops.l2Normalize(tensor([3, 4], [1, 2])), [0.6, 0.8], { atol: 1e-7, rtol: 0 }, 'a valid call afterwards');
  });
});
