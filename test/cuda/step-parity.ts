// One DINO training step on the CPU and on cuda:0 from the same state and the same crops: the loss,
// the teacher entropy, every raw gradient, the updated student, the teacher after its EMA and the
// centre must agree. Two steps, so the second runs on optimizer state that lives on the GPU. Plain
// data in and out, so that the tap test and the device check (no node_modules there) both use it.
import { Generator } from '../../lib/engine/random.ts';
import { tensor, type Tensor } from '../../lib/engine/tensor.ts';
import { tidy } from '../../lib/engine/scope.ts';
import { DinoTrainer, type DinoConfig } from '../../lib/train/trainer.ts';

// Small enough for the CPU side to take a second, yet every layer of the real step is there: patch
// embedding with a position embedding interpolated for the local crops, attention, MLP, the head with
// batch norm and the weight-normalised last layer, drop path, clipping and the frozen last layer.
export const STEP_CONFIG: Partial<DinoConfig> = {
  embedDim: 64,
  depth: 2,
  numHeads: 4,
  patchSize: 8,
  imgSize: 32,
  globalCropsSize: 32,
  localCropsSize: 16,
  localCropsNumber: 2,
  outDim: 512,
  headHiddenDim: 128,
  headBottleneckDim: 32,
  useBnInHead: true,
  batchSize: 4,
  epochs: 2,
  warmupEpochs: 1,
  freezeLastLayer: 1,
  dropPathRate: 0.1,
  // Large enough that the weights visibly move in two steps (the first is at lr 0, warm-up).
  lr: 0.05,
  seed: 3,
};

export interface Agreement {
  what: string;
  // Largest |cuda - cpu| over the elements, and the largest |cpu| (the scale it is judged against).
  maxAbsErr: number;
  scale: number;
  ok: boolean;
}

export interface StepParityResult {
  ok: boolean;
  device: string;
  steps: { lossCpu: number; lossCuda: number; entropyCpu: number; entropyCuda: number }[];
  checked: number;
  failures: Agreement[];
  worst: Agreement[];
}

function crops(batch: number, seed: number): { data: Float32Array; shape: number[] }[] {
  const g = new Generator(seed);
  const sizes = [32, 32, 16, 16];
  return sizes.map((s) => {
    const shape = [batch, 3, s, s];
    return { data: g.normalArray(batch * 3 * s * s), shape };
  });
}

interface StepRecord {
  loss: number;
  entropy: number;
  grads: Map<string, Float32Array>;
}

function run(device: string, steps: number): { records: StepRecord[]; after: Map<string, Float32Array> } {
  const trainer = new DinoTrainer(STEP_CONFIG, 4, { device });
  try {
    const records: StepRecord[] = [];
    for (let s = 0; s < steps; s++) {
      const grads = new Map<string, Float32Array>();
      const r = tidy(() => {
        const views: Tensor[] = crops(STEP_CONFIG.batchSize!, 100 + s).map((c) => tensor(c.data, c.shape));
        return trainer.step(views, {
          onGradients: (named) => {
            for (const [name, g] of named) if (g !== null) grads.set(name, g.data());
          },
        });
      });
      records.push({ loss: r.loss, entropy: r.teacherEntropy, grads });
    }
    const after = new Map<string, Float32Array>();
    for (const [name, t] of trainer.state().tensors) if (!name.startsWith('optimizer.')) after.set(name, t.data());
    return { records, after };
  } finally {
    trainer.dispose();
  }
}

export function agreement(what: string, cuda: ArrayLike<number>, cpu: ArrayLike<number>, tol: (scale: number) => number): Agreement {
  let maxAbsErr = cuda.length === cpu.length ? 0 : Infinity;
  let scale = 0;
  for (let i = 0; i < Math.min(cuda.length, cpu.length); i++) {
    const e = Math.abs(cuda[i] - cpu[i]);
    if (!(e <= maxAbsErr)) maxAbsErr = e;
    scale = Math.max(scale, Math.abs(cpu[i]));
  }
  return { what, maxAbsErr, scale, ok: maxAbsErr <= tol(scale) };
}

export function stepParity(device = 'cuda:0', steps = 2): StepParityResult {
  const cpu = run('cpu', steps);
  const gpu = run(device, steps);
  const all: Agreement[] = [];
  // Float32 sums in another order, through a dozen layers: relative 1e-3 of each tensor's own scale.
  const relative = (rel: number) => (scale: number) => rel * scale + 1e-7;
  cpu.records.forEach((c, s) => {
    const g = gpu.records[s];
    all.push(agreement(`step ${s} loss`, [g.loss], [c.loss], relative(1e-4)));
    all.push(agreement(`step ${s} teacher entropy`, [g.entropy], [c.entropy], relative(1e-4)));
    // A gradient that is zero in exact arithmetic (the bias of a layer that feeds a training-mode batch
    // norm) comes out as rounding noise on both devices, in different orders: each gradient is also
    // allowed an error of 1e-5 of the largest gradient of the step, the scale that noise comes from.
    let largest = 0;
    for (const grad of c.grads.values()) for (const v of grad) largest = Math.max(largest, Math.abs(v));
    for (const [name, grad] of c.grads) {
      all.push(agreement(`step ${s} gradient ${name}`, g.grads.get(name) ?? [], grad, (scale) => 1e-3 * scale + 1e-5 * largest));
    }
  });
  // After AdamW's first steps every update is about lr in size whatever the gradient, so a gradient
  // that is zero up to rounding may move a weight by +lr on one device and -lr on the other: weights
  // are judged against the tensor's scale plus twice the largest learning rate.
  const lr = (STEP_CONFIG.batchSize! / 256) * STEP_CONFIG.lr!;
  for (const [name, value] of cpu.after) {
    all.push(agreement(`after ${steps} steps ${name}`, gpu.after.get(name) ?? [], value, (scale) => 1e-4 * scale + 2 * lr + 1e-7));
  }
  const failures = all.filter((a) => !a.ok);
  const worst = [...all].sort((a, b) => b.maxAbsErr / (b.scale || 1) - a.maxAbsErr / (a.scale || 1)).slice(0, 5);
  return {
    ok: failures.length === 0,
    device,
    steps: cpu.records.map((c, s) => ({ lossCpu: c.loss, lossCuda: gpu.records[s].loss, entropyCpu: c.entropy, entropyCuda: gpu.records[s].entropy })),
    checked: all.length,
    failures,
    worst,
  };
}
