// `dino eval-knn`: weighted k-NN classification of frozen features (eval_knn.py), from a checkpoint, a
// random initialisation or the raw pixels, on any dataset openDataset reads.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ImageDataset } from '../data/dataset.ts';
import type { LoadedBackbone } from '../eval/backbone.ts';
import { clsEncoder, defaultResize, extractFeatures, classIndexIn, loadFeatures, pixelEncoder, saveFeatures, type Encoder, type FeatureFile } from '../eval/features.ts';
import { DEFAULT_KNN_TEMPERATURE, DEFAULT_NB_KNN, knnClassifier } from '../eval/knn.ts';
import type { Command } from './command.ts';
import { defineOptions, describeOptions, parseOptions, UsageError } from './options.ts';
import { backboneFrom, BACKBONE_OPTIONS, DATA_OPTIONS, evaluationData, progressReporter, seconds } from './eval-common.ts';

const OPTIONS = defineOptions({
  ...BACKBONE_OPTIONS,
  ...DATA_OPTIONS,
  'random-init': { kind: 'boolean', default: false, help: 'a randomly initialised ViT (--arch, --patch-size, --seed): the baseline learned features must beat' },
  seed: { kind: 'int', default: 0, min: 0, help: 'seed of the random initialisation' },
  features: { kind: 'string', choices: ['cls', 'pixels'], default: 'cls', help: "'cls': the backbone's CLS token after the final norm (eval_knn.py); 'pixels': the normalised pixels of the centre crop (the raw-pixel baseline, no model)" },
  'nb-knn': { kind: 'ints', default: [...DEFAULT_NB_KNN], min: 1, metavar: 'K...', help: 'numbers of nearest neighbours; those above the number of training images are left out with a note' },
  temperature: { kind: 'number', default: DEFAULT_KNN_TEMPERATURE, min: 0, minExclusive: true, help: 'temperature of the vote weights exp(similarity / T)' },
  'batch-size': { kind: 'int', default: 128, min: 1, help: 'images per forward pass (the official --batch_size_per_gpu)' },
  'batch-size-per-gpu': { kind: 'int', min: 1, help: 'same as --batch-size (the official name)' },
  'num-workers': { kind: 'int', min: 1, help: 'image decoding threads (default: the number of cores)' },
  'dump-features': { kind: 'string', metavar: 'DIR', help: 'write the features and labels to DIR/trainfeat.safetensors and DIR/testfeat.safetensors' },
  'load-features': { kind: 'string', metavar: 'DIR', help: 'read the features written by --dump-features instead of computing them (no model or dataset options)' },
  'output-json': { kind: 'string', metavar: 'FILE', help: 'write the results, image counts and timings as JSON' },
});

const FEATURE_FILES = { train: 'trainfeat.safetensors', val: 'testfeat.safetensors' } as const;

// Options that choose or feed a model or a dataset, which --load-features replaces.
const COMPUTE_OPTIONS = ['checkpoint', 'pretrained-weights', 'checkpoint-key', 'arch', 'patch-size', 'random-init', 'seed', 'device', 'features', 'data-path', 'train-path', 'val-path', 'batch-size', 'batch-size-per-gpu', 'num-workers', 'resize', 'crop', 'max-train', 'max-val', 'dump-features'];

type Options = ReturnType<typeof parseOptions<typeof OPTIONS>>['options'];

interface Computed {
  train: FeatureFile;
  val: FeatureFile;
  counts: Record<string, unknown>;
  timings: Record<string, number>;
}

// The pixel baseline's default crop: Fashion-MNIST's own size, 2,352 values per image.
const PIXEL_CROP = 28;

function featureSource(o: Options, given: Set<string>): { backbone?: LoadedBackbone; encoder: Encoder; source: string; crop: number } {
  const checkpoint = o.checkpoint ?? o.pretrainedWeights;
  const chosen = [checkpoint !== undefined && '--checkpoint', o.randomInit && '--random-init', o.features === 'pixels' && '--features pixels'].filter(Boolean);
  if (chosen.length !== 1) throw new UsageError(chosen.length === 0 ? 'give the features: --checkpoint FILE, --random-init, --features pixels or --load-features DIR' : `${chosen.join(' and ')} exclude each other`);
  if (o.features === 'pixels') {
    for (const name of ['arch', 'patch-size', 'checkpoint-key', 'seed', 'device']) if (given.has(name)) throw new UsageError(`--${name} needs a model; --features pixels has none`);
    const crop = o.crop ?? PIXEL_CROP;
    return { encoder: pixelEncoder, source: `raw pixels (${crop}x${crop} centre crop)`, crop };
  }
  if (!o.randomInit && given.has('seed')) throw new UsageError('--seed is for --random-init');
  const backbone = backboneFrom(o, given, o.randomInit ? { seed: o.seed } : undefined);
  return { backbone, encoder: clsEncoder(backbone.model), source: backbone.source, crop: o.crop ?? backbone.spec.imgSize };
}

async function compute(o: Options, given: Set<string>): Promise<Computed> {
  if (given.has('batch-size') && given.has('batch-size-per-gpu')) throw new UsageError('--batch-size and --batch-size-per-gpu are the same option; give one');
  const { backbone, encoder, source, crop } = featureSource(o, given);
  try {
    const { train: trainData, val: valData } = evaluationData(o, given);
    const valClasses = classIndexIn(trainData.classes, valData);
    const resize = o.resize ?? defaultResize(crop);
    const common = { crop, resize, batchSize: o.batchSizePerGpu ?? o.batchSize, numWorkers: o.numWorkers };
    const timings: Record<string, number> = {};
    const run = async (data: ImageDataset, what: 'train' | 'val') => {
      const start = performance.now();
      const f = await extractFeatures(data, encoder, { ...common, onProgress: progressReporter(`${what} features`), device: backbone?.model.device });
      timings[`${what}_features_s`] = seconds(start);
      const { data: features, shape } = f.outputs[0];
      console.error(`${what} features: ${shape[0]} images, ${shape[1]} dimensions, ${timings[`${what}_features_s`].toFixed(1)} s${f.skipped.length > 0 ? ` (${f.skipped.length} unreadable, left out)` : ''}`);
      return { features, dim: shape[1], labels: f.labels, skipped: f.skipped.length };
    };
    const t = await run(trainData, 'train');
    const v = await run(valData, 'val');
    const train = { ...t, classes: [...trainData.classes], source };
    const val = { ...v, labels: Int32Array.from(v.labels, (l) => valClasses[l]), classes: [...trainData.classes], source };
    if (o.dumpFeatures !== undefined) {
      mkdirSync(o.dumpFeatures, { recursive: true });
      saveFeatures(join(o.dumpFeatures, FEATURE_FILES.train), train);
      saveFeatures(join(o.dumpFeatures, FEATURE_FILES.val), val);
      console.error(`features written to ${o.dumpFeatures}`);
    }
    return {
      train,
      val,
      counts: { train_images: train.labels.length, val_images: val.labels.length, train_skipped: t.skipped, val_skipped: v.skipped, classes: trainData.classes.length },
      timings,
    };
  } finally {
    backbone?.model.dispose();
  }
}

function loaded(dir: string): Computed {
  const read = (name: string) => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new Error(`${path}: no such file (--load-features reads the files --dump-features writes)`);
    return loadFeatures(path);
  };
  const train = read(FEATURE_FILES.train);
  const val = read(FEATURE_FILES.val);
  if (JSON.stringify(train.classes) !== JSON.stringify(val.classes)) throw new Error(`${dir}: the training and test features have different classes`);
  return { train, val, counts: { train_images: train.labels.length, val_images: val.labels.length, classes: train.classes.length }, timings: {} };
}

export const evalKnnCommand: Command = {
  summary: 'k-NN classification of frozen features (eval_knn.py)',
  usage: `usage: dino eval-knn (--checkpoint FILE | --random-init | --features pixels | --load-features DIR) [options]

Extracts features of the training and evaluation images (Resize, bicubic, then CenterCrop, as
eval_knn.py) and classifies each evaluation image by the weighted vote of its k nearest training
images (cosine similarity, weights exp(similarity / T)). Prints top-1 and top-5 accuracy per k.

The crop defaults to the image size of the backbone's position embeddings (224 for the released
weights, ${PIXEL_CROP} for --features pixels) and the resize to crop * 256/224 (256 for 224). A random
initialisation is made for --crop (default 224).

options:
${describeOptions(OPTIONS)}`,
  async run(args) {
    const { options: o, given } = parseOptions(OPTIONS, args);
    const started = performance.now();
    let computed: Computed;
    if (o.loadFeatures !== undefined) {
      const extra = COMPUTE_OPTIONS.filter((n) => given.has(n));
      if (extra.length > 0) throw new UsageError(`--load-features reads features computed before; it takes no --${extra[0]}`);
      computed = loaded(o.loadFeatures);
    } else {
      computed = await compute(o, given);
    }
    const { train, val } = computed;
    const ks = [...new Set(o.nbKnn)].sort((a, b) => a - b);
    const usable = ks.filter((k) => k <= train.labels.length);
    const dropped = ks.filter((k) => k > train.labels.length);
    if (usable.length === 0) throw new UsageError(`every k (--nb-knn ${ks.join(' ')}) is more than the ${train.labels.length} training images`);
    if (dropped.length > 0) console.error(`note: k = ${dropped.join(', ')} left out: more than the ${train.labels.length} training images`);
    const knnStart = performance.now();
    const results = knnClassifier(train, val, { ks: usable, temperature: o.temperature, numClasses: train.classes.length });
    computed.timings.knn_s = seconds(knnStart);
    computed.timings.total_s = seconds(started);

    console.log(`k-NN: ${train.source}; ${train.labels.length} training and ${val.labels.length} evaluation images, ${train.classes.length} classes, ${train.dim} dimensions, T = ${o.temperature}`);
    console.log('     k   top-1   top-5');
    for (const r of results) console.log(`${String(r.k).padStart(6)}  ${r.top1.toFixed(2).padStart(6)}  ${r.top5.toFixed(2).padStart(6)}`);
    if (o.outputJson !== undefined) {
      const report = {
        source: train.source,
        temperature: o.temperature,
        dim: train.dim,
        results,
        skipped_k: dropped,
        counts: computed.counts,
        timings: computed.timings,
      };
      writeFileSync(o.outputJson, JSON.stringify(report, null, 2) + '\n');
    }
  },
};
