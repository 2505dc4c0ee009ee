import t from 'tap';
import { grads, noGrad, ops, tensor, tidy, valueAndGrads } from '../../lib/index.ts';

t.test('gradients of a tensor used twice accumulate', async (t) => {
  tidy(() => {
    const x = tensor([1, 2, 3], [3]);
    // d/dx sum(x*x + 3x) = 2x + 3
    const [g] = grads(() => ops.sum(ops.add(ops.mul(x, x), ops.scale(x, 3))), [x]);
    t.same([...g!.data()], [5, 7, 9]);
  });
});

t.test('a watched tensor the value does not depend on gets null', async (t) => {
  tidy(() => {
    const x = tensor([1], [1]);
    const y = tensor([2], [1]);
    const [gx, gy] = grads(() => ops.sum(ops.scale(x, 4)), [x, y]);
    t.same([...gx!.data()], [4]);
    t.equal(gy, null);
  });
});

t.test('noGrad stops gradient flow', async (t) => {
  tidy(() => {
    const x = tensor([3], [1]);
    const [g] = grads(() => ops.sum(ops.mul(x, noGrad(() => ops.scale(x, 2)))), [x]);
    t.same([...g!.data()], [6], 'the no-grad factor is a constant');
  });
});

t.test('the value is returned and must be a single element', async (t) => {
  tidy(() => {
    const x = tensor([1, 2], [2]);
    const { value } = valueAndGrads(() => ops.sum(x), [x]);
    t.equal(value.item(), 3);
    t.throws(() => valueAndGrads(() => ops.scale(x, 2), [x]), /one element/);
    t.throws(() => valueAndGrads(() => valueAndGrads(() => ops.sum(x), [x]).value, [x]), /nested/);
  });
});

t.test('returned gradients never share memory, so updating one in place leaves the others alone', async (t) => {
  tidy(() => {
    const a = tensor([1, 2, 3], [3]);
    const b = tensor([4, 5, 6], [3]);
    const c = tensor([1, 1, 1, 1, 1, 1], [2, 3]);
    // add passes dy through to both inputs; reshape's gradient is a view of its dy
    const gs = grads(() => ops.add(ops.sum(ops.add(a, b)), ops.sum(ops.reshape(c, [6]))), [a, b, c]);
    const ids = gs.map((g) => g!.native.storageId);
    t.equal(new Set(ids).size, 3, 'three distinct buffers');
    ops.clipGradNorm(gs[0]!, 0.5);
    t.same([...gs[1]!.data()], [1, 1, 1], "clipping a's gradient does not touch b's");
    gs[0]!.dispose();
    t.same([...gs[1]!.data()], [1, 1, 1], "disposing a's gradient does not dispose b's");
  });
});

t.test('scopes inside the differentiated function keep what the tape needs', async (t) => {
  tidy(() => {
    const x = tensor([0.5, -1], [2]);
    const [g] = grads(() => tidy(() => ops.sum(ops.mul(ops.mul(x, x), x))), [x]);
    t.same([...g!.data()], [0.75, 3], 'd/dx sum(x^3) = 3x^2');
  });
});
