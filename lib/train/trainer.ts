// The DINO training step exactly as main_dino.py orders it: schedules for this iteration, teacher
// forward (no gradients, global crops only), student forward on every crop, loss, backward, per-tensor
// clipping, the last layer frozen during the first epoch(s), AdamW, the teacher EMA, and the centre
// update. The trainer owns the student, the teacher, the loss (its centre), the optimizer, the
// schedules and the random generator, and serialises all of them for checkpoints.
import { Generator, type GeneratorState } from '../engine/random.ts';
import { tidy } from '../engine/scope.ts';
import { shapeText, toDevice, withDevice, type Tensor } from '../engine/tensor.ts';
import { noGrad, valueAndGrads } from '../autograd/tape.ts';
import { DINOLoss } from '../loss/dino-loss.ts';
import { DINOHead } from '../model/head.ts';
import { MultiCropWrapper } from '../model/multicrop.ts';
import { VisionTransformer, sampleDropPathMasks, type DropPathMasks } from '../model/vit.ts';
import { AdamW } from '../optim/adamw.ts';
import { DINO_AUGMENTATION_DEFAULTS } from '../augment/dino.ts';
import { adamwFromCheckpoint, adamwToCheckpoint, type CheckpointMeta } from '../io/checkpoint.ts';
import { updateTeacher } from '../optim/ema.ts';
import { cancelGradientsLastLayer, clipGradients, nameGrads, type NamedGrads } from '../optim/grads.ts';
import { getParamsGroups, setSchedules } from '../optim/param-groups.ts';
import { cosineScheduler } from '../optim/schedules.ts';

export const ARCHITECTURES = {
  vit_tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  vit_small: { embedDim: 384, depth: 12, numHeads: 6 },
  vit_base: { embedDim: 768, depth: 12, numHeads: 12 },
} as const;

export type Architecture = keyof typeof ARCHITECTURES;

// main_dino.py's arguments (camelCase) with its defaults; the model fields after them describe
// architectures beyond the three named ones (small models for small images, tests).
export interface DinoConfig {
  arch: Architecture;
  patchSize: number;
  outDim: number;
  normLastLayer: boolean;
  momentumTeacher: number;
  useBnInHead: boolean;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  weightDecay: number;
  weightDecayEnd: number;
  clipGrad: number;
  batchSize: number;
  epochs: number;
  freezeLastLayer: number;
  lr: number;
  warmupEpochs: number;
  minLr: number;
  dropPathRate: number;
  // Only AdamW, the official default, is implemented; the field keeps the official argument.
  optimizer: 'adamw';
  // DataAugmentationDINO: RandomResizedCrop scale ranges and output sizes (224 and 96 officially;
  // small images need small crops).
  globalCropsScale: [number, number];
  localCropsNumber: number;
  localCropsScale: [number, number];
  globalCropsSize: number;
  localCropsSize: number;
  seed: number;
  // Overrides of the architecture's width, depth and heads (all three or none).
  embedDim?: number;
  depth?: number;
  numHeads?: number;
  // The image size the position embeddings are made for ((imgSize / patchSize)^2 of them).
  imgSize: number;
  headHiddenDim: number;
  headBottleneckDim: number;
}

export const OPTIMIZERS = ['adamw'] as const;

export const DEFAULT_CONFIG: Readonly<DinoConfig> = Object.freeze({
  arch: 'vit_small',
  patchSize: 16,
  outDim: 65536,
  normLastLayer: true,
  momentumTeacher: 0.996,
  useBnInHead: false,
  warmupTeacherTemp: 0.04,
  teacherTemp: 0.04,
  warmupTeacherTempEpochs: 0,
  weightDecay: 0.04,
  weightDecayEnd: 0.4,
  clipGrad: 3.0,
  batchSize: 64,
  epochs: 100,
  freezeLastLayer: 1,
  lr: 0.0005,
  warmupEpochs: 10,
  minLr: 1e-6,
  dropPathRate: 0.1,
  optimizer: 'adamw',
  ...DINO_AUGMENTATION_DEFAULTS,
  seed: 0,
  imgSize: 224,
  headHiddenDim: 2048,
  headBottleneckDim: 256,
});

// The model in words: the architecture's name, or the custom width, depth and heads.
export function describeModel(c: DinoConfig): string {
  const custom = c.embedDim !== undefined ? `ViT (dim ${c.embedDim}, depth ${c.depth}, ${c.numHeads} heads)` : c.arch;
  return `${custom}/${c.patchSize}`;
}

export interface TrainerOptions {
  // Where the student, teacher, centre and optimizer state live and every step runs: 'cpu' (default)
  // or 'cuda:N'. Only the logged scalars come back to the host each step.
  device?: string;
}

export interface StepOptions {
  // The student's stochastic-depth masks; drawn from the trainer's generator when not given.
  dropPathMasks?: DropPathMasks;
  // Called inside the step (the tensors are freed when it ends): the head outputs, and the raw
  // gradients before clipping and freezing.
  onOutputs?: (teacherOutput: Tensor, studentOutput: Tensor) => void;
  onGradients?: (grads: NamedGrads) => void;
}

export interface StepResult {
  iteration: number;
  epoch: number;
  loss: number;
  // Entropy of the teacher's centred, sharpened distribution (ln(outDim) when collapsed to uniform).
  teacherEntropy: number;
  lr: number;
  weightDecay: number;
  momentum: number;
}

// Thrown by step() when the loss is NaN or infinite; nothing was updated.
export class NonFiniteLossError extends Error {
  constructor(readonly iteration: number, readonly loss: number) {
    super(`the loss is ${loss} at iteration ${iteration}: stopping before any update`);
  }
}

// What the trainer puts in a checkpoint (docs/CHECKPOINTS.md): tensors by name (student.*, teacher.*,
// loss.center, optimizer.<parameter>.exp_avg / exp_avg_sq) and JSON for everything else.
export interface TrainerState {
  tensors: [string, Tensor][];
  meta: CheckpointMeta;
}

// The configuration under the official argument names (snake_case, batch_size_per_gpu), as the
// official checkpoints store their args.
const ARG_NAMES: Record<string, string> = { batchSize: 'batch_size_per_gpu' };
const argName = (key: string): string => ARG_NAMES[key] ?? key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

export function configToArgs(c: DinoConfig): { [arg: string]: string | number | boolean | number[] } {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [argName(k), Array.isArray(v) ? [...v] : v]));
}

// The inverse, checking every value's type against the defaults' (the args come from a file).
export function argsToConfig(args: unknown): Partial<DinoConfig> {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new Error('args should be an object');
  const byArg = new Map(Object.keys({ ...DEFAULT_CONFIG, embedDim: 0, depth: 0, numHeads: 0 }).map((k) => [argName(k), k]));
  const config: Record<string, unknown> = {};
  for (const [arg, value] of Object.entries(args)) {
    const key = byArg.get(arg);
    if (key === undefined) throw new Error(`unknown argument '${arg}'`);
    const example = (DEFAULT_CONFIG as Record<string, unknown>)[key];
    if (Array.isArray(example)) {
      if (!Array.isArray(value) || value.length !== example.length || !value.every(Number.isFinite)) throw new Error(`argument '${arg}' should be ${example.length} numbers, got ${JSON.stringify(value)}`);
    } else {
      const want = example === undefined ? 'number' : typeof example;
      if (typeof value !== want) throw new Error(`argument '${arg}' should be a ${want}, got ${JSON.stringify(value)}`);
    }
    config[key] = value;
  }
  return config as Partial<DinoConfig>;
}

function buildModel(c: DinoConfig, dropPathRate: number, generator: Generator | undefined): MultiCropWrapper {
  const dims = c.embedDim !== undefined || c.depth !== undefined || c.numHeads !== undefined ? { embedDim: c.embedDim!, depth: c.depth!, numHeads: c.numHeads! } : ARCHITECTURES[c.arch];
  if (!(dims.embedDim > 0 && dims.depth > 0 && dims.numHeads > 0)) throw new Error('DinoTrainer: embedDim, depth and numHeads go together: give all three or none');
  const backbone = new VisionTransformer({ ...dims, patchSize: c.patchSize, imgSize: c.imgSize, dropPathRate, generator });
  const head = new DINOHead({
    inDim: dims.embedDim,
    outDim: c.outDim,
    useBn: c.useBnInHead,
    normLastLayer: c.normLastLayer,
    hiddenDim: c.headHiddenDim,
    bottleneckDim: c.headBottleneckDim,
    generator,
  });
  return new MultiCropWrapper(backbone, head);
}

export class DinoTrainer {
  readonly config: DinoConfig;
  readonly student: MultiCropWrapper;
  readonly teacher: MultiCropWrapper;
  readonly loss: DINOLoss;
  readonly optimizer: AdamW;
  readonly generator: Generator;
  readonly lrSchedule: Float64Array;
  readonly wdSchedule: Float64Array;
  readonly momentumSchedule: Float64Array;
  readonly device: string;
  // Global iteration: the next step is this one.
  iteration = 0;

  constructor(config: Partial<DinoConfig>, readonly itersPerEpoch: number, opts: TrainerOptions = {}) {
    const c: DinoConfig = { ...DEFAULT_CONFIG, ...config };
    if (!(c.arch in ARCHITECTURES)) throw new Error(`DinoTrainer: unknown arch '${c.arch}' (expected ${Object.keys(ARCHITECTURES).join(', ')})`);
    if (!Number.isInteger(itersPerEpoch) || itersPerEpoch < 1) throw new RangeError(`DinoTrainer: itersPerEpoch must be a positive integer, got ${itersPerEpoch}`);
    if (!Number.isInteger(c.epochs) || c.epochs < 1) throw new RangeError(`DinoTrainer: epochs must be a positive integer, got ${c.epochs}`);
    if (!(OPTIMIZERS as readonly string[]).includes(c.optimizer)) throw new Error(`DinoTrainer: optimizer '${c.optimizer}' is not implemented (available: ${OPTIMIZERS.join(', ')})`);
    if (!(c.clipGrad >= 0)) throw new RangeError(`DinoTrainer: clipGrad must be >= 0 (0 turns clipping off), got ${c.clipGrad}`);
    this.config = c;
    this.device = opts.device ?? 'cpu';
    this.generator = new Generator(c.seed);
    // The initial values are drawn on the host from the generator, so they do not depend on the device.
    this.student = withDevice(this.device, () => buildModel(c, c.dropPathRate, this.generator));
    this.teacher = withDevice(this.device, () => buildModel(c, 0, undefined));
    // The teacher starts as the student and is never trained: only the EMA moves it.
    this.teacher.loadStateDict(this.student.stateDict());
    this.loss = new DINOLoss({
      outDim: c.outDim,
      ncrops: c.localCropsNumber + 2,
      warmupTeacherTemp: c.warmupTeacherTemp,
      teacherTemp: c.teacherTemp,
      warmupTeacherTempEpochs: c.warmupTeacherTempEpochs,
      nepochs: c.epochs,
      device: this.device,
    });
    this.optimizer = new AdamW(getParamsGroups(this.student.namedTrainableParameters()));
    // The linear scaling rule of the official code, for one process.
    this.lrSchedule = cosineScheduler((c.lr * c.batchSize) / 256, c.minLr, c.epochs, itersPerEpoch, c.warmupEpochs);
    this.wdSchedule = cosineScheduler(c.weightDecay, c.weightDecayEnd, c.epochs, itersPerEpoch);
    this.momentumSchedule = cosineScheduler(c.momentumTeacher, 1, c.epochs, itersPerEpoch);
  }

  get epoch(): number {
    return Math.floor(this.iteration / this.itersPerEpoch);
  }

  get totalIterations(): number {
    return this.lrSchedule.length;
  }

  // One training step on crops [global 1, global 2, local 1, ...], each (B, 3, H, W).
  step(crops: readonly Tensor[], opts: StepOptions = {}): StepResult {
    const c = this.config;
    const it = this.iteration;
    if (it >= this.totalIterations) throw new Error(`DinoTrainer: all ${this.totalIterations} iterations are done`);
    if (crops.length !== c.localCropsNumber + 2) {
      throw new Error(`DinoTrainer: expected ${c.localCropsNumber + 2} crops (2 global + ${c.localCropsNumber} local), got ${crops.length}`);
    }
    const batch = crops[0].shape[0];
    const bad = crops.find((x) => x.rank !== 4 || x.shape[0] !== batch);
    if (bad !== undefined) throw new Error(`DinoTrainer: every crop must be (B, C, H, W) with B = ${batch}, got ${shapeText(bad.shape)}`);
    const epoch = this.epoch;
    const result = tidy(() => {
      // Batches come from the loader in host memory; each crop is one upload through pinned staging.
      const views = crops.map((x) => toDevice(x, this.device));
      setSchedules(this.optimizer, this.lrSchedule[it], this.wdSchedule[it]);
      const teacherOutput = noGrad(() => this.teacher.forward(views.slice(0, 2)));
      const params = this.student.namedTrainableParameters();
      const masks = opts.dropPathMasks ?? sampleDropPathMasks(this.generator);
      let teacherEntropy = NaN;
      const { value, grads } = valueAndGrads(() => {
        const studentOutput = this.student.forward(views, { dropPathMasks: masks });
        opts.onOutputs?.(teacherOutput, studentOutput);
        const d = this.loss.forwardWithDiagnostics(studentOutput, teacherOutput, epoch);
        teacherEntropy = d.teacherEntropy.item();
        return d.loss;
      }, params.map(([, p]) => p));
      const loss = value.item();
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(it, loss);
      const named = nameGrads(params, grads);
      opts.onGradients?.(named);
      if (c.clipGrad > 0) clipGradients(named, c.clipGrad);
      cancelGradientsLastLayer(epoch, c.freezeLastLayer, named);
      this.optimizer.step(named);
      updateTeacher(this.student, this.teacher, this.momentumSchedule[it]);
      this.loss.updateCenter(teacherOutput);
      return { iteration: it, epoch, loss, teacherEntropy, lr: this.lrSchedule[it], weightDecay: this.wdSchedule[it], momentum: this.momentumSchedule[it] };
    });
    this.iteration++;
    return result;
  }

  // The live state (tensors are the trainer's own: write them out, do not dispose them).
  state(): TrainerState {
    const opt = adamwToCheckpoint(this.optimizer.stateDict());
    return {
      tensors: [...this.student.stateDict('student.'), ...this.teacher.stateDict('teacher.'), ...this.loss.stateDict('loss.'), ...opt.tensors],
      meta: {
        epoch: this.epoch,
        iteration: this.iteration,
        iters_per_epoch: this.itersPerEpoch,
        args: configToArgs(this.config),
        optimizer: opt.meta,
        rng: { generator: this.generator.getState() as unknown as CheckpointMeta },
      },
    };
  }

  // A trainer continuing from a saved state: the same configuration, weights, optimizer moments,
  // centre, iteration and random stream, so it draws and computes what an uninterrupted run would.
  // The state may come from a file: every field is checked, and errors say which. The device is the
  // caller's choice: a run saved on one device resumes on another.
  static restore(tensors: ReadonlyMap<string, Tensor>, meta: CheckpointMeta, opts: TrainerOptions = {}): DinoTrainer {
    const { iteration, iters_per_epoch: itersPerEpoch, args, rng } = meta;
    if (!Number.isSafeInteger(itersPerEpoch) || !Number.isSafeInteger(iteration)) throw new Error('the checkpoint has no iteration and iters_per_epoch: it was not written by a trainer');
    const t = new DinoTrainer(argsToConfig(args), itersPerEpoch as number, opts);
    try {
      if ((iteration as number) < 0 || (iteration as number) > t.totalIterations) {
        throw new Error(`checkpoint iteration ${iteration} is outside this run's 0..${t.totalIterations}`);
      }
      const under = (prefix: string): [string, Tensor][] =>
        [...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]): [string, Tensor] => [k.slice(prefix.length), v]);
      t.student.loadStateDict(under('student.'));
      t.teacher.loadStateDict(under('teacher.'));
      t.loss.loadStateDict(under('loss.'));
      t.optimizer.loadStateDict(adamwFromCheckpoint(tensors, meta.optimizer));
      const generator = rng !== null && typeof rng === 'object' && !Array.isArray(rng) ? rng.generator : undefined;
      t.generator.setState(generator as unknown as GeneratorState);
      t.iteration = iteration as number;
      return t;
    } catch (e) {
      t.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.student.dispose();
    this.teacher.dispose();
    this.loss.dispose();
    this.optimizer.dispose();
  }
}
