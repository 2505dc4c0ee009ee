import t from 'tap';
import { ops, runOp, tensor, tidy } from '../../lib/index.ts';
import { fromFixture, loadFixtures } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('interpolate');

// Same formula as PyTorch, in float32: the source coordinate (i + 0.5) / scale - 0.5 is rounded to
// float, so at coordinates up to ~60 it carries up to half an ulp (~2e-6) of error, and PyTorch's
// build contracts it and the cubic polynomials into FMAs (different rounding; emulating that brings
// the weights to within 2e-7 of PyTorch's). The weights' slope is at most ~1.5 and an output sums
// 16 weighted inputs of unit scale: 1e-5. Gradients gather up to ~50 such terms per input pixel,
// summed in another order (rows first, then columns).
const outTol = { atol: 1e-5, rtol: 1e-5 };
const gradTol = { atol: 2e-5, rtol: 1e-5 };

t.test('parity with F.interpolate(mode="bicubic", align_corners=False) in PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    const opts = { scaleH: c.attrs.scaleH as number, scaleW: c.attrs.scaleW as number };
    checkParity(t, name, c, ['x'], (x) => ops.bicubicInterpolate(x, opts), outTol, gradTol);
  }
});

t.test('DINO position-embedding sizes', async (t) => {
  tidy(() => {
    // 96 px crops at p = 16: w0 = 96 // 16 + 0.1 = 6.1, the 14x14 grid becomes 6x6 as int(w0) asserts.
    const c = cases.bicubic_dino_14_to_6;
    const y = ops.bicubicInterpolate(fromFixture(c, 'x'), { scaleH: 6.1 / 14, scaleW: 6.1 / 14 });
    t.same([...y.shape], [1, 3, 6, 6]);
    // The given scale, not in/out, places the samples: resampling to the same size with the ratio
    // 6/14 (what size=(6, 6) would use) gives a different result.
    const bySize = ops.bicubicInterpolate(fromFixture(c, 'x'), { scaleH: 6 / 14, scaleW: 6 / 14 });
    const a = y.data(), b = bySize.data();
    t.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-3), 'scale 6.1/14 and 6/14 sample different positions');
    // An explicit output size keeps the sampling positions of the scale factor.
    const same = ops.bicubicInterpolate(fromFixture(c, 'x'), { scaleH: 6.1 / 14, scaleW: 6.1 / 14, outH: 6, outW: 6 });
    assertClose(t, same, a, { atol: 0, rtol: 0 }, 'outH/outW equal to the default change nothing');
    const wider = ops.bicubicInterpolate(fromFixture(c, 'x'), { scaleH: 6.1 / 14, scaleW: 6.1 / 14, outH: 6, outW: 7 });
    t.same([...wider.shape], [1, 3, 6, 7], 'outW overrides the width');
    const rows = wider.data();
    const firstSix = [...Array(3 * 6).keys()].flatMap((r) => [...rows.subarray(r * 7, r * 7 + 6)]);
    assertClose(t, firstSix, a, { atol: 0, rtol: 0 }, 'and the first six columns are unchanged');
  });
});

t.test('a constant image stays constant; identity scale copies', async (t) => {
  tidy(() => {
    // The four cubic weights sum to one at every position, clamped borders included (to a few ulps in
    // float32 on each axis).
    const y = ops.bicubicInterpolate(tensor(new Float32Array(2 * 5 * 7).fill(3.25), [1, 2, 5, 7]), { scaleH: 2.7, scaleW: 0.45 });
    t.same([...y.shape], [1, 2, 13, 3]);
    assertClose(t, y, new Float32Array(2 * 13 * 3).fill(3.25), { atol: 0, rtol: 3e-6 }, 'constant');
    const x = tensor(randomValues(3 * 4 * 5, 1), [1, 3, 4, 5]);
    assertClose(t, ops.bicubicInterpolate(x, { scaleH: 1, scaleW: 1 }), x.data(), { atol: 0, rtol: 0 }, 'scale 1 is the identity');
  });
});

t.test('finite-difference gradients', async (t) => {
  const r = (shape: number[], seed: number) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed), shape });
  gradcheck(t, 'bicubic up 2.3 x 1.6', (x) => ops.bicubicInterpolate(x, { scaleH: 2.3, scaleW: 1.6 }), [r([2, 2, 4, 5], 1)]);
  gradcheck(t, 'bicubic down (DINO 14 -> 6)', (x) => ops.bicubicInterpolate(x, { scaleH: 6.1 / 14, scaleW: 6.1 / 14 }), [r([1, 2, 14, 14], 2)]);
  gradcheck(t, 'bicubic with an explicit size', (x) => ops.bicubicInterpolate(x, { scaleH: 0.7, scaleW: 1.3, outH: 3, outW: 8 }), [r([1, 1, 5, 6], 3)]);
});

t.test('bad input throws a clear error and leaves the engine usable', async (t) => {
  tidy(() => {
    const x = tensor(randomValues(2 * 3 * 4 * 4, 1), [2, 3, 4, 4]);
    t.throws(() => ops.bicubicInterpolate(tensor(randomValues(16, 1), [4, 4]), { scaleH: 2, scaleW: 2 }), /x must be \(N, C, H, W\)/, 'rank');
    t.throws(() => runOp('bicubic_interpolate', [x], { scaleW: 2 }), /scaleH/, 'missing scale');
    t.throws(() => ops.bicubicInterpolate(x, { scaleH: 0, scaleW: 2 }), /scale factors must be in \[2\^-30, 2\^30\]/, 'zero scale');
    t.throws(() => ops.bicubicInterpolate(x, { scaleH: 2, scaleW: NaN }), /scale factors must be in \[2\^-30, 2\^30\]/, 'NaN scale');
    t.throws(() => ops.bicubicInterpolate(x, { scaleH: 0.2, scaleW: 2 }), /output size floor\(4 \* 0.2\) = 0/, 'empty output');
    t.throws(() => ops.bicubicInterpolate(x, { scaleH: 2, scaleW: 2, outH: 0 }), /outH must be in \[1, 2\^30\], got 0/, 'outH 0');
    t.throws(() => ops.bicubicInterpolate(x, { scaleH: 2, scaleW: 2, outW: 2.5 }), /outW/, 'fractional outW');
    t.throws(() => runOp('bicubic_interpolate_backward', [x], { inH: 0, inW: 3, scaleH: 2, scaleW: 2 }), /inH must be in \[1, 2\^30\], got 0/, 'backward size');
    t.same([...ops.bicubicInterpolate(x, { scaleH: 2, scaleW: 0.5 }).shape], [2, 3, 8, 2], 'still works afterwards');
  });
});
