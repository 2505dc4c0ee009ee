// One full DINO training step on the CPU (DinoTrainer.step) against the same step in PyTorch with the
// official modules (bench/step_torch.py, a child process of the same run): seconds per step, images per
// second, peak memory, and where the time goes, phase by phase.
//
//   npm run bench:step -- [--arch vit_small] [--batch 16] [--out-dim 65536] [--steps 3] [--rounds 1]
//                         [--threads N] [--python python3] [--profile]
//
// Both sides: ViT /16, 2 global crops of 224 px and 8 local crops of 96 px per image (random, seeded,
// made before the models), main_dino.py's defaults otherwise (drop path 0.1, head 2048/256 without
// batch norm, normalised last layer, clipping 3.0, last layer frozen in epoch 0, AdamW, teacher EMA),
// float32 on the same number of threads; PyTorch runs eager (no autocast on the CPU). Each round builds
// both trainers in turn (ours, then PyTorch's: the two do not fit in memory together at the default
// size), runs one warm-up step and then the timed steps; medians are over the timed steps of every
// round. Peak memory (first round) is the peak RSS of each process minus its RSS right before the
// models are built, so that the runtimes' own baselines cancel; ours also as our allocator's peak of
// bytes in use.
//
// The machine may be shared and noisy: only the ratios of one run mean anything, and more rounds spread
// other processes' load over both sides. Other processes only ever add time, so the fastest step is
// printed too, and CPU seconds (every thread of the process), which move less than wall time when other
// processes take cores away.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addon, dispose, Generator, shapeText, tensor, type Tensor } from '../lib/index.ts';
import { ARCHITECTURES, DinoTrainer, type Architecture } from '../lib/train/trainer.ts';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'vit_small' },
    batch: { type: 'string', default: '16' },
    'out-dim': { type: 'string', default: '65536' },
    steps: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '1' },
    threads: { type: 'string' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
    // Also time every op on both sides (slows both down a little) and print the costliest.
    profile: { type: 'boolean', default: false },
  },
});
const arch = values.arch as Architecture;
if (!(arch in ARCHITECTURES)) throw new Error(`--arch must be one of ${Object.keys(ARCHITECTURES).join(', ')}, got '${arch}'`);
const batch = Number(values.batch);
const outDim = Number(values['out-dim']);
const steps = Number(values.steps);
const rounds = Number(values.rounds);
const threads = Number(values.threads ?? addon.buildInfo().threads);
const profile = values.profile!;
for (const [name, v] of [['batch', batch], ['out-dim', outDim], ['steps', steps], ['rounds', rounds], ['threads', threads]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`);
}
addon.setNumThreads(threads);

const warmup = 1;
const seed = 0;
const patchSize = 16;
const globalSize = 224;
const localSize = 96;
const localCrops = 8;
// Every step falls in epoch 0, as the first steps of a run do (the last layer frozen).
const itersPerEpoch = warmup + steps;

// The step's phases, in the order the official step runs them. The PyTorch side reports the same ones;
// its loss includes the centre update (the official DINOLoss.forward does it), so ours is added to the
// loss phase too; our loss phase also computes the teacher's entropy, a diagnostic the official step
// does not (a log-softmax over the 2B teacher rows).
const PHASES = ['teacher forward', 'student forward', 'loss + centre', 'backward', 'clip + freeze', 'AdamW', 'EMA + free'] as const;
type Phase = (typeof PHASES)[number];

interface SideResult {
  // Per timed step: wall seconds, CPU seconds, and wall seconds per phase.
  wall: number[];
  cpu: number[];
  phases: number[][];
  peakRssIncrease: number;
}

interface OurResult extends SideResult {
  // Our allocator's peak of bytes in use, and the bytes in use once the loss is computed (the forward
  // pass's tensors that the backward pass starts from), over what was in use before the models were built.
  allocatorPeakIncrease: number;
  allocatorAfterLossIncrease: number;
}

interface TorchResult extends SideResult {
  torch: string;
  threads: number;
  profile?: OpTime[];
}

interface OpTime {
  op: string;
  shapes: string;
  calls: number;
  seconds: number;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const cpuNow = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// --profile: every native op (they all go through addon.run) timed by phase, op and input shapes.
let currentPhase: Phase = PHASES[0];
let profiling = false;
const opTimes = new Map<string, OpTime & { phase: Phase }>();

function profileNativeOps(): void {
  const run = addon.run.bind(addon);
  addon.run = (op, inputs, attrs) => {
    if (!profiling) return run(op, inputs, attrs);
    const start = now();
    const outputs = run(op, inputs, attrs);
    const seconds = now() - start;
    const shapes = inputs.map((x) => shapeText(x.shape)).join(' ') + (op === 'matmul' ? ` ${JSON.stringify(attrs)}` : '');
    const key = `${currentPhase}|${op}|${shapes}`;
    const entry = opTimes.get(key) ?? { phase: currentPhase, op, shapes, calls: 0, seconds: 0 };
    entry.calls++;
    entry.seconds += seconds;
    opTimes.set(key, entry);
    return outputs;
  };
}

// Wraps one object's method to report each call's duration and its start and end times; the profile
// charges the ops run during the call, and after it, to the phases given.
function timeMethod<T extends object, K extends keyof T>(
  obj: T,
  key: K,
  phases: { during: Phase; after: Phase },
  onTime: (seconds: number, start: number, end: number) => void,
): void {
  const original = obj[key] as (...args: unknown[]) => unknown;
  obj[key] = ((...args: unknown[]) => {
    currentPhase = phases.during;
    const start = now();
    const result = original.apply(obj, args);
    const end = now();
    currentPhase = phases.after;
    onTime(end - start, start, end);
    return result;
  }) as T[K];
}

function runOurs(): OurResult {
  const gen = new Generator(seed);
  const crop = (size: number): Tensor => tensor(gen.normalArray(batch * 3 * size * size), [batch, 3, size, size]);
  const crops = [crop(globalSize), crop(globalSize), ...Array.from({ length: localCrops }, () => crop(localSize))];

  const rssBefore = process.memoryUsage.rss();
  addon.resetPeak('cpu');
  const inUseBefore = addon.memoryStats('cpu').inUse;
  const trainer = new DinoTrainer({ arch, patchSize, imgSize: globalSize, outDim, batchSize: batch, localCropsNumber: localCrops, seed }, itersPerEpoch);
  // Phase boundaries from the trainer's own objects (its code is not touched): the forwards, the loss,
  // AdamW and the centre are timed directly; the gradients hook marks the end of the backward pass.
  let marks: Record<string, number> = {};
  timeMethod(trainer.teacher, 'forward', { during: 'teacher forward', after: 'student forward' }, (s) => (marks.teacher = s));
  timeMethod(trainer.student, 'forward', { during: 'student forward', after: 'loss + centre' }, (s) => (marks.student = s));
  timeMethod(trainer.loss, 'forwardWithDiagnostics', { during: 'loss + centre', after: 'backward' }, (s, _, end) => {
    marks.loss = s;
    marks.lossEnd = end;
    marks.inUseAfterLoss = addon.memoryStats('cpu').inUse;
  });
  timeMethod(trainer.optimizer, 'step', { during: 'AdamW', after: 'EMA + free' }, (s, start, end) => ((marks.adamw = s), (marks.adamwStart = start), (marks.adamwEnd = end)));
  timeMethod(trainer.loss, 'updateCenter', { during: 'loss + centre', after: 'EMA + free' }, (s) => (marks.center = s));
  const onGradients = () => {
    marks.gradients = now();
    currentPhase = 'clip + freeze';
  };

  const result: OurResult = { wall: [], cpu: [], phases: [], peakRssIncrease: 0, allocatorPeakIncrease: 0, allocatorAfterLossIncrease: 0 };
  for (let i = 0; i < warmup + steps; i++) {
    marks = {};
    profiling = profile && i >= warmup;
    const [start, cpuStart] = [now(), cpuNow()];
    trainer.step(crops, { onGradients });
    const [end, cpuEnd] = [now(), cpuNow()];
    if (i < warmup) continue;
    result.wall.push(end - start);
    result.cpu.push(cpuEnd - cpuStart);
    result.phases.push([
      marks.teacher,
      marks.student,
      marks.loss + marks.center,
      marks.gradients - marks.lossEnd,
      marks.adamwStart - marks.gradients,
      marks.adamw,
      end - marks.adamwEnd - marks.center,
    ]);
  }
  profiling = false;
  // maxRSS is in kilobytes.
  result.peakRssIncrease = process.resourceUsage().maxRSS * 1024 - rssBefore;
  result.allocatorPeakIncrease = addon.memoryStats('cpu').peak - inUseBefore;
  result.allocatorAfterLossIncrease = marks.inUseAfterLoss - inUseBefore;
  trainer.dispose();
  dispose(crops);
  // Give the memory back before PyTorch's process needs it.
  addon.emptyCache('cpu');
  return result;
}

function runTorch(): TorchResult {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'step_torch.py');
  const spec = JSON.stringify({ arch, patchSize, batch, outDim, localCrops, globalSize, localSize, itersPerEpoch, warmup, steps, threads, seed, profile });
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  return JSON.parse(execFileSync(values.python!, [script, spec], { encoding: 'utf8', env, maxBuffer: 1 << 26 }));
}

if (profile) profileNativeOps();
const runs: { ours: OurResult; theirs: TorchResult }[] = [];
for (let r = 0; r < rounds; r++) runs.push({ ours: runOurs(), theirs: runTorch() });
const all = (side: 'ours' | 'theirs', field: 'wall' | 'cpu') => runs.flatMap((r) => r[side][field]);
const allPhases = (side: 'ours' | 'theirs') => runs.flatMap((r) => r[side].phases);
const [first, timed] = [runs[0], steps * rounds];

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const col = (s: string, w = 12): string => s.padStart(w);
const row = (label: string, ...cells: string[]) => console.log(label.padEnd(34) + cells.map((c) => col(c)).join(''));
const [oursWall, theirWall] = [median(all('ours', 'wall')), median(all('theirs', 'wall'))];
const [oursCpu, theirCpu] = [median(all('ours', 'cpu')), median(all('theirs', 'cpu'))];
const [oursBest, theirBest] = [Math.min(...all('ours', 'wall')), Math.min(...all('theirs', 'wall'))];

console.log(`DINO training step: ${arch}/${patchSize}, batch ${batch} (2 x ${globalSize} px + ${localCrops} x ${localSize} px crops), out_dim ${outDim}, float32, ${threads} thread(s)`);
console.log(`dino-ts kernel: ${addon.buildInfo().gemmKernel}; PyTorch ${first.theirs.torch} eager, ${first.theirs.threads} thread(s), no autocast on the CPU`);
console.log(`${rounds} round(s) of ${warmup} warm-up step + ${steps} timed steps; medians over the ${timed} timed steps\n`);
row('', 'dino-ts', 'PyTorch', 'ratio');
row('seconds per step', oursWall.toFixed(2), theirWall.toFixed(2));
row('fastest step (s)', oursBest.toFixed(2), theirBest.toFixed(2), (theirBest / oursBest).toFixed(2));
row('images per second', (batch / oursWall).toFixed(2), (batch / theirWall).toFixed(2), (theirWall / oursWall).toFixed(2));
row('CPU seconds per step', oursCpu.toFixed(2), theirCpu.toFixed(2), (theirCpu / oursCpu).toFixed(2));
row('peak RSS increase (MiB)', mib(first.ours.peakRssIncrease), mib(first.theirs.peakRssIncrease), (first.ours.peakRssIncrease / first.theirs.peakRssIncrease).toFixed(2));
row('allocator peak increase (MiB)', mib(first.ours.allocatorPeakIncrease));
row('  of which in use after the loss', mib(first.ours.allocatorAfterLossIncrease));
console.log('ratios: speed as dino-ts / PyTorch (above 1: we are faster); memory as dino-ts / PyTorch (below 1: we use less)');
console.log(`\nphases (median wall seconds; ratio as above)`);
PHASES.forEach((name, p) => {
  const a = median(allPhases('ours').map((ph) => ph[p]));
  const b = median(allPhases('theirs').map((ph) => ph[p]));
  row(name, a.toFixed(3), b.toFixed(3), (b / a).toFixed(2));
});
const list = (xs: number[]) => xs.map((s) => s.toFixed(2)).join(' ');
console.log(`\nevery timed step (wall s): dino-ts ${list(all('ours', 'wall'))}; PyTorch ${list(all('theirs', 'wall'))}`);

if (profile) {
  // Op times summed over the timed steps under a label, printed per step, costliest first.
  const top = <R extends OpTime>(title: string, rows: readonly R[], label: (r: R) => string, n: number) => {
    const sums = new Map<string, { calls: number; seconds: number }>();
    for (const r of rows) {
      const e = sums.get(label(r)) ?? { calls: 0, seconds: 0 };
      e.calls += r.calls;
      e.seconds += r.seconds;
      sums.set(label(r), e);
    }
    console.log(`\n${title}`);
    for (const [name, e] of [...sums].sort((a, b) => b[1].seconds - a[1].seconds).slice(0, n)) {
      console.log(`${(e.seconds / timed).toFixed(3).padStart(8)} s ${String(e.calls / timed).padStart(6)} calls  ${name}`);
    }
  };
  const ourOps = [...opTimes.values()];
  const theirOps = runs.flatMap((r) => r.theirs.profile!);
  top('dino-ts ops per step, by op:', ourOps, (r) => r.op, 15);
  top('dino-ts ops per step, by phase, op and input shapes:', ourOps, (r) => `${r.phase}: ${r.op} ${r.shapes}`, 30);
  top('PyTorch ops per step (self CPU time), by op:', theirOps, (r) => r.op, 15);
  top('PyTorch ops per step (self CPU time), by op and input shapes:', theirOps, (r) => `${r.op} ${r.shapes}`, 30);
}
