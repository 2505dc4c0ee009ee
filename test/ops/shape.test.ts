import t, { type Test } from 'tap';
import { ops, runOp, tensor, tidy, zeros } from '../../lib/index.ts';
import { loadFixtures, type FixtureCase } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';

// These ops only move values, forward and backward: the results must be bit-identical to PyTorch's.
// The fixtures hold each float32 as its shortest decimal, so the expected values are read back as
// float32 before the comparison with zero tolerance.
function asFloat32(cases: Record<string, FixtureCase>): Record<string, FixtureCase> {
  for (const c of Object.values(cases)) for (const v of Object.values(c.tensors)) v.data = Array.from(Float32Array.from(v.data));
  return cases;
}
const cases = asFloat32(loadFixtures('shape'));
const exact = { atol: 0, rtol: 0 };

const random = (shape: number[], seed: number) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed), shape });

// A host permute: element by element through the multi-index, the definition the kernel must match.
function permuteReference(x: Float32Array, shape: number[], dims: number[]): Float32Array {
  const outShape = dims.map((d) => shape[d]);
  const stride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(x.length);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    out[i] = x[idx.reduce((off, v, k) => off + v * stride[dims[k]], 0)];
    for (let k = dims.length - 1; k >= 0 && ++idx[k] === outShape[k]; k--) idx[k] = 0;
  }
  return out;
}

function healthy(t: Test): void {
  tidy(() => {
    const y = ops.concat([tensor([1, 2], [1, 2]), tensor([3, 4], [1, 2])], 0);
    t.same([...ops.slice(y, 1, 1, 2).data()], [2, 4], 'the engine still works');
  });
}

t.test('parity with PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    const op = name.split('_')[0];
    if (op === 'concat') {
      const names = Object.keys(c.tensors).filter((k) => /^x\d+$/.test(k)).sort();
      checkParity(t, name, c, names, (...xs) => ops.concat(xs, c.attrs.axis), exact);
    } else if (op === 'slice') checkParity(t, name, c, ['x'], (x) => ops.slice(x, c.attrs.axis, c.attrs.start, c.attrs.end), exact);
    else if (op === 'permute') checkParity(t, name, c, ['x'], (x) => ops.permute(x, c.attrs.dims), exact);
    else t.fail(`no test for fixture case ${name}`);
  }
});

t.test('finite-difference gradients', async (t) => {
  gradcheck(t, 'concat', (a, b, c) => ops.concat([a, b, c], -2), [random([2, 3, 4], 1), random([2, 1, 4], 2), random([2, 2, 4], 3)]);
  gradcheck(t, 'concat of one tensor used twice', (a) => ops.concat([a, a], 0), [random([2, 3], 4)]);
  gradcheck(t, 'slice', (x) => ops.slice(x, 1, 1, -1), [random([2, 5, 3], 5)]);
  gradcheck(t, 'slice to the end', (x) => ops.slice(x, -1, 2), [random([3, 4], 6)]);
  gradcheck(t, 'permute', (x) => ops.permute(x, [2, 0, 3, 1]), [random([2, 3, 4, 5], 7)]);
  gradcheck(t, 'permute transpose', (x) => ops.permute(x, [1, 0]), [random([5, 3], 8)]);
});

// Sizes above the kernels' parallel threshold and tile edges, against host references.
t.test('large tensors match host references', async (t) => {
  tidy(() => {
    for (const [shape, dims] of [
      [[4, 70, 130], [2, 0, 1]],       // transposing: tiles, several batch entries
      [[1, 33, 33, 384], [0, 3, 1, 2]], // the ViT-S/8 position-embedding grid to NCHW
      [[2, 37, 6, 64], [0, 2, 1, 3]],  // contiguous rows: (B, T, H, d) -> (B, H, T, d)
      [[3, 2, 1, 5, 2000], [4, 2, 0, 3, 1]],
    ] as [number[], number[]][]) {
      const x = random(shape, 11);
      const y = ops.permute(tensor(x.data, shape), dims);
      t.same([...y.shape], dims.map((d) => shape[d]), `permute [${shape}] by [${dims}]: shape`);
      t.ok(Buffer.compare(Buffer.from(y.data().buffer), Buffer.from(permuteReference(x.data, shape, dims).buffer)) === 0, `permute [${shape}] by [${dims}]: values`);
    }
    // An axis-0 concat is one long run per input: it is split in pieces across threads.
    const a = random([1, 300, 200], 12);
    const b = random([2, 300, 200], 13);
    const ab = ops.concat([tensor(a.data, a.shape), tensor(b.data, b.shape)], 0);
    const ref = new Float32Array(a.data.length + b.data.length);
    ref.set(a.data);
    ref.set(b.data, a.data.length);
    t.same(ab.shape, [3, 300, 200]);
    t.ok(Buffer.compare(Buffer.from(ab.data().buffer), Buffer.from(ref.buffer)) === 0, 'axis-0 concat values');
    const s = ops.slice(ab, 1, 10, 290);
    const sd = s.data();
    let ok = s.shape[1] === 280;
    for (let i = 0; i < 3 && ok; i++) {
      for (let j = 0; j < 280 * 200 && ok; j++) ok = sd[i * 280 * 200 + j] === ref[i * 300 * 200 + 10 * 200 + j];
    }
    t.ok(ok, 'slice of a large tensor');
  });
});

t.test('bad input gives clear errors', async (t) => {
  tidy(() => {
    const x = zeros([2, 3]);
    t.throws(() => ops.concat([x, zeros([2, 4])], 0), {
      message: /concat\(xs0\[2, 3\] float32 cpu, xs1\[2, 4\] float32 cpu\): xs1 has shape \[2, 4\] but xs0 has \[2, 3\]: shapes must agree except along axis 0/,
      code: 'ERR_DINO_SHAPE_MISMATCH',
    });
    t.throws(() => ops.concat([x, zeros([2, 3, 1])], 1), /xs1 has shape \[2, 3, 1\]/);
    t.throws(() => ops.concat([], 0), /concat needs at least one input/);
    t.throws(() => ops.concat([x, x], 2), { name: 'RangeError', message: /axis 2 is out of range for 2 dimensions/ });
    t.throws(() => ops.concat([zeros([]), zeros([])], 0), /cannot concatenate 0-dimensional tensors/);
    t.throws(() => ops.concat([x, ops.cast(x, 'bfloat16')], 0), { message: /xs1 must be float32, got bfloat16/, code: 'ERR_DINO_DTYPE_MISMATCH' });
    t.throws(() => runOp('concat', [x]), /missing attribute 'axis'/);
    t.throws(() => ops.slice(x, -3, 0, 1), { name: 'RangeError', message: /slice\(x\[2, 3\].*axis -3 is out of range for 2 dimensions/ });
    t.throws(() => ops.slice(zeros([]), 0, 0, 1), /cannot slice a 0-dimensional tensor/);
    t.throws(() => ops.slice(x, 1, 0.5, 2), /attribute 'start' must be an integer, got 0.5/);
    t.throws(() => runOp('slice_backward', [x], { axis: 1, start: 2, size: 4 }), /a slice of 3 elements starting at 2 does not fit in an axis of 4/);
    t.throws(() => runOp('slice_backward', [x], { axis: 1, start: 0, size: -1 }), /size must be non-negative/);
    t.throws(() => ops.permute(x, [0]), /dims has 1 entries for a tensor with 2 dimensions/);
    t.throws(() => ops.permute(x, [1, 1]), /dims is not a permutation: dimension 1 appears twice/);
    t.throws(() => ops.permute(x, [0, 2]), { name: 'RangeError', message: /axis 2 is out of range/ });
  });
  healthy(t);
});
