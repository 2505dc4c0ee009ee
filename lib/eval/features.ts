// Frozen features of a dataset, for the k-NN evaluation and `dino embed`: every image through the
// evaluation transform (Resize of the shorter side, bicubic, CenterCrop, normalise) and an encoder, in
// dataset order, in batches decoded by the loader's workers.
//
// Encoders: the CLS token after the final norm (what eval_knn.py uses), the same with the patch tokens
// of the last block (for embeddings), and the normalised pixels of the centre crop themselves (the
// raw-pixel baseline any learned feature must beat).
import { availableParallelism } from 'node:os';
import { tensor, type Tensor } from '../engine/tensor.ts';
import { dispose, tidy } from '../engine/scope.ts';
import { noGrad } from '../autograd/tape.ts';
import { reshape } from '../ops/elementwise.ts';
import { slice } from '../ops/shape.ts';
import { FileStore, GrayStore, ImageDataset, type ImageStore } from '../data/dataset.ts';
import { evalLoader, type SkippedImage } from '../data/loader.ts';
import { evalCrop } from '../data/transform.ts';
import { FileFormatError } from '../io/file.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { VisionTransformer } from '../model/vit.ts';
import type { LabelledFeatures } from './knn.ts';

// A batch of images (B, 3, S, S) to one or more outputs, each with the batch as its first dimension.
export type Encoder = (images: Tensor) => Tensor[];

// The CLS token after the final norm: (B, D).
export const clsEncoder =
  (model: VisionTransformer): Encoder =>
  (images) => [model.forward(images)];

// The last block's tokens after the final norm, split into the CLS token (B, D) and the patch tokens
// (B, P, D). LayerNorm acts on each token alone, so the CLS part equals forward().
export const clsAndPatchEncoder =
  (model: VisionTransformer): Encoder =>
  (images) => {
    const [tokens] = model.getIntermediateLayers(images, 1);
    const [b, , d] = tokens.shape;
    return [reshape(slice(tokens, 1, 0, 1), [b, d]), slice(tokens, 1, 1)];
  };

// The normalised pixels of the crop, flattened: (B, 3 * S * S).
export const pixelEncoder: Encoder = (images) => [reshape(images, [images.shape[0], -1])];

// The official evaluation resizes to 256 for a crop of 224; other crops keep that ratio.
export const defaultResize = (crop: number): number => Math.round((crop * 256) / 224);

export interface ExtractOptions {
  // Centre crop side (the network input) and the shorter side it is cut from.
  crop: number;
  resize?: number;
  batchSize?: number;
  numWorkers?: number;
  // Called for each unreadable image (left out of the features); by default a warning on stderr.
  onSkip?: (skip: SkippedImage) => void;
  // Called after each batch.
  onProgress?: (done: number, total: number) => void;
  // Where the images are sent: the encoder's device (default cpu). The outputs come back to the host.
  device?: string;
}

export interface FeatureArray {
  // Row-major, shape[0] rows (one per image kept).
  data: Float32Array;
  shape: number[];
}

export interface ExtractedFeatures {
  // One per encoder output.
  outputs: FeatureArray[];
  labels: Int32Array;
  // The dataset index of each row.
  indices: Int32Array;
  skipped: SkippedImage[];
}

export async function extractFeatures(dataset: ImageDataset, encoder: Encoder, options: ExtractOptions): Promise<ExtractedFeatures> {
  const { crop, resize = defaultResize(crop), batchSize = 128, numWorkers = availableParallelism(), onProgress } = options;
  const skipped: SkippedImage[] = [];
  const loader = evalLoader(dataset, {
    batchSize,
    // No more threads than batches.
    numWorkers: Math.max(1, Math.min(numWorkers, Math.ceil(dataset.length / batchSize))),
    transform: evalCrop({ resize, crop }),
    onSkip: (s) => {
      skipped.push(s);
      if (options.onSkip) options.onSkip(s);
      else console.warn(`warning: skipped image ${s.image}: ${s.reason}`);
    },
  });
  const total = dataset.length;
  let outputs: FeatureArray[] = [];
  const labels = new Int32Array(total);
  const indices = new Int32Array(total);
  let rows = 0;
  let seen = 0;
  try {
    for await (const batch of loader.epoch(0)) {
      const values = noGrad(() => tidy(() => encoder(tensor(batch.crops[0], batch.cropShapes[0], { device: options.device })).map((o) => ({ data: o.data(), shape: [...o.shape] }))));
      const n = batch.labels.length;
      if (outputs.length === 0) outputs = values.map((v) => ({ data: new Float32Array(total * (v.data.length / n)), shape: [total, ...v.shape.slice(1)] }));
      values.forEach((v, i) => outputs[i].data.set(v.data, rows * (v.data.length / n)));
      labels.set(batch.labels, rows);
      indices.set(batch.indices, rows);
      rows += n;
      seen += n + batch.skipped.length;
      onProgress?.(seen, total);
    }
  } finally {
    await loader.close();
  }
  if (rows === 0) throw new Error(`${dataset.name}: none of the ${total} images could be read`);
  return {
    outputs: outputs.map(({ data, shape }) => ({ data: data.subarray(0, (data.length / total) * rows), shape: [rows, ...shape.slice(1)] })),
    labels: labels.subarray(0, rows),
    indices: indices.subarray(0, rows),
    skipped,
  };
}

// n images spread evenly over the dataset (indices floor(i * length / n)), so that a dataset sorted by
// class (an ImageFolder) keeps all its classes; the whole dataset when n is at least its length.
export function spreadSubset(dataset: ImageDataset, n: number): ImageDataset {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`the subset size must be a positive integer, got ${n}`);
  if (n >= dataset.length) return dataset;
  const picked = Array.from({ length: n }, (_, i) => Math.floor((i * dataset.length) / n));
  const sources = picked.map((i) => dataset.source(i));
  let store: ImageStore;
  const first = sources[0];
  if (first.kind === 'gray') {
    // One store holds one kind of source: all gray images of one size here.
    const size = first.width * first.height;
    const bytes = new Uint8Array(new SharedArrayBuffer(n * size));
    sources.forEach((s, i) => s.kind === 'gray' && bytes.set(s.pixels, i * size));
    store = new GrayStore(dataset.name, first.width, first.height, bytes.buffer as SharedArrayBuffer);
  } else {
    store = FileStore.from('', sources.map((s) => (s.kind === 'file' ? s.path : '')));
  }
  return new ImageDataset(dataset.name, dataset.classes, Int32Array.from(picked, (i) => dataset.labels[i]), store, dataset.notes);
}

// For each class of `dataset`, its index in `classes` (the training set's), matched by name: the two
// splits of an ImageFolder list their own class directories, which need not be the same. A class that
// has images here but is not among `classes` cannot be predicted, so it is an error (-1 marks a class
// without images).
export function classIndexIn(classes: readonly string[], dataset: ImageDataset): Int32Array {
  const position = new Map(classes.map((c, i) => [c, i]));
  const counts = dataset.classCounts();
  const missing = dataset.classes.filter((c, i) => counts[i] > 0 && !position.has(c));
  if (missing.length > 0) {
    const list = missing.slice(0, 5).map((c) => JSON.stringify(c)).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
    throw new FileFormatError(`${dataset.name}: class${missing.length > 1 ? 'es' : ''} ${list} ha${missing.length > 1 ? 've' : 's'} images but no training images; the training and evaluation sets must share their class names`);
  }
  return Int32Array.from(dataset.classes, (c) => position.get(c) ?? -1);
}

export interface FeatureFile extends LabelledFeatures {
  classes: string[];
  // What made the features (a checkpoint, random init, pixels), for reports.
  source: string;
}

// features (N, D) and labels (N) as float32 (exact for any class count below 2^24), the class names
// and the source as metadata.
export function saveFeatures(path: string, f: FeatureFile): void {
  const rows = f.labels.length;
  tidy(() =>
    writeSafetensors(
      path,
      [
        ['features', tensor(f.features, [rows, f.dim])],
        ['labels', tensor(Float32Array.from(f.labels), [rows])],
      ],
      { classes: JSON.stringify(f.classes), source: f.source },
    ),
  );
}

export function loadFeatures(path: string): FeatureFile {
  const { tensors, metadata } = readSafetensors(path);
  try {
    const byName = new Map(tensors);
    const features = byName.get('features');
    const labels = byName.get('labels');
    const fail = (m: string): never => {
      throw new FileFormatError(`${path}: ${m}; not a features file of dino eval-knn --dump-features`);
    };
    if (features === undefined || labels === undefined) fail("no 'features' and 'labels' tensors");
    if (features!.rank !== 2 || labels!.rank !== 1 || labels!.shape[0] !== features!.shape[0]) fail(`features [${features!.shape}] and labels [${labels!.shape}] do not match`);
    let classes: unknown;
    try {
      classes = JSON.parse(metadata.classes ?? '');
    } catch {
      // reported below
    }
    if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) fail('no class names in the metadata');
    const names = classes as string[];
    const values = labels!.dtype === 'float32' ? labels!.data() : fail(`labels are ${labels!.dtype}`);
    for (const l of values) if (!(Number.isInteger(l) && l >= 0 && l < names.length)) fail(`label ${l} is not one of the ${names.length} classes`);
    const data = features!.dtype === 'float32' ? features!.data() : fail(`features are ${features!.dtype}`);
    return { features: data, dim: features!.shape[1], labels: Int32Array.from(values), classes: names, source: metadata.source ?? path };
  } finally {
    dispose(tensors.map(([, t]) => t));
  }
}
