// The default device of new tensors (withDevice), the choice behind --device, and what a request for a
// GPU that is not there gives: a clear error, never a crash.
import t from 'tap';
import { DinoTrainer, addon, defaultDevice, full, resolveDevice, tensor, tidy, withDevice, zeros } from '../../lib/index.ts';

const cuda = addon.buildInfo().cuda;
const gpuReady = cuda.usable && cuda.cublasLoaded;

t.test('withDevice sets the default device of new tensors, and restores it', async (t) => {
  t.equal(defaultDevice(), 'cpu', 'the CPU outside any scope');
  withDevice('cpu', () => {
    t.equal(defaultDevice(), 'cpu');
    tidy(() => {
      t.equal(zeros([2]).device, 'cpu');
      t.equal(tensor([1], [1]).device, 'cpu');
      t.equal(full([2], 3).device, 'cpu');
    });
  });
  t.throws(() => withDevice('cuda:3', () => {
    t.equal(defaultDevice(), 'cuda:3', 'inside the scope');
    throw new Error('boom');
  }), /boom/);
  t.equal(defaultDevice(), 'cpu', 'restored after an exception');
  withDevice('cuda:1', () => withDevice('cpu', () => t.equal(defaultDevice(), 'cpu', 'the innermost scope wins')));
});

t.test('--device resolution', async (t) => {
  t.same(resolveDevice('cpu').device, 'cpu', 'cpu when asked');
  const auto = resolveDevice('auto');
  t.equal(auto.device, gpuReady ? 'cuda:0' : 'cpu', `auto: ${auto.note}`);
  t.match(auto.note, gpuReady ? /^device: cuda:0 \(/ : /^device: cpu \(CUDA: .+\)/, 'the note says which and why');
  if (gpuReady) t.equal(resolveDevice('cuda').device, 'cuda:0');
  else t.throws(() => resolveDevice('cuda'), /^--device cuda: .+/, 'cuda refused with the reason');
});

t.test('a GPU that is not there: clear errors, and the CPU keeps working', { skip: cuda.usable ? 'a GPU is usable here' : false }, async (t) => {
  t.throws(() => zeros([2], { device: 'cuda:0' }), /cuda:0 is not available: .+|built without CUDA/, 'a tensor on cuda:0');
  t.throws(
    () => new DinoTrainer({ embedDim: 16, depth: 1, numHeads: 2, patchSize: 8, imgSize: 16, outDim: 32, headHiddenDim: 16, headBottleneckDim: 8 }, 1, { device: 'cuda:0' }),
    /cuda:0/,
    'a trainer on cuda:0',
  );
  tidy(() => t.same([...zeros([2]).data()], [0, 0], 'the CPU still works'));
});
