import t from 'tap';
import { addon, dispose, ops, tensor, tidy, valueAndGrads, type Tensor } from '../../lib/index.ts';

const inUse = () => addon.memoryStats('cpu').inUse;

t.test('tidy disposes every intermediate and hands back what it returns', async (t) => {
  const before = inUse();
  let inner: Tensor | null = null;
  const result = tidy(() => {
    const a = tensor([1, 2, 3], [3]);
    inner = ops.mul(a, a);
    return ops.add(inner, a);
  });
  t.ok(inner!.isDisposed, 'intermediate disposed');
  t.notOk(result.isDisposed, 'result survives');
  t.same([...result.data()], [2, 6, 12]);
  result.dispose();
  t.equal(inUse(), before, 'native memory back to where it was');
});

t.test('results nested in arrays and objects survive; kept tensors survive; errors still free', async (t) => {
  const before = inUse();
  const kept = tidy(() => tensor([1], [1]).keep());
  const r = tidy(() => ({ a: [tensor([1], [1])], b: { c: tensor([2], [1]) } }));
  t.notOk(r.a[0].isDisposed);
  t.notOk(r.b.c.isDisposed);
  t.notOk(kept.isDisposed);
  dispose(r);
  kept.dispose();
  t.throws(() =>
    tidy(() => {
      tensor([1, 2], [2]);
      throw new Error('boom');
    }),
  );
  t.equal(inUse(), before, 'nothing leaked, not even on the error path');
});

t.test('nested scopes move a returned tensor to the parent scope', async (t) => {
  let mid: Tensor | null = null;
  tidy(() => {
    mid = tidy(() => ops.scale(tensor([1], [1]), 2));
    t.notOk(mid.isDisposed);
  });
  t.ok(mid!.isDisposed, 'disposed when the outer scope ends');
});

t.test('tidy refuses async functions', async (t) => {
  t.throws(() => tidy((async () => tensor([1], [1])) as never), /synchronous/);
});

t.test('a training-style step returns memory to the same level every iteration', async (t) => {
  const w = tensor(new Float32Array(64 * 64).fill(0.01), [64, 64]).keep();
  const x = tensor(new Float32Array(8 * 64).fill(1), [8, 64]).keep();
  const step = () =>
    tidy(() => {
      const { value, grads } = valueAndGrads(() => ops.mean(ops.mul(ops.matmul(x, w), ops.matmul(x, w))), [w]);
      return [value.item(), grads[0]!.size];
    });
  step();
  const level = inUse();
  for (let i = 0; i < 5; i++) step();
  t.equal(inUse(), level, 'no tensor outlives its step');
  w.dispose();
  x.dispose();
});
