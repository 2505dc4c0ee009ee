// A data-loader worker thread: decodes and transforms whole batches and sends them back as one
// contiguous (B, 3, S, S) array per crop position, moved (not copied) to the main thread.
//
// An image that cannot be read is a skip, reported with the batch: in training it is replaced by an
// image drawn with the failed image's own generator (so the replacement, too, does not depend on the
// worker or timing) and the batch stays full; in evaluation it is left out. Any other error (in the
// transform, say) fails the batch with the image named.
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { ImageDecodeError, type DecodeOptions } from './decode.ts';
import { loadImage, sourceName, storeFromPayload, type StorePayload } from './dataset.ts';
import { imageGenerator } from './sampler.ts';
import type { ImageTransform, TransformSpec } from './transform.ts';

export interface WorkerConfig {
  store: StorePayload;
  transform: TransformSpec;
  decode: DecodeOptions;
  seed: number;
  // Reads tried for one slot of a training batch before the batch fails.
  maxAttempts: number;
}

export interface BatchTask {
  type: 'batch';
  id: number;
  run: number;
  epoch: number;
  indices: Int32Array;
  // Replace unreadable images (training) or leave them out (evaluation).
  replace: boolean;
}

export interface CancelRun {
  type: 'cancel';
  run: number;
}

export interface SkipRecord {
  index: number;
  image: string;
  reason: string;
  // The index drawn to take its place, or null where it was left out.
  replacement: number | null;
}

export interface BatchReply {
  type: 'batch';
  id: number;
  crops: Float32Array<ArrayBuffer>[];
  cropShapes: [number, number, number, number][];
  indices: Int32Array<ArrayBuffer>;
  skipped: SkipRecord[];
}

export type WorkerReply = BatchReply | { type: 'failed'; id: number; message: string; stack: string };

const port = parentPort;
if (!port) throw new Error('lib/data/worker.ts is the entry of a data-loader worker thread, not a module to import');
const config = workerData as WorkerConfig;
const store = storeFromPayload(config.store);

// Each image is decoded once and never again: libvips' operation cache would only hold memory.
sharp.cache(false);

const transform: Promise<ImageTransform> = (async () => {
  const { module, name, options } = config.transform;
  const exports = await import(module);
  if (typeof exports[name] !== 'function') throw new Error(`transform module ${module} exports no function ${JSON.stringify(name)}`);
  return exports[name](options) as ImageTransform;
})();
transform.catch(() => {}); // reported with the first batch

const queue: BatchTask[] = [];
let current: BatchTask | null = null;
const cancelled = new Set<number>();

port.on('message', (message: BatchTask | CancelRun) => {
  if (message.type === 'cancel') {
    cancelled.add(message.run);
    for (let i = queue.length - 1; i >= 0; i--) if (queue[i].run === message.run) queue.splice(i, 1);
  } else {
    queue.push(message);
    if (!current) void drain();
  }
});

async function drain(): Promise<void> {
  while ((current = queue.shift() ?? null)) {
    const task = current;
    try {
      const reply = await runBatch(task, await transform);
      if (reply) port!.postMessage(reply, [...reply.crops.map((c) => c.buffer), reply.indices.buffer]);
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      port!.postMessage({ type: 'failed', id: task.id, message: error.message, stack: error.stack ?? '' } satisfies WorkerReply);
    }
  }
}

async function runBatch(task: BatchTask, apply: ImageTransform): Promise<BatchReply | null> {
  const size = task.indices.length;
  const indices = new Int32Array(size);
  const skipped: SkipRecord[] = [];
  let crops: Float32Array<ArrayBuffer>[] = [];
  let lengths: number[] = [];
  let filled = 0;
  for (const index of task.indices) {
    if (cancelled.has(task.run)) return null;
    const rng = imageGenerator(config.seed, task.epoch, index);
    for (let attempt = 1, at = index; ; attempt++) {
      const source = store.source(at);
      let out: Float32Array[];
      try {
        const image = await loadImage(source, config.decode);
        out = apply(image, rng);
      } catch (e) {
        if (!(e instanceof ImageDecodeError)) throw withImage(e, `${sourceName(source)} (image ${at})`);
        if (task.replace && attempt >= config.maxAttempts) {
          throw new Error(`${attempt} images in a row could not be read, the last ${e.message}; is the dataset readable?`);
        }
        const replacement = task.replace ? rng.int(store.length) : null;
        skipped.push({ index: at, image: e.image, reason: e.reason, replacement });
        if (replacement === null) break;
        at = replacement;
        continue;
      }
      if (filled === 0) {
        lengths = out.map((c) => c.length);
        crops = lengths.map((n) => new Float32Array(size * n));
      } else if (out.length !== lengths.length || out.some((c, p) => c.length !== lengths[p])) {
        throw new Error(`the transform gave crops of ${out.map((c) => c.length)} values for ${sourceName(source)}, ${lengths} for the batch's first image`);
      }
      out.forEach((c, p) => crops[p].set(c, filled * lengths[p]));
      indices[filled++] = at;
      break;
    }
  }
  if (filled === 0) return { type: 'batch', id: task.id, crops: [], cropShapes: [], indices: new Int32Array(0), skipped };
  const cropShapes = lengths.map((n, p): [number, number, number, number] => {
    const side = Math.round(Math.sqrt(n / 3));
    if (3 * side * side !== n) throw new Error(`crop ${p} has ${n} values, not 3 x S x S`);
    return [filled, 3, side, side];
  });
  // Left-out images (evaluation) shorten the batch.
  if (filled < size) crops = crops.map((c, p) => c.slice(0, filled * lengths[p]));
  return { type: 'batch', id: task.id, crops, cropShapes, indices: indices.slice(0, filled), skipped };
}

function withImage(e: unknown, image: string): Error {
  const error = e instanceof Error ? e : new Error(String(e));
  error.message = `${image}: ${error.message}`;
  return error;
}
