// One full DINO training step on a GPU (DinoTrainer.step on cuda:0): images per second and peak device
// memory, at the official training size. The PyTorch side is bench/gpu_step_torch.py (--torch runs it
// in a child process of the same run, as autocast fp16, its default, and as float32).
//
//   npm run bench:gpu -- [--device cuda:0] [--arch vit_small] [--batch 64] [--out-dim 65536]
//                        [--warmup 2] [--steps 10] [--tf32] [--torch] [--python python3] [--json]
//
// ViT /16, 2 global crops of 224 px and 8 local crops of 96 px per image (random, seeded, made once on
// the host: no data pipeline), main_dino.py's defaults otherwise (batch 64, out_dim 65536, normalised
// last layer, no batch norm in the head, drop path 0.1, clipping 3.0, the last layer frozen in epoch 0,
// AdamW, teacher EMA). float32; --tf32 lets the GEMMs use TF32 tensor cores. Each step uploads its
// crops from host memory, as a step fed by the loader does. The warm-up steps are not timed (the
// caching allocator fills, the optimizer state is made); then each timed step ends with a wait for the
// device, so the times include all the work queued. Peak memory is the allocator's peak of bytes in use
// over the timed steps (reset after the warm-up): the parameters, the optimizer state and the step's
// transient tensors, as PyTorch's max_memory_allocated counts them.
//
// Where no CUDA device is usable it says why and exits 0: there is nothing to measure. (--device cpu runs
// the same harness on the CPU, at a size given small, to check it without a GPU.)
//
// Imports no module that loads sharp, so the device check (scripts/device-check.ts) can run it from
// the compiled JavaScript without node_modules.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { addon, packageRoot } from '../lib/engine/native.ts';
import { Generator } from '../lib/engine/random.ts';
import { dispose } from '../lib/engine/scope.ts';
import { tensor, type Tensor } from '../lib/engine/tensor.ts';
import { ARCHITECTURES, DinoTrainer, type Architecture } from '../lib/train/trainer.ts';

export interface GpuStepOptions {
  device?: string;
  arch?: Architecture;
  batch?: number;
  outDim?: number;
  warmup?: number;
  steps?: number;
  // Let float32 GEMMs use TF32 tensor cores (addon.setAllowTF32) for this run; restored afterwards.
  tf32?: boolean;
  seed?: number;
  // Stop timing new steps once this many seconds have passed in the timed loop (at least one step runs).
  maxSeconds?: number;
}

export interface GpuStepResult {
  device: string;
  arch: Architecture;
  patchSize: number;
  batch: number;
  globalCrops: number;
  globalSize: number;
  localCrops: number;
  localSize: number;
  outDim: number;
  precision: 'float32' | 'tf32';
  warmup: number;
  steps: number;
  // Building the trainer (host initialisation and the upload), and each warm-up step, in seconds.
  buildSeconds: number;
  warmupSeconds: number[];
  // Every timed step, in seconds.
  stepSeconds: number[];
  medianStepSeconds: number;
  fastestStepSeconds: number;
  imagesPerSecond: number;
  // The allocator's peak of bytes in use over the timed steps; what was in use before the trainer was
  // built; and what the allocator held (in use or cached) at the end.
  peakBytes: number;
  inUseBeforeBytes: number;
  reservedBytes: number;
  losses: number[];
}

const PATCH_SIZE = 16;
const GLOBAL_SIZE = 224;
const LOCAL_SIZE = 96;
const LOCAL_CROPS = 8;

// Null where a CUDA device is usable, else why not.
export function cudaUnusable(): string | null {
  const cuda = addon.buildInfo().cuda;
  if (!cuda.compiled) return 'this build of the addon has no CUDA backend';
  if (!cuda.usable) return `no usable CUDA device (${cuda.reason})`;
  return null;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

export function gpuStepBench(opts: GpuStepOptions = {}): GpuStepResult {
  const device = opts.device ?? 'cuda:0';
  const arch = opts.arch ?? 'vit_small';
  const batch = opts.batch ?? 64;
  const outDim = opts.outDim ?? 65536;
  const warmup = opts.warmup ?? 2;
  const steps = opts.steps ?? 10;
  const seed = opts.seed ?? 0;
  const tf32 = opts.tf32 ?? false;
  if (!(arch in ARCHITECTURES)) throw new Error(`arch must be one of ${Object.keys(ARCHITECTURES).join(', ')}, got '${arch}'`);
  for (const [name, v] of [['batch', batch], ['outDim', outDim], ['steps', steps]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be a non-negative integer, got ${warmup}`);

  const gen = new Generator(seed);
  const crop = (size: number): Tensor => tensor(gen.normalArray(batch * 3 * size * size), [batch, 3, size, size]).keep();
  const crops = [crop(GLOBAL_SIZE), crop(GLOBAL_SIZE), ...Array.from({ length: LOCAL_CROPS }, () => crop(LOCAL_SIZE))];

  // (An addon from before the TF32 switch has neither; float32 is then all it does.)
  const tf32Before = addon.buildInfo().cuda.allowTF32 ?? false;
  if (tf32 || tf32Before) addon.setAllowTF32(tf32);
  let trainer: DinoTrainer | undefined;
  try {
    addon.emptyCache(device);
    const inUseBefore = addon.memoryStats(device).inUse;
    let start = now();
    // Every step falls in epoch 0, as the first steps of a run do (the last layer frozen).
    trainer = new DinoTrainer(
      { arch, patchSize: PATCH_SIZE, imgSize: GLOBAL_SIZE, outDim, batchSize: batch, localCropsNumber: LOCAL_CROPS, globalCropsSize: GLOBAL_SIZE, localCropsSize: LOCAL_SIZE, seed },
      warmup + steps,
      { device },
    );
    // The smallest teacher parameter: reading it back waits for everything queued before it (the
    // device runs the step's work in order), which the step's own read of the loss does not cover.
    const t = trainer;
    const probe = t.teacher.parameters().reduce((a, b) => (b.size < a.size ? b : a));
    const sync = (): void => void probe.data();
    sync();
    const buildSeconds = now() - start;

    const losses: number[] = [];
    const warmupSeconds: number[] = [];
    for (let i = 0; i < warmup; i++) {
      start = now();
      losses.push(t.step(crops).loss);
      sync();
      warmupSeconds.push(now() - start);
    }
    addon.resetPeak(device);
    const stepSeconds: number[] = [];
    const loopStart = now();
    for (let i = 0; i < steps; i++) {
      if (i > 0 && opts.maxSeconds !== undefined && now() - loopStart > opts.maxSeconds) break;
      start = now();
      losses.push(t.step(crops).loss);
      sync();
      stepSeconds.push(now() - start);
    }
    const stats = addon.memoryStats(device);
    const med = median(stepSeconds);
    return {
      device,
      arch,
      patchSize: PATCH_SIZE,
      batch,
      globalCrops: 2,
      globalSize: GLOBAL_SIZE,
      localCrops: LOCAL_CROPS,
      localSize: LOCAL_SIZE,
      outDim,
      precision: tf32 ? 'tf32' : 'float32',
      warmup,
      steps: stepSeconds.length,
      buildSeconds,
      warmupSeconds,
      stepSeconds,
      medianStepSeconds: med,
      fastestStepSeconds: Math.min(...stepSeconds),
      imagesPerSecond: batch / med,
      peakBytes: stats.peak,
      inUseBeforeBytes: inUseBefore,
      reservedBytes: stats.inUse + stats.cached,
      losses,
    };
  } finally {
    trainer?.dispose();
    dispose(crops);
    if (tf32 || tf32Before) addon.setAllowTF32(tf32Before);
    try {
      addon.emptyCache(device);
    } catch {
      // The device may be the reason we are here; the error that brought us here is the one to see.
    }
  }
}

// The PyTorch side (bench/gpu_step_torch.py) as a child process: its JSON result.
export interface TorchGpuStepResult {
  torch: string;
  gpu: string;
  precision: string;
  imagesPerSecond: number;
  medianStepSeconds: number;
  // Null on the CPU.
  peakBytes: number | null;
  [key: string]: unknown;
}

function runTorch(python: string, args: string[]): TorchGpuStepResult {
  // From the package root: this file also runs compiled, from dist/bench.
  const script = join(packageRoot(), 'bench', 'gpu_step_torch.py');
  return JSON.parse(execFileSync(python, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 }));
}

function main(): void {
  const { values } = parseArgs({
    options: {
      device: { type: 'string', default: 'cuda:0' },
      arch: { type: 'string', default: 'vit_small' },
      batch: { type: 'string', default: '64' },
      'out-dim': { type: 'string', default: '65536' },
      warmup: { type: 'string', default: '2' },
      steps: { type: 'string', default: '10' },
      tf32: { type: 'boolean', default: false },
      // Also run bench/gpu_step_torch.py, with autocast fp16 (the official default) and in float32.
      torch: { type: 'boolean', default: false },
      python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
      // Print the result as JSON instead of a table.
      json: { type: 'boolean', default: false },
    },
  });
  // --device cpu runs the same harness on the CPU (slowly: give it a small size), to check it.
  const why = values.device!.startsWith('cuda') ? cudaUnusable() : null;
  if (why !== null) {
    console.log(`bench:gpu: ${why}; nothing to measure.`);
    return;
  }
  const opts = {
    device: values.device!,
    arch: values.arch as Architecture,
    batch: Number(values.batch),
    outDim: Number(values['out-dim']),
    warmup: Number(values.warmup),
    steps: Number(values.steps),
    tf32: values.tf32!,
  };
  const ours = gpuStepBench(opts);
  const torchArgs = ['--device', opts.device, '--arch', opts.arch, '--batch', String(opts.batch), '--out-dim', String(opts.outDim), '--warmup', String(opts.warmup), '--steps', String(opts.steps)];
  const theirs = values.torch
    ? { fp16: runTorch(values.python!, torchArgs), fp32: runTorch(values.python!, [...torchArgs, '--fp32', ...(opts.tf32 ? ['--tf32'] : [])]) }
    : undefined;
  if (values.json) {
    console.log(JSON.stringify({ ours, torch: theirs }, null, 2));
    return;
  }
  const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(2);
  const row = (label: string, ...cells: string[]) => console.log(label.padEnd(30) + cells.map((c) => c.padStart(14)).join(''));
  console.log(`DINO training step on ${ours.device}: ${ours.arch}/${ours.patchSize}, batch ${ours.batch} (2 x ${ours.globalSize} px + ${ours.localCrops} x ${ours.localSize} px crops), out_dim ${ours.outDim}, dino-ts ${ours.precision}`);
  console.log(`${ours.warmup} warm-up step(s), ${ours.steps} timed; build ${ours.buildSeconds.toFixed(1)} s, warm-up steps ${ours.warmupSeconds.map((s) => s.toFixed(2)).join(' ')} s\n`);
  if (theirs === undefined) {
    row('seconds per step (median)', ours.medianStepSeconds.toFixed(3));
    row('images per second', ours.imagesPerSecond.toFixed(1));
    row('peak memory in use (GiB)', gib(ours.peakBytes));
  } else {
    const { fp16, fp32 } = theirs;
    console.log(`PyTorch ${fp16.torch} on ${fp16.gpu}, eager; ratios are dino-ts / PyTorch\n`);
    const label = (r: TorchGpuStepResult) => (r.precision === 'autocast float16' ? 'torch fp16' : `torch ${r.precision}`);
    row('', 'dino-ts', label(fp16), 'ratio', label(fp32), 'ratio');
    const speed = (x: number, a: number, b: number) => [x.toFixed(1), a.toFixed(1), (x / a).toFixed(2), b.toFixed(1), (x / b).toFixed(2)];
    row('images per second', ...speed(ours.imagesPerSecond, fp16.imagesPerSecond, fp32.imagesPerSecond));
    const memory = (b: number | null) => (b === null ? ['-', '-'] : [gib(b), (ours.peakBytes / b).toFixed(2)]);
    row('peak memory in use (GiB)', gib(ours.peakBytes), ...memory(fp16.peakBytes), ...memory(fp32.peakBytes));
    console.log('speed above 1: we are faster; memory above 1: we use more');
  }
  console.log(`\nevery timed step (s): ${ours.stepSeconds.map((s) => s.toFixed(3)).join(' ')}`);
}

const self = process.argv[1];
if (self !== undefined && import.meta.url === pathToFileURL(self).href) main();
