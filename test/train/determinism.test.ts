// The same seed gives bitwise the same run; a run saved to a checkpoint, reloaded and continued gives
// bitwise the losses and weights of a run that never stopped (weights, optimizer moments and steps,
// centre, iteration and the random stream all travel in the checkpoint).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator, tensor, tidy, type Tensor } from '../../lib/index.ts';
import { saveCheckpoint } from '../../lib/io/checkpoint.ts';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from '../../lib/train/checkpoint.ts';
import { DinoTrainer, type DinoConfig } from '../../lib/train/trainer.ts';

const config: Partial<DinoConfig> = {
  embedDim: 32, depth: 2, numHeads: 2, patchSize: 8, imgSize: 32, outDim: 64, headHiddenDim: 48, headBottleneckDim: 16,
  batchSize: 2, localCropsNumber: 2, epochs: 3, warmupEpochs: 1, lr: 0.128, seed: 7,
};
const itersPerEpoch = 2;

// The crops of an iteration depend on the iteration only, as a data loader seeded per epoch would.
function crops(it: number): Tensor[] {
  const g = new Generator(1000 + it);
  const img = (size: number) => tensor(g.normalArray(2 * 3 * size * size), [2, 3, size, size]);
  return [img(32), img(32), img(16), img(16)];
}

function run(trainer: DinoTrainer, iterations: number): number[] {
  const losses: number[] = [];
  for (let i = 0; i < iterations; i++) losses.push(tidy(() => trainer.step(crops(trainer.iteration)).loss));
  return losses;
}

function weights(trainer: DinoTrainer): Float32Array[] {
  return [...trainer.student.stateDict(), ...trainer.teacher.stateDict()].map(([, v]) => v.data());
}

t.test('one seed, one run: bitwise', async (t) => {
  const a = new DinoTrainer(config, itersPerEpoch);
  const b = new DinoTrainer(config, itersPerEpoch);
  const la = run(a, 4);
  const lb = run(b, 4);
  t.ok(la.every((l, i) => Object.is(l, lb[i])), `losses ${la.join(', ')} twice`);
  t.ok(weights(a).every((w, i) => Buffer.from(w.buffer).equals(Buffer.from(weights(b)[i].buffer))), 'weights bitwise equal');
  const c = new DinoTrainer({ ...config, seed: 8 }, itersPerEpoch);
  t.not(run(c, 1)[0], la[0], 'another seed gives another run');
  [a, b, c].forEach((x) => x.dispose());
});

t.test('save, reload and continue reproduces the uninterrupted run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dino-resume-'));
  try {
    const whole = new DinoTrainer(config, itersPerEpoch);
    const expected = run(whole, 5);
    const first = new DinoTrainer(config, itersPerEpoch);
    const head = run(first, 3);
    const path = join(dir, 'checkpoint.safetensors');
    saveTrainerCheckpoint(path, first);
    first.dispose();
    const resumed = loadTrainerCheckpoint(path);
    t.equal(resumed.iteration, 3, 'resumes at iteration 3 (epoch 1)');
    const tail = run(resumed, 2);
    const got = [...head, ...tail];
    t.ok(got.every((l, i) => Object.is(l, expected[i])), `losses ${got.join(', ')} equal ${expected.join(', ')}`);
    const [w1, w2] = [weights(whole), weights(resumed)];
    t.ok(w1.every((w, i) => Buffer.from(w.buffer).equals(Buffer.from(w2[i].buffer))), 'final weights bitwise equal');
    whole.dispose();
    resumed.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('a checkpoint whose metadata is not a trainer\'s is refused with a reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dino-resume-'));
  try {
    const path = join(dir, 'bad.safetensors');
    const trainer = new DinoTrainer(config, itersPerEpoch);
    const { tensors, meta } = trainer.state();
    const bad = (patch: Record<string, unknown>, reason: RegExp) => {
      saveCheckpoint(path, { tensors, meta: { ...meta, ...patch } as typeof meta });
      t.throws(() => loadTrainerCheckpoint(path), reason);
    };
    const args = meta.args as Record<string, unknown>;
    bad({ args: { ...args, lr: 'fast' } }, /argument 'lr' should be a number, got "fast"/);
    bad({ args: { ...args, evil: 1 } }, /unknown argument 'evil'/);
    bad({ iteration: -1 }, /iteration -1 is outside this run/);
    bad({ iters_per_epoch: 'x' }, /not written by a trainer/);
    bad({ optimizer: { param_groups: 3 } }, /optimizer/);
    bad({ rng: { generator: { s: [0, 0, 0, 0], spare: null } } }, /invalid generator state/);
    bad({ iteration: 10 ** 6 }, /iteration 1000000 is outside this run/);
    saveCheckpoint(path, { tensors: tensors.filter(([k]) => !k.startsWith('teacher.')), meta });
    t.throws(() => loadTrainerCheckpoint(path), /missing \["backbone.cls_token"/);
    trainer.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
