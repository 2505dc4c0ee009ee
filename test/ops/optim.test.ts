import t, { type Test } from 'tap';
import { ops, runOp, tensor, tidy, zeros, type Tensor } from '../../lib/index.ts';
import { fromFixture, loadFixtures, type FixtureCase } from '../helpers/fixtures.ts';
import { assertClose, type Tolerance } from '../helpers/close.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';

const cases = loadFixtures('optim');
const f = Math.fround;

// AdamW: PyTorch's lerp and addcmul use fused multiply-adds, the engine rounds twice, so exp_avg and
// exp_avg_sq may differ by an ulp; through sqrt and the division that moves the update (about lr in
// size) by ~1e-6 of itself, far below an ulp of the parameter. After five steps the parameter may still
// be an ulp or two from PyTorch's: 2.4e-7 relative is two float32 ulps, atol covers values near 0.
const adamwTol: Tolerance = { atol: 1e-9, rtol: 2.4e-7 };
// exp_avg = m + (1 - beta1) * (g - m) may cancel, so its rounding differences are ulps of its inputs,
// not of the result: each element is allowed 2 ulps (2.4e-7 relative) of max(|m_prev|, |g|).
// exp_avg_sq sums non-negative terms, so there the bound is 4 ulps of the result itself.
const expAvgUlps = 2.4e-7;
const expAvgSqTol: Tolerance = { atol: 0, rtol: 4.8e-7 };
// The norm: PyTorch sums squares in float32, the engine in double, so PyTorch's result is the one that
// is a few ulps off (for a few thousand elements); the clipped gradient inherits the norm's error.
const normTol: Tolerance = { atol: 0, rtol: 1e-6 };
// EMA and the unclipped gradient go through the same float operations as PyTorch: bit-identical.
const exact: Tolerance = { atol: 0, rtol: 0 };

const asF32 = (xs: number[]): number[] => Array.from(Float32Array.from(xs));

function healthy(t: Test): void {
  tidy(() => {
    const x = tensor([3, 4], [2]);
    t.equal(ops.norm(x).item(), 5, 'the engine still works');
  });
}

// The largest |actual - expected| over a comparison, for the messages.
function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

t.test('AdamW matches torch.optim.AdamW step by step', async (t) => {
  for (const [name, c] of Object.entries(cases).filter(([n]) => n.startsWith('adamw_'))) {
    tidy(() => {
      const p = fromFixture(c, 'param');
      const m = zeros(p.shape);
      const v = zeros(p.shape);
      const flat = ops.reshape(p, [-1]); // a view: shares p's storage
      let worst = 0;
      for (let k = 1; k <= 5; k++) {
        const mPrev = k === 1 ? new Array<number>(p.size).fill(0) : c.tensors[`exp_avg${k - 1}`].data;
        const grad = c.tensors[`grad${k}`].data;
        ops.adamwStep(p, fromFixture(c, `grad${k}`), m, v, {
          lr: c.attrs.lr[k - 1],
          weightDecay: c.attrs.weightDecay[k - 1],
          step: k,
          beta1: c.attrs.beta1,
          beta2: c.attrs.beta2,
          eps: c.attrs.eps,
        });
        const want = c.tensors[`param${k}`].data;
        assertClose(t, p, want, adamwTol, `${name} step ${k}: param`);
        const md = m.data();
        const mWant = c.tensors[`exp_avg${k}`].data;
        const bad = mWant.findIndex((w, i) => !(Math.abs(md[i] - w) <= expAvgUlps * Math.max(Math.abs(mPrev[i]), Math.abs(grad[i]))));
        t.equal(bad, -1, `${name} step ${k}: exp_avg within ${expAvgUlps} of its inputs` + (bad < 0 ? '' : ` (element ${bad}: ${md[bad]} vs ${mWant[bad]})`));
        assertClose(t, v, c.tensors[`exp_avg_sq${k}`].data, expAvgSqTol, `${name} step ${k}: exp_avg_sq`);
        worst = Math.max(worst, maxErr(p.data(), asF32(want)));
      }
      t.same([...flat.data()], [...p.data()], `${name}: a view of the parameter sees the update (in place)`);
      t.comment(`${name}: max |param - torch| over 5 steps ${worst.toExponential(2)}`);
    });
  }
});

// The kernel against a host emulation of the same float32 arithmetic (Math.fround after each operation
// is exactly float32 rounding), on a tensor large enough for the multi-threaded path: bit-identical.
t.test('AdamW is the documented float32 arithmetic, in parallel too', async (t) => {
  const n = 50_000;
  const hp = { lr: 2e-3, weightDecay: 0.04, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const P = Float32Array.from(randomValues(n, 21));
  const M = new Float32Array(n);
  const V = new Float32Array(n);
  tidy(() => {
    const p = tensor(P, [n]);
    const m = zeros([n]);
    const v = zeros([n]);
    for (let step = 1; step <= 3; step++) {
      const G = randomValues(n, 30 + step, -step, step);
      ops.adamwStep(p, tensor(G, [n]), m, v, { ...hp, step });
      const decay = f(1 - hp.lr * hp.weightDecay), w1 = f(1 - hp.beta1), b2 = f(hp.beta2), w2 = f(1 - hp.beta2);
      const bc2Sqrt = f(Math.sqrt(1 - hp.beta2 ** step)), eps = f(hp.eps), negStep = f(-(hp.lr / (1 - hp.beta1 ** step)));
      for (let i = 0; i < n; i++) {
        const g = G[i];
        M[i] = f(M[i] + f(w1 * f(g - M[i])));
        V[i] = f(f(V[i] * b2) + f(f(w2 * g) * g));
        const denom = f(f(f(Math.sqrt(V[i])) / bc2Sqrt) + eps);
        P[i] = f(f(P[i] * decay) + f(f(negStep * M[i]) / denom));
      }
      assertClose(t, p, P, exact, `step ${step}: param`);
      assertClose(t, m, M, exact, `step ${step}: exp_avg`);
      assertClose(t, v, V, exact, `step ${step}: exp_avg_sq`);
    }
  });
});

t.test('EMA teacher update', async (t) => {
  for (const [name, c] of Object.entries(cases).filter(([n]) => n.startsWith('ema_'))) {
    tidy(() => {
      const teacher = fromFixture(c, 'teacher');
      const student = fromFixture(c, 'student');
      const before = student.data();
      ops.emaUpdate(teacher, student, c.attrs.momentum);
      assertClose(t, teacher, asF32(c.tensors.out.data), exact, `${name} (momentum ${c.attrs.momentum})`);
      t.same([...student.data()], [...before], `${name}: the student is not touched`);
    });
  }
  tidy(() => {
    // Large enough for the parallel path; the same float operations on the host.
    const n = 40_000;
    const T = randomValues(n, 41);
    const S = randomValues(n, 42);
    const teacher = tensor(T, [n]);
    ops.emaUpdate(teacher, tensor(S, [n]), 0.996);
    const m = f(0.996), w = f(1 - 0.996);
    assertClose(t, teacher, T.map((x, i) => f(f(x * m) + f(w * S[i]))), exact, 'large tensor, against the host formula');
  });
});

t.test("per-tensor clipping as DINO's clip_gradients", async (t) => {
  for (const name of ['clip_above', 'clip_below']) {
    const c: FixtureCase = cases[name];
    tidy(() => {
      const g = fromFixture(c, 'grad');
      const norm = ops.clipGradNorm(g, c.attrs.maxNorm);
      t.same(norm.shape, [], `${name}: the norm is a 0-d tensor`);
      assertClose(t, [norm.item()], c.tensors.norm.data, normTol, `${name}: norm before clipping`);
      const want = c.tensors.out.data;
      if (name === 'clip_above') {
        assertClose(t, g, want, normTol, `${name}: gradient clipped in place`);
        assertClose(t, [ops.norm(g).item()], [3], { atol: 0, rtol: 1e-6 }, `${name}: clipped norm is maxNorm`);
      } else {
        assertClose(t, g, asF32(want), exact, `${name}: gradient unchanged`);
      }
      t.comment(`${name}: |norm - torch| ${Math.abs(norm.item() - f(c.tensors.norm.data[0])).toExponential(2)}, max |grad - torch| ${maxErr(g.data(), asF32(want)).toExponential(2)}`);
    });
  }
});

t.test('norm: parity with torch.linalg.vector_norm and gradients', async (t) => {
  for (const [name, c] of Object.entries(cases).filter(([n]) => n.startsWith('norm_'))) {
    checkParity(t, name, c, ['x'], ops.norm, normTol);
  }
  tidy(() => {
    // Parallel reduction (above the threshold) against a double-precision host sum.
    const x = randomValues(100_000, 51);
    const want = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
    assertClose(t, [ops.norm(tensor(x, [100, 1000])).item()], [want], { atol: 0, rtol: 6e-8 }, 'large tensor: within rounding of the exact norm');
  });
  gradcheck(t, 'norm', ops.norm, [{ data: randomValues(12, 52), shape: [3, 4] }]);
});

t.test('bad input gives clear errors and changes nothing', async (t) => {
  tidy(() => {
    const p = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const g = tensor([1, 1, 1, 1, 1, 1], [2, 3]);
    const m = zeros([2, 3]);
    const v = zeros([2, 3]);
    const opts = { lr: 1e-3, weightDecay: 0.04, step: 1 };
    t.throws(() => ops.adamwStep(p, zeros([3, 2]), m, v, opts), {
      message: /adamw_step\(param\[2, 3\] float32 cpu, grad\[3, 2\] float32 cpu, .*\): grad must have shape \[2, 3\], got \[3, 2\]/,
      code: 'ERR_DINO_SHAPE_MISMATCH',
    });
    t.throws(() => ops.adamwStep(p, g, ops.cast(m, 'bfloat16'), v, opts), { message: /exp_avg must be float32, got bfloat16/, code: 'ERR_DINO_DTYPE_MISMATCH' });
    t.throws(() => ops.adamwStep(p, g, p, v, opts), /exp_avg and param share memory: an in-place update needs distinct tensors/);
    t.throws(() => ops.adamwStep(p, g, m, m, opts), /exp_avg_sq and exp_avg share memory/);
    t.throws(() => ops.adamwStep(p, g, m, v, { ...opts, step: 0 }), /step counts from 1, got 0/);
    t.throws(() => ops.adamwStep(p, g, m, v, { ...opts, beta1: 1 }), /beta1 must be in \[0, 1\), got 1/);
    t.throws(() => ops.adamwStep(p, g, m, v, { ...opts, lr: NaN }), /attribute 'lr' must be finite/);
    t.throws(() => runOp('adamw_step', [p, g, m, v], { lr: 1e-3, step: 1 }), /missing attribute 'weightDecay'/);
    t.throws(() => ops.emaUpdate(p, ops.reshape(p, [2, 3]), 0.996), /student and teacher share memory/);
    t.throws(() => ops.emaUpdate(p, zeros([6]), 0.996), /student must have shape \[2, 3\], got \[6\]/);
    t.throws(() => ops.emaUpdate(p, g, 1.5), /momentum must be in \[0, 1\], got 1.5/);
    t.throws(() => ops.clipGradNorm(g, 0), /maxNorm must be finite and > 0, got 0/);
    t.throws(() => ops.norm(ops.cast(g, 'float16')), /x must be float32, got float16/);
    t.same([...p.data()], [1, 2, 3, 4, 5, 6], 'a refused update leaves the parameter as it was');
    t.same([...m.data(), ...v.data(), ...g.data()], [...new Array(12).fill(0), ...new Array(6).fill(1)], 'and the state and gradient too');
  });
  healthy(t);
});

t.test('in-place ops return nothing and are not differentiable', async (t) => {
  tidy(() => {
    const x: Tensor = tensor([1, 2], [2]);
    t.same(runOp('ema_update', [x, tensor([3, 4], [2])], { momentum: 0.5 }), [], 'ema_update has no outputs');
    t.same([...x.data()], [2, 3], 'and updated its target');
  });
});

t.test('assign copies values into an existing tensor in place', async (t) => {
  tidy(() => {
    const dst = tensor([1, 2, 3, 4], [2, 2]);
    const view = ops.reshape(dst, [4]);
    ops.assign(dst, tensor([NaN, -0, 5, Infinity], [2, 2]));
    const v = view.data();
    t.ok(Number.isNaN(v[0]) && Object.is(v[1], -0) && v[2] === 5 && v[3] === Infinity, 'every bit pattern copied, seen through a view');
    t.throws(() => ops.assign(dst, tensor([1, 2], [2])), /src must have shape \[2, 2\]/);
    t.throws(() => ops.assign(dst, ops.reshape(view, [2, 2])), /share memory/);
  });
});
