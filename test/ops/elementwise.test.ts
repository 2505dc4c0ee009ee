import t from 'tap';
import { ops, tensor, tidy, type Tensor } from '../../lib/index.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('elementwise');
const binary: Record<string, (a: Tensor, b: Tensor) => Tensor> = { add: ops.add, sub: ops.sub, mul: ops.mul, div: ops.div };
const exact = { atol: 1e-6, rtol: 1e-6 };

t.test('parity with PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    const op = name.split('_')[0];
    if (op in binary) checkParity(t, name, c, ['a', 'b'], binary[c.attrs.op], exact);
    else if (op === 'affine') checkParity(t, name, c, ['x'], (x) => ops.affine(x, c.attrs.alpha, c.attrs.beta), exact);
    else if (op === 'sum') checkParity(t, name, c, ['x'], (x) => ops.sum(x, c.attrs.axes, c.attrs.keepdim), exact);
    else if (op === 'mean') checkParity(t, name, c, ['x'], (x) => ops.mean(x, c.attrs.axes, c.attrs.keepdim), exact);
    else if (op === 'broadcast') checkParity(t, name, c, ['x'], (x) => ops.broadcastTo(x, c.attrs.shape), exact);
    else if (op === 'matmul') {
      checkParity(t, name, c, ['a', 'b'], (a, b) => ops.matmul(a, b, c.attrs), { atol: 1e-5, rtol: 1e-5 }, { atol: 1e-4, rtol: 1e-4 });
    } else t.fail(`no test for fixture case ${name}`);
  }
});

t.test('finite-difference gradients', async (t) => {
  const r = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });
  gradcheck(t, 'add broadcast', ops.add, [r([2, 3, 4], 1), r([3, 1], 2)]);
  gradcheck(t, 'sub broadcast', ops.sub, [r([2, 1, 4], 3), r([3, 1], 4)]);
  gradcheck(t, 'mul broadcast', ops.mul, [r([2, 3, 4], 5), r([4], 6)]);
  gradcheck(t, 'div broadcast', ops.div, [r([2, 3], 7), r([3], 8, 0.5, 1.5)]);
  gradcheck(t, 'affine', (x) => ops.affine(x, -0.3, 2), [r([5], 9)]);
  gradcheck(t, 'sum axes 0,2', (x) => ops.sum(x, [0, 2]), [r([2, 3, 4], 10)]);
  gradcheck(t, 'mean keepdim', (x) => ops.mean(x, [-1], true), [r([3, 4], 11)]);
  gradcheck(t, 'broadcast_to', (x) => ops.broadcastTo(x, [2, 3, 4]), [r([1, 4], 12)]);
  gradcheck(t, 'reshape', (x) => ops.mul(ops.reshape(x, [3, -1]), ops.reshape(x, [3, 4])), [r([2, 6], 13)]);
  gradcheck(t, 'matmul', (a, b) => ops.matmul(a, b), [r([2, 3, 4], 14), r([4, 5], 15)]);
  gradcheck(t, 'matmul transposed', (a, b) => ops.matmul(a, b, { transA: true, transB: true }), [r([2, 4, 3], 16), r([2, 5, 4], 17)]);
  gradcheck(t, 'matmul shared left', (a, b) => ops.matmul(a, b, { transA: true }), [r([4, 3], 18), r([2, 4, 5], 19)]);
});

t.test('casts round-trip through bfloat16 and float16', async (t) => {
  tidy(() => {
    const values = [0, 1, -2.5, 3.140625, 65504, 1e-7, -6e-5, 1 / 3];
    const x = tensor(values, [values.length]);
    const h = ops.cast(x, 'float16');
    t.equal(h.dtype, 'float16');
    t.same([...(h.rawData() as Uint16Array)].slice(0, 5), [0x0000, 0x3c00, 0xc100, 0x4248, 0x7bff], 'float16 bit patterns');
    assertClose(t, ops.cast(h, 'float32'), values, { atol: 6e-8, rtol: 1e-3 }, 'float16 round trip');
    const b = ops.cast(x, 'bfloat16');
    t.same([...(b.rawData() as Uint16Array)].slice(0, 4), [0x0000, 0x3f80, 0xc020, 0x4049], 'bfloat16 bit patterns');
    assertClose(t, ops.cast(b, 'float32'), values, { atol: 0, rtol: 8e-3 }, 'bfloat16 round trip');
    t.throws(() => ops.add(b, b), /float32/, 'compute ops refuse 16-bit storage');
  });
});
