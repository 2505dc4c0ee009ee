// Bad input gets a clear JS error naming the op, the shapes and the reason, and the process stays
// healthy: after every failure a normal computation still gives the right answer.
import t, { type Test } from 'tap';
import { addon, ops, runOp, tensor, tidy, zeros } from '../../lib/index.ts';

function healthy(t: Test): void {
  tidy(() => {
    const x = tensor([1, 2], [2]);
    t.same([...ops.add(x, x).data()], [2, 4], 'the engine still works');
  });
}

t.test('mismatched shapes', async (t) => {
  tidy(() => {
    t.throws(() => ops.add(tensor([1, 2, 3], [3]), tensor([1, 2], [2])), {
      message: /add\(a\[3\] float32 cpu, b\[2\] float32 cpu\): shapes \[3\] and \[2\] cannot be broadcast/,
      code: 'ERR_DINO_SHAPE_MISMATCH',
    });
    t.throws(() => ops.matmul(zeros([2, 3]), zeros([4, 5])), { message: /matmul.*inner dimensions differ: 3 \(a\) vs 4 \(b\)/ });
    t.throws(() => ops.matmul(zeros([2, 2, 3]), zeros([3, 3, 4])), { message: /batch dimensions \[2\] and \[3\] differ/ });
    t.throws(() => ops.reshape(zeros([2, 3]), [4, 2]), { message: /cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/ });
    t.throws(() => tensor([1, 2, 3], [2, 2]), { message: /shape \[2, 2\] needs 4 values, got 3/ });
  });
  healthy(t);
});

t.test('wrong dtypes', async (t) => {
  tidy(() => {
    const h = ops.cast(tensor([1, 2], [2]), 'float16');
    t.throws(() => ops.mul(h, h), { message: /mul\(.*a must be float32, got float16/, code: 'ERR_DINO_DTYPE_MISMATCH' });
    t.throws(() => tensor(new Uint16Array(1), [1], { dtype: 'int8' as never }), /unknown dtype 'int8'/);
    t.throws(() => addon.fromArray(new Float64Array(2) as never, [2], 'float32', 'cpu'), /Float32Array/);
    t.throws(() => addon.fromArray(new Float32Array(2), [2], 'bfloat16', 'cpu'), /Uint16Array/);
  });
  healthy(t);
});

t.test('a disposed tensor used again', async (t) => {
  const x = tensor([1, 2], [2]);
  const y = tensor([1, 2], [2]);
  x.dispose();
  t.throws(() => x.data(), { message: /disposed and cannot be used again/, code: 'ERR_DINO_DISPOSED' });
  t.throws(() => ops.add(x, y), /disposed/);
  // Disposed below the TS layer (the native handle itself), the op names its inputs.
  const raw = addon.fromArray(new Float32Array([1]), [1], 'float32', 'cpu');
  raw.dispose();
  t.throws(() => addon.run('add', [raw, y.native]), { message: /add\(a \(disposed\), b\[2\].*input 0 was disposed/, code: 'ERR_DINO_DISPOSED' });
  t.throws(() => raw.toArray(), /disposed/);
  x.dispose();
  t.pass('disposing twice is harmless');
  y.dispose();
  healthy(t);
});

t.test('out-of-range axes', async (t) => {
  tidy(() => {
    const x = zeros([2, 3]);
    t.throws(() => ops.sum(x, [2]), { name: 'RangeError', message: /sum\(x\[2, 3\].*axis 2 is out of range for 2 dimensions/ });
    t.throws(() => ops.mean(x, [-3]), RangeError);
    t.throws(() => ops.sum(x, [0, 0]), /axis 0 is listed twice/);
  });
  healthy(t);
});

t.test('an allocation too large to satisfy', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  // Just over the allocator's limit (physical memory): refused before the system is asked.
  const rows = Math.ceil(addon.memoryStats('cpu').limit / 4 / 100000) + 1;
  t.throws(() => zeros([rows, 100000]), { message: new RegExp(`allocating \\[${rows}, 100000\\] float32 on cpu: cannot allocate ${rows * 400000} bytes`), code: 'ERR_DINO_OUT_OF_MEMORY' });
  t.throws(() => zeros([2 ** 40, 2 ** 40]), { message: /too many elements/, code: 'ERR_DINO_OUT_OF_MEMORY' });
  tidy(() => {
    const big = zeros([1, 4000]);
    t.throws(() => ops.matmul(zeros([200000, 1]), zeros([1, 200000])), { code: 'ERR_DINO_OUT_OF_MEMORY' }, 'an op whose output does not fit');
    t.equal(big.size, 4000);
  });
  t.equal(addon.memoryStats('cpu').inUse, before, 'a failed allocation leaks nothing');
  healthy(t);
});

t.test('malformed calls', async (t) => {
  tidy(() => {
    const x = tensor([1, 2], [2]);
    t.throws(() => runOp('no_such_op', [x]), /unknown op 'no_such_op'/);
    t.throws(() => runOp('add', [x]), /add\(a\[2\].*expects 2 inputs, got 1/);
    t.throws(() => addon.run('add', [x.native, {} as never]), { name: 'TypeError', message: /input 1 must be a tensor/ });
    t.throws(() => runOp('affine', [x], { alpha: 'two' }), /attribute 'alpha' must be a number, got a string/);
    t.throws(() => runOp('sum', [x], { axes: [0.5] }), /attribute 'axes' must be an integer/);
    t.throws(() => runOp('reshape', [x], {}), /missing attribute 'shape'/);
    t.throws(() => tensor([1], [-1]), /non-negative integers/);
    t.throws(() => tensor([1], [NaN]), /non-negative integers/);
    t.throws(() => tensor([1], [1], { device: 'tpu' }), /unknown device 'tpu'/);
  });
  healthy(t);
});

t.test('a CUDA tensor on a machine or build without CUDA', async (t) => {
  const info = addon.buildInfo();
  if (info.cuda.usable) {
    t.pass('CUDA is usable here; the CPU-only failure path is not reachable');
    return;
  }
  t.throws(() => zeros([2], { device: 'cuda' }), { message: /cuda:0/, code: /ERR_DINO_(UNSUPPORTED|DEVICE)/ });
  healthy(t);
});

t.test('absurd sizes in attributes are refused, not attempted', async (t) => {
  tidy(() => {
    t.throws(() => ops.bicubicInterpolate(zeros([1, 1, 100000, 1]), { scaleH: 1e-5, scaleW: 1, outH: 1, outW: 1e8 }), /ERR_DINO_OUT_OF_MEMORY|cannot allocate/, 'a scratch buffer beyond memory');
    t.throws(() => ops.bicubicInterpolate(zeros([0, 1, 1, 1]), { scaleH: 1, scaleW: 1, outH: 1, outW: 1e15 }), /outW must be in \[1, 2\^30\]/);
    t.throws(() => runOp('bicubic_interpolate_backward', [zeros([0, 1, 2, 2])], { inH: 1e15, inW: 1, scaleH: 1, scaleW: 1 }), /inH must be in \[1, 2\^30\]/);
    t.throws(() => ops.bicubicInterpolate(zeros([1, 1, 2, 2]), { scaleH: 1e-300, scaleW: 1, outH: 1 }), /scale factors must be in/);
    t.throws(() => ops.reshape(zeros([0]), [2 ** 40, 2 ** 40, -1]), /too many elements/);
    t.throws(() => ops.attention(zeros([0, 2 ** 40, 6]), 1), /sequence length .* is too long/);
    t.throws(() => tensor([], [1e300]), /non-negative integers/);
  });
  t.throws(() => addon.memoryStats('cuda:999'), /beyond the 16 devices/);
  t.throws(() => addon.emptyCache('cuda:16'), /beyond the 16 devices/);
  t.throws(() => addon.setNumThreads(1e6), RangeError);
  t.throws(() => addon.setNumThreads(0), RangeError);
  healthy(t);
});
