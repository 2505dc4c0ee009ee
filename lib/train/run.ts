// A whole training run, as `dino train` does it: data, trainer, progress, log.jsonl, loss.png, the
// per-epoch collapse watch, checkpoints, resume, and a clean stop on SIGINT/SIGTERM or a non-finite loss.
//
// Checkpoints in the output directory:
//   checkpoint.safetensors           every epoch, and when the run is interrupted (mid-epoch then)
//   checkpoint.previous.safetensors  the one before it (kept in case the newest one is damaged)
//   checkpoint{epoch:04}.safetensors when epoch % saveckpFreq == 0, as the official code numbers them
// Every file is written atomically and carries a checksum of its tensors. --resume takes the newest
// checkpoint that reads back intact (by its iteration), naming any it had to pass over.
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { resolveDevice, type DeviceChoice } from '../engine/device.ts';
import { tidy } from '../engine/scope.ts';
import { tensor } from '../engine/tensor.ts';
import { withFile } from '../io/file.ts';
import { readSafetensorsHeader } from '../io/safetensors.ts';
import { openDataset } from '../data/open.ts';
import { trainLoader } from '../data/loader.ts';
import { dinoTransform } from '../data/transform.ts';
import { writeLossPlot } from '../viz/loss-plot.ts';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from './checkpoint.ts';
import { TrainingLog } from './log.ts';
import { EpochMonitor, collapseWarning, type EpochDiagnostics } from './monitor.ts';
import { TrainingProgress, formatDuration, type ProgressSink } from './progress.ts';
import { DEFAULT_CONFIG, DinoTrainer, NonFiniteLossError, configToArgs, describeModel, type DinoConfig, type TrainerOptions } from './trainer.ts';

// What the run needs besides the trainer's configuration. Not stored in checkpoints: a resumed run
// may read its data from elsewhere, use other workers, and so on.
export interface RunOptions {
  dataPath: string;
  outputDir: string;
  saveckpFreq: number;
  numWorkers: number;
  device: DeviceChoice;
  resume: boolean;
  // Plain progress lines every logFreq iterations when not on a terminal.
  logFreq: number;
  // On resume, the settings that must equal the checkpoint's (those the user wrote out; default: all of
  // the given configuration).
  mustMatch?: Partial<DinoConfig>;
  // Stop after this many iterations in this process (a checkpoint is written as on SIGINT); for
  // short trial runs and tests.
  maxIterations?: number;
}

export type RunStatus = 'finished' | 'interrupted' | 'diverged';

export interface RunResult {
  status: RunStatus;
  iteration: number;
  totalIterations: number;
  epochs: EpochDiagnostics[];
  // The checkpoint that holds the run's last good state (undefined if none was written).
  checkpoint?: string;
  warnings: string[];
}

export const CHECKPOINT = 'checkpoint.safetensors';
export const PREVIOUS_CHECKPOINT = 'checkpoint.previous.safetensors';
const NUMBERED = /^checkpoint(\d{4,})\.safetensors$/;


// The checkpoints of an output directory, newest (highest iteration) first; unreadable headers last.
export function checkpointCandidates(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).filter((f) => f === CHECKPOINT || f === PREVIOUS_CHECKPOINT || NUMBERED.test(f));
  const iterationOf = (name: string): number => {
    try {
      const header = withFile(join(dir, name), readSafetensorsHeader);
      const it = Number(header.metadata.iteration);
      return Number.isSafeInteger(it) ? it : -1;
    } catch {
      return -1;
    }
  };
  const order = (name: string) => (name === CHECKPOINT ? 0 : name === PREVIOUS_CHECKPOINT ? 1 : 2);
  return names
    .map((name) => ({ name, it: iterationOf(name) }))
    .sort((a, b) => b.it - a.it || order(a.name) - order(b.name))
    .map(({ name }) => join(dir, name));
}

// The newest checkpoint that loads, and what was passed over on the way.
export function loadLatestCheckpoint(dir: string, opts: TrainerOptions = {}): { trainer: DinoTrainer; path: string; skipped: string[] } | null {
  const skipped: string[] = [];
  for (const path of checkpointCandidates(dir)) {
    try {
      return { trainer: loadTrainerCheckpoint(path, opts), path, skipped };
    } catch (e) {
      // loadTrainerCheckpoint's messages name the file.
      skipped.push((e as Error).message);
    }
  }
  if (skipped.length > 0) throw new Error(`no usable checkpoint in ${dir}:\n  ${skipped.join('\n  ')}`);
  return null;
}

// The latest state, keeping the one before it.
function saveCheckpoint(dir: string, trainer: DinoTrainer): string {
  const path = join(dir, CHECKPOINT);
  if (existsSync(path)) renameSync(path, join(dir, PREVIOUS_CHECKPOINT));
  saveTrainerCheckpoint(path, trainer);
  return path;
}

// Training options given on the command line that a resumed run would silently not use.
function conflictingOptions(saved: DinoConfig, given: Partial<DinoConfig>): string[] {
  return Object.entries(given)
    .filter(([k, v]) => JSON.stringify(v) !== JSON.stringify((saved as unknown as Record<string, unknown>)[k]))
    .map(([k, v]) => `${k} ${JSON.stringify(v)} (the checkpoint has ${JSON.stringify((saved as unknown as Record<string, unknown>)[k])})`);
}

export async function runTraining(config: Partial<DinoConfig>, run: RunOptions, out: ProgressSink = process.stdout): Promise<RunResult> {
  const { device, note } = resolveDevice(run.device);
  mkdirSync(run.outputDir, { recursive: true });
  const warnings: string[] = [];
  const say = (text: string) => out.write(`${text}\n`);
  say(note);

  let trainer: DinoTrainer | null = null;
  let resumedFrom: string | undefined;
  if (run.resume) {
    const latest = loadLatestCheckpoint(run.outputDir, { device });
    if (latest !== null) {
      for (const s of latest.skipped) {
        warnings.push(`passed over a damaged checkpoint: ${s}`);
        say(`warning: passed over a damaged checkpoint: ${s}`);
      }
      const conflicts = conflictingOptions(latest.trainer.config, run.mustMatch ?? config);
      if (conflicts.length > 0) {
        latest.trainer.dispose();
        throw new Error(`cannot resume with other training options than the run was started with: ${conflicts.join('; ')}`);
      }
      trainer = latest.trainer;
      resumedFrom = latest.path;
      say(`resuming from ${latest.path} at epoch ${trainer.epoch}, iteration ${trainer.iteration}`);
    } else {
      say(`nothing to resume in ${run.outputDir}: starting a new run`);
    }
  } else if (checkpointCandidates(run.outputDir).length > 0) {
    throw new Error(`${run.outputDir} already holds a training run: pass --resume to continue it, or choose another --output-dir`);
  }

  const c: DinoConfig = trainer?.config ?? { ...DEFAULT_CONFIG, ...config };
  const dataset = openDataset(run.dataPath, 'train');
  if (dataset.length < c.batchSize) throw new Error(`${run.dataPath}: ${dataset.length} images, fewer than one batch of ${c.batchSize}; lower --batch-size`);
  const loader = trainLoader(dataset, {
    batchSize: c.batchSize,
    seed: c.seed,
    numWorkers: run.numWorkers,
    transform: dinoTransform({
      globalCropsScale: c.globalCropsScale,
      localCropsScale: c.localCropsScale,
      localCropsNumber: c.localCropsNumber,
      globalCropsSize: c.globalCropsSize,
      localCropsSize: c.localCropsSize,
    }),
  });
  let stopSignal: string | null = null;
  const onSignal = (signal: string) => {
    stopSignal = signal;
  };
  const signals = ['SIGINT', 'SIGTERM'] as const;
  try {
    if (trainer === null) {
      trainer = new DinoTrainer(c, loader.batchesPerEpoch, { device });
    } else if (trainer.itersPerEpoch !== loader.batchesPerEpoch) {
      throw new Error(`the checkpoint was made with ${trainer.itersPerEpoch} iterations per epoch, the data now gives ${loader.batchesPerEpoch}: is it the same dataset and batch size?`);
    }
    const t = trainer;
    for (const s of signals) process.on(s, onSignal);
    const log = new TrainingLog(join(run.outputDir, 'log.jsonl'), t.iteration, t.epoch);
    log.append({ type: 'start', iteration: t.iteration, time: new Date().toISOString(), resumed_from: resumedFrom ?? null, data_path: run.dataPath, images: dataset.length, args: configToArgs(c) });
    say(`training ${describeModel(c)} on ${dataset.length} images of ${dataset.name} (${dataset.classes.length} classes, labels unused): ${c.epochs} epochs of ${t.itersPerEpoch} iterations, batch ${c.batchSize}; output in ${run.outputDir}`);
    const progress = new TrainingProgress(out, t.totalIterations, t.itersPerEpoch, c.epochs, c.batchSize, run.logFreq);
    const result: RunResult = { status: 'finished', iteration: t.iteration, totalIterations: t.totalIterations, epochs: [], warnings };
    const stopAt = run.maxIterations === undefined ? Infinity : t.iteration + run.maxIterations;
    const plot = () =>
      writeLossPlot(join(run.outputDir, 'loss.png'), {
        iterations: log.steps.map((s) => s.iteration),
        losses: log.steps.map((s) => s.loss),
        epochEnds: log.epochs.map((e) => (e.epoch + 1) * t.itersPerEpoch - 1),
        epochLosses: log.epochs.map((e) => e.loss),
        collapseLoss: Math.log(c.outDim),
        title: `DINO loss: ${describeModel(c)}, out_dim ${c.outDim}`,
      });

    training: while (t.iteration < t.totalIterations) {
      const epoch = t.epoch;
      const monitor = new EpochMonitor(epoch, c.outDim);
      // A run resumed mid-epoch: the epoch's earlier steps count too.
      for (const s of log.steps) if (s.epoch === epoch) monitor.add(s.loss, s.teacher_entropy);
      const epochStart = performance.now();
      progress.resetClock();
      for await (const batch of loader.epoch(epoch, t.iteration - epoch * t.itersPerEpoch)) {
        let r;
        try {
          r = tidy(() => t.step(batch.crops.map((x, i) => tensor(x, batch.cropShapes[i]))));
        } catch (e) {
          if (!(e instanceof NonFiniteLossError)) throw e;
          const message = `${e.message}. The weights are as after iteration ${e.iteration - 1}; the last good checkpoint is kept. Try a lower --lr, a longer --warmup-epochs, or --clip-grad (now ${c.clipGrad}).`;
          progress.message(`error: ${message}`);
          warnings.push(message);
          result.status = 'diverged';
          break training;
        }
        monitor.add(r.loss, r.teacherEntropy);
        progress.step(r);
        log.append({ type: 'step', iteration: r.iteration, epoch: r.epoch, loss: r.loss, teacher_entropy: r.teacherEntropy, lr: r.lr, wd: r.weightDecay, momentum: r.momentum, images_per_s: progress.imagesPerSecond, time: new Date().toISOString() });
        if (stopSignal !== null || t.iteration >= stopAt) {
          result.checkpoint = saveCheckpoint(run.outputDir, t);
          progress.message(`${stopSignal ?? 'iteration limit'}: stopped at iteration ${t.iteration}; checkpoint written to ${result.checkpoint}; continue with --resume`);
          result.status = 'interrupted';
          break training;
        }
      }
      const d = monitor.summary();
      result.epochs.push(d);
      const warning = collapseWarning(d);
      const seconds = (performance.now() - epochStart) / 1000;
      log.append({ type: 'epoch', epoch: d.epoch, steps: d.steps, loss: d.loss, teacher_entropy: d.teacherEntropy, kl: d.kl, max_entropy: d.maxEntropy, seconds, skipped_images: loader.skippedCount, ...(warning !== null ? { warning } : {}) });
      progress.message(`epoch ${epoch + 1}/${c.epochs} done in ${formatDuration(seconds)}: loss ${d.loss.toFixed(4)}, teacher entropy ${d.teacherEntropy.toFixed(3)} (max ${d.maxEntropy.toFixed(3)}), KL ${d.kl.toFixed(4)}`);
      if (warning !== null) {
        warnings.push(warning);
        progress.message(`warning: ${warning}`);
      }
      result.checkpoint = saveCheckpoint(run.outputDir, t);
      if (epoch % run.saveckpFreq === 0) saveTrainerCheckpoint(join(run.outputDir, `checkpoint${String(epoch).padStart(4, '0')}.safetensors`), t);
      await plot();
    }
    if (result.status !== 'finished') await plot();
    result.iteration = t.iteration;
    return result;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await loader.close();
    trainer?.dispose();
  }
}
