import t from 'tap';
import { ops, runOp, tensor, tidy, valueAndGrads, zeros, type Tensor } from '../../lib/index.ts';
import { fromFixture, loadFixtures } from '../helpers/fixtures.ts';
import { onOneAndSeveralThreads } from '../helpers/threads.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('batchnorm');
const r = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

// Column statistics are summed in double on both sides and each output is a few float32 roundings of
// values up to |y| ~ 7: observed 7.4e-7. The gradients subtract column means (dx) or sum over up to 20
// rows (dweight, dbias up to 16): observed 1.9e-6 on dbias, and 7.8e-6 on dx where it reaches 81 (the
// |mean| >> std case, against a float64 reference: PyTorch's float32 x * alpha + beta form cancels
// there). The running statistics are one double-precision update rounded to float32: observed 2.3e-7
// at 4.3 (the fixture's decimals are themselves within half an ulp of float32).
const outTol = { atol: 1e-6, rtol: 1e-6 };
const gradTol = { atol: 2e-6, rtol: 1e-5 };
const statTol = { atol: 1e-7, rtol: 1e-6 };

t.test('parity with PyTorch (output, gradients of x, weight and bias, running statistics)', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    tidy(() => {
      const training = c.attrs.training as boolean;
      const runningMean = fromFixture(c, 'running_mean');
      const runningVar = fromFixture(c, 'running_var');
      const count = zeros([]);
      const opts = { training, momentum: c.attrs.momentum as number, eps: c.attrs.eps as number };
      checkParity(t, name, c, ['x', 'weight', 'bias'], (x, w, b) => ops.batchNorm(x, w, b, runningMean, runningVar, count, opts), outTol, gradTol);
      assertClose(t, runningMean, c.tensors.running_mean_after.data, statTol, `${name}: running mean`);
      assertClose(t, runningVar, c.tensors.running_var_after.data, statTol, `${name}: running variance`);
      t.equal(count.item(), training ? 1 : 0, `${name}: num_batches_tracked ${training ? 'counts the batch' : 'is left alone'}`);
    });
  }
});

// Fresh running statistics for a call (the training ones are written in place).
function running(C: number): [Tensor, Tensor, Tensor] {
  return [tensor(randomValues(C, 40, -0.5, 0.5), [C]), tensor(randomValues(C, 41, 0.5, 1.5), [C]), zeros([])];
}

t.test('finite-difference gradients', async (t) => {
  // Central differences with step 1e-2 on O(1) inputs, as for the layer norm: the truncation error
  // (~eps^2 rstd^3 / 6) and the float32 rounding of the loss (~1e-6 / (2 eps)) are both well inside
  // atol 2e-3, rtol 2e-2.
  for (const training of [true, false]) {
    tidy(() => {
      const [rm, rv, n] = running(4);
      const f = (x: Tensor, w: Tensor, b: Tensor) => ops.batchNorm(x, w, b, rm, rv, n, { training });
      gradcheck(t, `batchNorm ${training ? 'training' : 'eval'}`, f, [r([5, 4], 1), r([4], 2, 0.5, 1.5), r([4], 3)]);
    });
  }
  tidy(() => {
    const [rm, rv, n] = running(3);
    gradcheck(t, 'batchNorm, two rows, eps 1e-3', (x, w, b) => ops.batchNorm(x, w, b, rm, rv, n, { training: true, eps: 1e-3 }), [r([2, 3], 4), r([3], 5, 0.5, 1.5), r([3], 6)]);
  });
});

t.test('the running statistics follow PyTorch over several steps', async (t) => {
  tidy(() => {
    // Three training steps from the module's initial state (mean 0, var 1): a hand-derived double
    // reference of r = 0.9 r + 0.1 batch, with the unbiased variance.
    const [N, C] = [4, 3];
    const rm = zeros([C]);
    const rv = tensor([1, 1, 1], [C]);
    const n = zeros([]);
    const w = tensor([1, 1, 1], [C]);
    const b = zeros([C]);
    const expMean = [0, 0, 0];
    const expVar = [1, 1, 1];
    for (let step = 0; step < 3; step++) {
      const x = randomValues(N * C, 50 + step, -2, 2);
      ops.batchNorm(tensor(x, [N, C]), w, b, rm, rv, n, { training: true });
      for (let c = 0; c < C; c++) {
        const col = [0, 1, 2, 3].map((i) => x[i * C + c]);
        const m = col.reduce((a, v) => a + v, 0) / N;
        const unbiased = col.reduce((a, v) => a + (v - m) ** 2, 0) / (N - 1);
        expMean[c] = 0.9 * expMean[c] + 0.1 * m;
        expVar[c] = 0.9 * expVar[c] + 0.1 * unbiased;
      }
    }
    assertClose(t, rm, expMean, { atol: 1e-7, rtol: 1e-6 }, 'running mean after three steps');
    assertClose(t, rv, expVar, { atol: 1e-7, rtol: 1e-6 }, 'running variance after three steps');
    t.equal(n.item(), 3, 'num_batches_tracked counts the steps');
  });
});

t.test('results do not depend on the thread count', async (t) => {
  tidy(() => {
    // 640 x 300: the DINO head's rows for 64 images x 10 crops, five column blocks, the parallel path.
    const [N, C] = [640, 300];
    const [x, w, b, dy] = [r([N, C], 10), r([C], 11), r([C], 12), r([N, C], 13)].map((v) => tensor(v.data, v.shape));
    const [one, several] = onOneAndSeveralThreads(() => {
      const [rm, rv, count] = running(C);
      const [y, mean, rstd] = runOp('batch_norm', [x, w, b, rm, rv, count], { training: true });
      const g = runOp('batch_norm_backward', [dy, x, w, mean, rstd], { training: true });
      return [y, mean, rstd, rm, rv, ...g].map((v) => v.data());
    });
    t.same(several, one, 'outputs, statistics and gradients bitwise equal with 1 and several threads');
  });
});

t.test('bad arguments throw clear errors and leave the engine usable', async (t) => {
  tidy(() => {
    const x = tensor(randomValues(6, 15), [2, 3]);
    const w = tensor([1, 1, 1], [3]);
    const b = zeros([3]);
    const [rm, rv, n] = running(3);
    const train = { training: true };
    t.throws(() => ops.batchNorm(tensor(randomValues(12, 1), [2, 3, 2]), w, b, rm, rv, n, train), /batch_norm.*x must be \(N, C\), got \[2, 3, 2\]/);
    t.throws(() => ops.batchNorm(tensor(randomValues(3, 1), [1, 3]), w, b, rm, rv, n, train), /expected more than 1 value per channel when training, got \[1, 3\]/);
    t.throws(() => ops.batchNorm(tensor([], [0, 3]), w, b, rm, rv, n, { training: false }), /at least one row and one column/);
    t.throws(() => ops.batchNorm(x, tensor([1, 1], [2]), b, rm, rv, n, train), /weight must have shape \[3\], got \[2\]/);
    t.throws(() => ops.batchNorm(x, w, b, rm, tensor([1], [1]), n, train), /running_var must have shape \[3\], got \[1\]/);
    t.throws(() => ops.batchNorm(x, w, b, rm, rv, zeros([1]), train), /num_batches_tracked must have shape \[\], got \[1\]/);
    t.throws(() => ops.batchNorm(x, w, b, rm, rv, n, { training: true, momentum: 1.5 }), /momentum must be in \[0, 1\], got 1.5/);
    t.throws(() => ops.batchNorm(x, w, b, rm, rv, n, { training: true, eps: -1 }), /attribute 'eps' must be a finite number >= 0/);
    t.throws(() => ops.batchNorm(ops.cast(x, 'float16'), w, b, rm, rv, n, train), /x must be float32, got float16/);
    t.throws(() => runOp('batch_norm', [x, w, b, rm, rv, n]), /missing attribute 'training'/);
    t.throws(() => ops.batchNorm(x, w, b, rm, rm, n, train), /running_mean and running_var share memory/);
    t.throws(() => ops.batchNorm(x, rm, b, rm, rv, n, train), /running_mean and weight share memory/);
    const [, mean, rstd] = runOp('batch_norm', [x, w, b, rm, rv, n], { training: true });
    t.throws(() => runOp('batch_norm_backward', [x, x, w, mean, rstd]), /missing attribute 'training'/);
    t.throws(() => runOp('batch_norm_backward', [tensor(randomValues(6, 2), [3, 2]), x, w, mean, rstd], train), /dy must have shape \[2, 3\], got \[3, 2\]/);
    t.throws(() => runOp('batch_norm_backward', [x, x, w, mean, zeros([2])], train), /rstd must have shape \[3\], got \[2\]/);
    // A gradient reaching a saved statistic is refused rather than dropped.
    t.throws(() => valueAndGrads(() => ops.sum(runOp('batch_norm', [x, w, b, rm, rv, n], train)[1]), [x]), /only the first output is differentiable/);
    // Still working after all of the above; evaluation with mean 0, var 1 - eps leaves x unchanged.
    const y = ops.batchNorm(x, w, b, zeros([3]), tensor([1, 1, 1].map((v) => v - 1e-5), [3]), zeros([]), { training: false });
    assertClose(t, y, x.data(), { atol: 1e-7, rtol: 1e-6 }, 'a valid call afterwards');
  });
});
