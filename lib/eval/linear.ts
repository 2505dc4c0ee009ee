// The linear evaluation of eval_linear.py: a linear classifier trained on the frozen backbone's features.
//
//   features    the CLS tokens of the last n blocks (each after the final LayerNorm) concatenated,
//               n * D values; with avgpool_patchtokens (n = 1 only) the mean patch token of the last
//               block interleaved with the CLS token, [cls_0, avg_0, cls_1, avg_1, ...], as the
//               official cat((cls.unsqueeze(-1), avg.unsqueeze(-1)), -1) lays them out;
//   classifier  Linear(dim, classes), weight N(0, 0.01), bias 0;
//   training    cross-entropy, SGD (momentum 0.9, weight decay 0), lr = base * batch / 256,
//               CosineAnnealingLR(T_max = epochs, eta_min = 0) stepped per epoch, every batch kept
//               (the official DataLoader does not drop the last one);
//   evaluation  top-1 and top-5 accuracy (top-5 only with at least 5 classes) and the mean loss.
//
// The official run augments each training image anew every epoch (random resized crop and flip), so
// the backbone runs over the training set every epoch. With precomputeFeatures the backbone runs once,
// on the centre crops, and the classifier trains on those fixed features: far cheaper, but no longer
// the official recipe. The validation features never change (the backbone is frozen and the
// validation transform deterministic), so they are always computed once.
import { performance } from 'node:perf_hooks';
import { noGrad, valueAndGrads } from '../autograd/tape.ts';
import { tidy } from '../engine/scope.ts';
import { Generator } from '../engine/random.ts';
import { tensor, toDevice, type Tensor } from '../engine/tensor.ts';
import type { ImageDataset } from '../data/dataset.ts';
import { DataLoader } from '../data/loader.ts';
import { epochOrder } from '../data/sampler.ts';
import type { VisionTransformer } from '../model/vit.ts';
import { Linear } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';
import { assign, concat, logSoftmax, mean, mul, reshape, scale, slice, sum } from '../ops/index.ts';
import { classIndexIn, extractFeatures, type Encoder } from './features.ts';
import type { LabelledFeatures } from './knn.ts';
import { linearTrainCrop } from './linear-transform.ts';
import { SGD } from '../optim/sgd.ts';

export interface FeatureOptions {
  // The number of last blocks whose CLS tokens are concatenated (official default 4).
  nLastBlocks: number;
  // Add the last block's mean patch token (official: ViT-B with n = 1).
  avgpoolPatchtokens: boolean;
}

// The official code concatenates a (B, nD, 1) and a (B, D, 1) tensor along the last axis, which only
// works for n = 1; any other n fails there, so it is refused here.
export function checkFeatureOptions({ nLastBlocks, avgpoolPatchtokens }: FeatureOptions, depth?: number): void {
  if (!Number.isSafeInteger(nLastBlocks) || nLastBlocks < 1) throw new RangeError(`the number of last blocks must be a positive integer, got ${nLastBlocks}`);
  if (depth !== undefined && nLastBlocks > depth) throw new RangeError(`the backbone has ${depth} blocks, fewer than the ${nLastBlocks} last blocks asked for`);
  if (avgpoolPatchtokens && nLastBlocks !== 1) {
    throw new RangeError(`averaged patch tokens go with the last block only (n = 1), as in the official code, not with ${nLastBlocks} blocks`);
  }
}

export function linearFeatureDim(embedDim: number, { nLastBlocks, avgpoolPatchtokens }: FeatureOptions): number {
  return embedDim * (nLastBlocks + (avgpoolPatchtokens ? 1 : 0));
}

// The classifier's input for a batch of images (B, 3, H, W): (B, linearFeatureDim). No gradient
// flows into the backbone.
export function linearFeatures(model: VisionTransformer, img: Tensor, opts: FeatureOptions): Tensor {
  checkFeatureOptions(opts, model.depth);
  return noGrad(() =>
    tidy(() => {
      const layers = model.getIntermediateLayers(img, opts.nLastBlocks);
      const [batch, , dim] = layers[0].shape;
      const cls = concat(layers.map((x) => reshape(slice(x, 1, 0, 1), [batch, dim])), 1);
      if (!opts.avgpoolPatchtokens) return cls;
      const avg = mean(slice(layers[0], 1, 1), [1]);
      return reshape(concat([reshape(cls, [batch, dim, 1]), reshape(avg, [batch, dim, 1])], 2), [batch, 2 * dim]);
    }),
  );
}

// linearFeatures as an encoder for extractFeatures.
export const linearEncoder =
  (model: VisionTransformer, opts: FeatureOptions): Encoder =>
  (images) => [linearFeatures(model, images, opts)];

// eval_linear.py's LinearClassifier: its state dict is linear.weight and linear.bias.
export class LinearClassifier extends Module {
  readonly linear: Linear;

  constructor(readonly dim: number, readonly numLabels: number, generator: Generator) {
    super();
    this.linear = this.registerModule('linear', new Linear(dim, numLabels));
    const weight = Float32Array.from({ length: dim * numLabels }, () => 0.01 * generator.normal());
    tidy(() => assign(this.linear.weight, tensor(weight, [numLabels, dim])));
  }

  forward(features: Tensor): Tensor {
    return this.linear.forward(features);
  }
}

// nn.CrossEntropyLoss (mean over the batch) of logits (B, C) against class indices.
export function crossEntropy(logits: Tensor, labels: Int32Array): Tensor {
  const [batch, classes] = logits.shape;
  if (logits.rank !== 2 || labels.length !== batch) throw new RangeError(`crossEntropy: ${labels.length} labels for logits of shape [${logits.shape}]`);
  const onehot = new Float32Array(batch * classes);
  labels.forEach((l, i) => {
    if (!(l >= 0 && l < classes)) throw new RangeError(`crossEntropy: label ${l} is not one of the ${classes} classes`);
    onehot[i * classes + l] = 1;
  });
  return scale(sum(mul(logSoftmax(logits), tensor(onehot, [batch, classes], { device: logits.device }))), -1 / batch);
}

// The official learning rate for a batch size (one process): lr * batch / 256.
export const scaledLr = (lr: number, batchSize: number): number => (lr * batchSize) / 256;

// CosineAnnealingLR(T_max = epochs, eta_min = 0) during `epoch` (0-based).
export const cosineAnnealingLr = (baseLr: number, epoch: number, epochs: number): number => (baseLr * (1 + Math.cos((Math.PI * epoch) / epochs))) / 2;

// Whether each row's label is among its k largest logits (utils.accuracy; ties count the lower class
// index first). logits: rows x classes, row-major.
export function topkCorrect(logits: Float32Array, labels: Int32Array, k: number): Uint8Array {
  const classes = logits.length / labels.length;
  return Uint8Array.from(labels, (label, i) => {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    const target = row[label];
    let above = 0;
    row.forEach((v, j) => {
      if (v > target || (v === target && j < label)) above++;
    });
    return above < k ? 1 : 0;
  });
}

export interface LinearMetrics {
  // Percent of the images.
  top1: number;
  // null with fewer than 5 classes (the official code reports top-1 only then).
  top5: number | null;
  loss: number;
  images: number;
}

// The classifier on stored features, in batches.
export function evaluateLinear(classifier: LinearClassifier, data: LabelledFeatures, batchSize: number): LinearMetrics {
  const n = data.labels.length;
  if (n === 0) throw new Error('no images to evaluate on');
  let correct1 = 0;
  let correct5 = 0;
  let lossSum = 0;
  const withTop5 = classifier.numLabels >= 5;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const labels = data.labels.subarray(start, end);
    noGrad(() =>
      tidy(() => {
        const logits = classifier.forward(tensor(data.features.subarray(start * data.dim, end * data.dim), [end - start, data.dim]));
        lossSum += crossEntropy(logits, labels).item() * (end - start);
        const values = logits.data();
        correct1 += topkCorrect(values, labels, 1).reduce((a, b) => a + b, 0);
        if (withTop5) correct5 += topkCorrect(values, labels, 5).reduce((a, b) => a + b, 0);
      }),
    );
  }
  return { top1: (100 * correct1) / n, top5: withTop5 ? (100 * correct5) / n : null, loss: lossSum / n, images: n };
}

// One SGD step of the classifier on a batch of features; returns the loss.
export function linearProbeStep(classifier: LinearClassifier, optimizer: SGD, features: Tensor, labels: Int32Array): number {
  return tidy(() => {
    const { value, grads } = valueAndGrads(() => crossEntropy(classifier.forward(features), labels), optimizer.params);
    optimizer.step(grads);
    return value.item();
  });
}

export interface LinearProbeOptions extends FeatureOptions {
  epochs: number;
  // The base learning rate, scaled by batchSize / 256.
  lr: number;
  batchSize: number;
  weightDecay: number;
  seed: number;
  // The validation transform's Resize and CenterCrop, and the training crop's side.
  resize: number;
  crop: number;
  // Evaluate after every valFreq-th epoch (epochs 0, valFreq, 2 valFreq, ...) and after the last.
  valFreq: number;
  // Train on fixed centre-crop features computed once (see the top of this file).
  precomputeFeatures: boolean;
  numWorkers?: number;
  // Progress lines (default: none) and warnings (default: console.warn).
  log?: (line: string) => void;
  warn?: (line: string) => void;
  // A progress callback for each feature pass ('training features', 'validation features').
  progress?: (label: string) => (done: number, total: number) => void;
}

export interface EpochRecord {
  epoch: number;
  lr: number;
  // Mean of the batch losses.
  trainLoss: number;
  val?: LinearMetrics;
}

export interface LinearProbeResult {
  // The caller disposes it.
  classifier: LinearClassifier;
  featureDim: number;
  trainImages: number;
  history: EpochRecord[];
  // After the last epoch.
  final: LinearMetrics;
  // The best top-1 of the evaluated epochs (what the official script reports at the end).
  best: { epoch: number; top1: number };
  // Wall-clock seconds of the stored-feature passes and of the training epochs (with their evaluations).
  seconds: { features: number; training: number };
}

function checkProbeOptions(o: LinearProbeOptions): void {
  const positive = { epochs: o.epochs, batchSize: o.batchSize, valFreq: o.valFreq, resize: o.resize, crop: o.crop };
  for (const [name, v] of Object.entries(positive)) if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  if (!(o.lr > 0)) throw new RangeError(`lr must be > 0, got ${o.lr}`);
  if (!(o.weightDecay >= 0)) throw new RangeError(`weightDecay must be >= 0, got ${o.weightDecay}`);
}

// Trains a linear classifier on the frozen backbone's features of `train` and evaluates it on `val`
// (whose classes must all be training classes; they are matched by name).
export async function trainLinearProbe(model: VisionTransformer, train: ImageDataset, val: ImageDataset, opts: LinearProbeOptions): Promise<LinearProbeResult> {
  checkProbeOptions(opts);
  checkFeatureOptions(opts, model.depth);
  const log = opts.log ?? (() => {});
  const valClasses = classIndexIn(train.classes, val);
  const trainCounts = train.classCounts();
  const unseen = val.classes.filter((_, i) => valClasses[i] >= 0 && trainCounts[valClasses[i]] === 0);
  if (unseen.length > 0) (opts.warn ?? console.warn)(`warning: no training images of the validation classes ${unseen.map((c) => JSON.stringify(c)).join(', ')}`);
  model.eval();
  const started = performance.now();
  const extract = async (dataset: ImageDataset, label: string): Promise<LabelledFeatures> => {
    const encoder = linearEncoder(model, opts);
    const f = await extractFeatures(dataset, encoder, { crop: opts.crop, resize: opts.resize, batchSize: opts.batchSize, numWorkers: opts.numWorkers, onProgress: opts.progress?.(label), device: model.device });
    const { data, shape } = f.outputs[0];
    return { features: data, dim: shape[1], labels: f.labels };
  };
  const v = await extract(val, 'validation features');
  const valData = { ...v, labels: v.labels.map((l) => valClasses[l]) };
  const trainData = opts.precomputeFeatures ? await extract(train, 'training features') : null;

  const featureDim = linearFeatureDim(model.embedDim, opts);
  const classifier = new LinearClassifier(featureDim, train.classes.length, new Generator(opts.seed));
  const baseLr = scaledLr(opts.lr, opts.batchSize);
  const optimizer = new SGD(classifier.parameters(), { lr: baseLr, momentum: 0.9, weightDecay: opts.weightDecay });
  // The official DataLoader over a shuffling sampler, every batch kept, unreadable images replaced.
  const history: EpochRecord[] = [];
  let best = { epoch: -1, top1: -Infinity };
  const trainingStarted = performance.now();
  let loader: DataLoader | null = null;
  try {
    if (trainData === null) {
      const transform = linearTrainCrop({ size: opts.crop });
      loader = new DataLoader(train, { batchSize: opts.batchSize, seed: opts.seed, numWorkers: opts.numWorkers, transform }, { shuffle: true, dropLast: false, replaceSkipped: true });
    }
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      optimizer.lr = cosineAnnealingLr(baseLr, epoch, opts.epochs);
      const losses: number[] = [];
      if (trainData !== null) {
        const order = epochOrder(trainData.labels.length, opts.seed, epoch);
        for (let start = 0; start < order.length; start += opts.batchSize) {
          const rows = order.subarray(start, start + opts.batchSize);
          const x = new Float32Array(rows.length * trainData.dim);
          rows.forEach((r, i) => x.set(trainData.features.subarray(r * trainData.dim, (r + 1) * trainData.dim), i * trainData.dim));
          losses.push(tidy(() => linearProbeStep(classifier, optimizer, tensor(x, [rows.length, trainData.dim]), Int32Array.from(rows, (r) => trainData.labels[r]))));
        }
      } else {
        for await (const batch of loader!.epoch(epoch)) {
          // The backbone may be on a GPU; the classifier, a few thousand weights, stays on the host.
          losses.push(tidy(() => linearProbeStep(classifier, optimizer, toDevice(linearFeatures(model, tensor(batch.crops[0], batch.cropShapes[0], { device: model.device }), opts), 'cpu'), batch.labels)));
        }
      }
      const record: EpochRecord = { epoch, lr: optimizer.lr, trainLoss: losses.reduce((a, b) => a + b, 0) / losses.length };
      if (epoch % opts.valFreq === 0 || epoch === opts.epochs - 1) {
        record.val = evaluateLinear(classifier, valData, opts.batchSize);
        if (record.val.top1 > best.top1) best = { epoch, top1: record.val.top1 };
      }
      history.push(record);
      log(epochLine(record, opts.epochs));
    }
  } catch (e) {
    classifier.dispose();
    throw e;
  } finally {
    optimizer.dispose();
    await loader?.close();
  }
  const seconds = { features: (trainingStarted - started) / 1000, training: (performance.now() - trainingStarted) / 1000 };
  return { classifier, featureDim, trainImages: trainData?.labels.length ?? train.length, history, final: history[history.length - 1].val!, best, seconds };
}

export const formatPercent = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}%`);

function epochLine(r: EpochRecord, epochs: number): string {
  const val = r.val === undefined ? '' : `  val top-1 ${formatPercent(r.val.top1)}  top-5 ${formatPercent(r.val.top5)}  loss ${r.val.loss.toFixed(4)}`;
  return `epoch ${r.epoch + 1}/${epochs}  lr ${r.lr.toPrecision(4)}  train loss ${r.trainLoss.toFixed(4)}${val}`;
}
