// The data loader: epochs of batches decoded and transformed by a pool of worker threads.
//
// Training (trainLoader) follows the official DistributedSampler(shuffle=True) + drop_last=True on one
// process: each epoch is a permutation seeded by (seed, epoch), cut into full batches, the remainder
// dropped. Evaluation (evalLoader) goes through the dataset in order and keeps the last, short batch.
// Each worker builds whole batches; up to `prefetchPerWorker` batches per worker are under way or
// waiting, so a trainer that keeps up with the workers never waits, and memory stays bounded when it
// does not. Batches come out in order whichever worker finishes first.
//
//   const loader = trainLoader(dataset, { batchSize: 64, transform: dinoTransform(options) });
//   try {
//     for (let epoch = 0; epoch < epochs; epoch++)
//       for await (const { crops, cropShapes } of loader.epoch(epoch)) { ... }
//   } finally {
//     await loader.close();
//   }
//
// Nothing here hangs: close() ends the workers and rejects whatever is awaited; a worker that crashes
// fails the loader (every pending and later request rejects with its error); an error in a batch
// rejects the iteration when that batch's turn comes.
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
// sharp (libvips) must be loaded by the main thread before any worker loads it: otherwise the shared
// library can be unloaded with the first worker that exits. decode.ts imports it.
import { DEFAULT_MAX_PIXELS } from './decode.ts';
import type { ImageDataset } from './dataset.ts';
import { epochOrder } from './sampler.ts';
import type { TransformSpec } from './transform.ts';
import type { BatchReply, BatchTask, CancelRun, SkipRecord, WorkerConfig, WorkerReply } from './worker.ts';

export interface LoaderOptions {
  batchSize: number;
  transform: TransformSpec;
  // Seeds the epoch order and every image's augmentation (default 0).
  seed?: number;
  // Worker threads (default: the number of cores).
  numWorkers?: number;
  // Batches each worker may have under way or waiting to be consumed (default 2).
  prefetchPerWorker?: number;
  // Images with more pixels are skipped (default DEFAULT_MAX_PIXELS, PIL's limit).
  maxPixels?: number;
  // Called for every skipped image; by default a warning on stderr, once per image.
  onSkip?: (skip: SkippedImage) => void;
}

export interface SkippedImage extends SkipRecord {
  epoch: number;
}

export interface Batch {
  epoch: number;
  // The batch's position in the epoch.
  step: number;
  // One contiguous (B, 3, S, S) array per crop position (DINO: global 1, global 2, local 1..N).
  crops: Float32Array[];
  cropShapes: [number, number, number, number][];
  labels: Int32Array;
  // The dataset indices the rows came from (a replacement's index where an image was replaced).
  indices: Int32Array;
  // Images of this batch that could not be read.
  skipped: SkippedImage[];
}

export class DataLoaderClosedError extends Error {
  readonly code = 'ERR_DINO_LOADER_CLOSED';
  override name = 'DataLoaderClosedError';
}

export interface LoaderMode {
  shuffle: boolean;
  dropLast: boolean;
  replaceSkipped: boolean;
}

interface PoolWorker {
  worker: Worker;
  inFlight: number;
}

interface PendingTask {
  run: number;
  worker: PoolWorker;
  resolve(reply: BatchReply): void;
  reject(error: Error): void;
}

// Reads tried for one slot of a training batch before the batch fails (the dataset is then mostly
// unreadable).
const MAX_ATTEMPTS = 32;

export class DataLoader {
  readonly batchSize: number;
  readonly numWorkers: number;
  readonly batchesPerEpoch: number;
  readonly seed: number;
  // Images skipped so far (every occurrence, all epochs).
  skippedCount = 0;
  private readonly prefetch: number;
  private readonly onSkip: (skip: SkippedImage) => void;
  private readonly workers: PoolWorker[];
  private readonly tasks = new Map<number, PendingTask>();
  private nextTask = 0;
  private runs = 0;
  private activeRun: number | null = null;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  constructor(readonly dataset: ImageDataset, options: LoaderOptions, private readonly mode: LoaderMode) {
    const { batchSize, seed = 0, numWorkers = availableParallelism(), prefetchPerWorker = 2 } = options;
    const positive = (v: number, what: string) => {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${what} must be a positive integer, got ${v}`);
    };
    positive(batchSize, 'batchSize');
    positive(numWorkers, 'numWorkers');
    positive(prefetchPerWorker, 'prefetchPerWorker');
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    this.batchSize = batchSize;
    this.numWorkers = numWorkers;
    this.seed = seed;
    this.prefetch = prefetchPerWorker;
    this.batchesPerEpoch = mode.dropLast ? Math.floor(dataset.length / batchSize) : Math.ceil(dataset.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(`${dataset.name}: ${dataset.length} images make no full batch of ${batchSize} (the last incomplete batch is dropped, as in the official code)`);
    }
    this.onSkip = options.onSkip ?? warnOncePerImage();
    const config: WorkerConfig = {
      store: dataset.images.payload(),
      transform: options.transform,
      decode: { maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS },
      seed,
      maxAttempts: MAX_ATTEMPTS,
    };
    this.workers = Array.from({ length: numWorkers }, (_, i) => this.startWorker(i, config));
  }

  // The dataset indices of an epoch, in order (all of them, before dropping the last partial batch).
  epochIndices(epoch: number): Int32Array {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
    return this.mode.shuffle ? epochOrder(this.dataset.length, this.seed, epoch) : Int32Array.from({ length: this.dataset.length }, (_, i) => i);
  }

  // The batches of one epoch, from batch `fromStep` on (a run resumed mid-epoch: every image's crops
  // depend only on the seed, the epoch and the image, so skipped batches change nothing that follows).
  // One epoch at a time: finish it or break out of it before the next.
  async *epoch(epoch: number, fromStep = 0): AsyncGenerator<Batch, void, undefined> {
    const order = this.epochIndices(epoch);
    if (!Number.isSafeInteger(fromStep) || fromStep < 0 || fromStep > this.batchesPerEpoch) throw new RangeError(`fromStep must be an integer in [0, ${this.batchesPerEpoch}], got ${fromStep}`);
    this.throwIfUnusable();
    if (this.activeRun !== null) throw new Error('an epoch is already being iterated; finish it or break out of it first');
    const run = ++this.runs;
    this.activeRun = run;
    const replies = new Map<number, Promise<BatchReply>>();
    let dispatched = fromStep;
    try {
      for (let step = fromStep; step < this.batchesPerEpoch; step++) {
        for (; dispatched < this.batchesPerEpoch && dispatched - step < this.numWorkers * this.prefetch; dispatched++) {
          const start = dispatched * this.batchSize;
          replies.set(dispatched, this.submit(run, epoch, order.slice(start, Math.min(start + this.batchSize, order.length))));
        }
        const reply = await replies.get(step)!;
        replies.delete(step);
        const skipped = reply.skipped.map((s) => ({ ...s, epoch }));
        for (const s of skipped) {
          this.skippedCount++;
          this.onSkip(s);
        }
        if (reply.indices.length === 0) continue; // every image of an evaluation batch was unreadable
        const labels = Int32Array.from(reply.indices, (i) => this.dataset.labels[i]);
        yield { epoch, step, crops: reply.crops, cropShapes: reply.cropShapes, labels, indices: reply.indices, skipped };
      }
    } finally {
      this.activeRun = null;
      if (replies.size > 0) this.cancel(run);
    }
  }

  // Ends the workers. Awaited batches reject with DataLoaderClosedError; the loader cannot be used again.
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.rejectAll(new DataLoaderClosedError('the data loader was closed'));
      await Promise.all(this.workers.map((w) => w.worker.terminate()));
    })();
    return this.closing;
  }

  private throwIfUnusable(): void {
    if (this.closing) throw new DataLoaderClosedError('the data loader is closed');
    if (this.failure) throw this.failure;
  }

  private startWorker(i: number, workerData: WorkerConfig): PoolWorker {
    const pool: PoolWorker = { worker: spawnWorker(workerData), inFlight: 0 };
    pool.worker.on('message', (reply: WorkerReply) => {
      const task = this.tasks.get(reply.id);
      if (!task) return; // cancelled
      this.tasks.delete(reply.id);
      if (--pool.inFlight === 0) pool.worker.unref();
      if (reply.type === 'batch') task.resolve(reply);
      else task.reject(workerError(reply.message, reply.stack));
    });
    pool.worker.on('error', (e: Error) => this.fail(workerError(`data worker ${i} failed: ${e.message}`, e.stack ?? '')));
    pool.worker.on('exit', (code: number) => {
      if (!this.closing) this.fail(new Error(`data worker ${i} exited unexpectedly (exit code ${code})`));
    });
    // An idle worker must not keep the process alive (it is ref'd while it has work). After the
    // listeners: adding a 'message' listener refs the worker again.
    pool.worker.unref();
    return pool;
  }

  private submit(run: number, epoch: number, indices: Int32Array): Promise<BatchReply> {
    const promise = new Promise<BatchReply>((resolve, reject) => {
      this.throwIfUnusable();
      const pool = this.workers.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
      const id = this.nextTask++;
      this.tasks.set(id, { run, worker: pool, resolve, reject });
      if (pool.inFlight++ === 0) pool.worker.ref();
      pool.worker.postMessage({ type: 'batch', id, run, epoch, indices, replace: this.mode.replaceSkipped } satisfies BatchTask);
    });
    // Awaited in order later; until then a rejection must not count as unhandled.
    promise.catch(() => {});
    return promise;
  }

  private cancel(run: number): void {
    for (const [id, task] of this.tasks) {
      if (task.run !== run) continue;
      this.tasks.delete(id);
      if (--task.worker.inFlight === 0) task.worker.worker.unref();
    }
    for (const { worker } of this.workers) worker.postMessage({ type: 'cancel', run } satisfies CancelRun);
  }

  private fail(error: Error): void {
    if (this.failure || this.closing) return;
    this.failure = error;
    this.rejectAll(error);
    for (const { worker } of this.workers) void worker.terminate();
  }

  private rejectAll(error: Error): void {
    for (const task of this.tasks.values()) task.reject(error);
    this.tasks.clear();
    for (const pool of this.workers) {
      pool.inFlight = 0;
      pool.worker.unref();
    }
  }
}

// Shuffled by (seed, epoch), full batches only, unreadable images replaced.
export function trainLoader(dataset: ImageDataset, options: LoaderOptions): DataLoader {
  return new DataLoader(dataset, options, { shuffle: true, dropLast: true, replaceSkipped: true });
}

// In dataset order, the last batch kept, unreadable images left out (indices tell which rows remain).
// The seed only matters to a transform that draws random numbers, which evaluation transforms do not.
export function evalLoader(dataset: ImageDataset, options: LoaderOptions): DataLoader {
  return new DataLoader(dataset, options, { shuffle: false, dropLast: false, replaceSkipped: false });
}

function warnOncePerImage(): (skip: SkippedImage) => void {
  const warned = new Set<number>();
  return (skip) => {
    if (warned.has(skip.index)) return;
    warned.add(skip.index);
    const instead = skip.replacement === null ? 'left out' : `replaced by image ${skip.replacement}`;
    console.warn(`warning: skipped image ${skip.image} (index ${skip.index}): ${skip.reason}; ${instead}`);
  };
}

function workerError(message: string, stack: string): Error {
  const error = new Error(message);
  if (stack) error.stack = `${error.name}: ${message}\n    in the data worker:\n${stack.split('\n').slice(1).join('\n')}`;
  return error;
}

// The worker runs the same kind of file as this module: worker.js when compiled, worker.ts from the
// sources. Deno runs TypeScript in workers by itself; Node runs the sources through tsx, whose hooks
// do not reach worker threads on every Node version, so the worker registers them first.
function spawnWorker(workerData: WorkerConfig): Worker {
  const entry = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
  if (!entry.pathname.endsWith('.ts') || 'Deno' in globalThis) return new Worker(entry, { workerData });
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    throw new Error('running the data loader from its TypeScript sources under Node needs tsx (npm install tsx), or run the compiled dist/');
  }
  const bootstrap = `import(${JSON.stringify(tsx)}).then((api) => api.register()).then(() => import(${JSON.stringify(entry.href)}))`;
  return new Worker(bootstrap, { eval: true, workerData });
}
