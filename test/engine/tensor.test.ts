import t from 'tap';
import { addon, ops, tensor, zeros, ones, full, scalar, tidy } from '../../lib/index.ts';

t.test('tensors carry shape, dtype and device, and copy values in and out', async (t) => {
  tidy(() => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    t.same([...x.shape], [2, 3]);
    t.equal(x.dtype, 'float32');
    t.equal(x.device, 'cpu');
    t.equal(x.size, 6);
    t.same([...x.data()], [1, 2, 3, 4, 5, 6]);
    const y = ops.reshape(x, [3, -1]);
    t.same([...y.shape], [3, 2], 'reshape infers -1');
    t.same([...y.data()], [1, 2, 3, 4, 5, 6], 'reshape is a view of the same values');
    t.equal(scalar(2.5).item(), 2.5);
    t.same([...zeros([2, 2]).data()], [0, 0, 0, 0]);
    t.same([...ones([3]).data()], [1, 1, 1]);
    t.same([...full([2], -4).data()], [-4, -4]);
    t.equal(tensor([], [0, 3]).size, 0, 'empty tensors are allowed');
  });
});

t.test('the data a tensor was made from is copied, not aliased', async (t) => {
  tidy(() => {
    const src = new Float32Array([1, 2, 3]);
    const x = tensor(src, [3]);
    src[0] = 100;
    t.equal(x.data()[0], 1);
    const out = x.data();
    out[1] = 100;
    t.equal(x.data()[1], 2);
  });
});

t.test('a subarray view is read from its own offset', async (t) => {
  tidy(() => {
    const buf = new Float32Array([9, 9, 1, 2, 3]);
    t.same([...tensor(buf.subarray(2), [3]).data()], [1, 2, 3]);
  });
});

t.test('buildInfo reports the build and the devices', async (t) => {
  const info = addon.buildInfo();
  t.match(info.version, /^\d+\.\d+\.\d+/);
  t.ok(['avx512', 'avx2', 'generic'].includes(info.gemmKernel), `GEMM kernel ${info.gemmKernel}`);
  t.ok(info.threads >= 1);
  t.type(info.cuda.compiled, 'boolean');
  if (!info.cuda.usable) t.ok(info.cuda.reason.length > 0, `CUDA unusable, with a reason: ${info.cuda.reason}`);
  t.ok(addon.opNames().includes('matmul'), 'the op registry lists its ops');
});
