// `dino eval-linear`: a linear classifier trained on frozen features (eval_linear.py), from a
// checkpoint or a random initialisation, on any dataset openDataset reads.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultResize } from '../eval/features.ts';
import { checkFeatureOptions, formatPercent, linearFeatureDim, scaledLr, trainLinearProbe, type LinearProbeResult } from '../eval/linear.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { Command } from './command.ts';
import { backboneFrom, BACKBONE_OPTIONS, DATA_OPTIONS, evaluationData, progressReporter, seconds } from './eval-common.ts';
import { defineOptions, describeOptions, parseOptions, UsageError } from './options.ts';

const OPTIONS = defineOptions({
  ...BACKBONE_OPTIONS,
  ...DATA_OPTIONS,
  'random-init': { kind: 'boolean', default: false, help: 'a randomly initialised ViT (--arch, --patch-size, --seed): the baseline learned features must beat' },
  seed: { kind: 'int', default: 0, min: 0, help: "seeds the classifier's initial weights, the shuffling, the training crops and a random initialisation" },
  'n-last-blocks': { kind: 'int', default: 4, min: 1, help: 'concatenate the CLS tokens of this many last blocks (the official 4 for ViT-S, 1 for ViT-B)' },
  'avgpool-patchtokens': { kind: 'boolean', default: false, help: "add the last block's mean patch token (the official ViT-B setting; only with --n-last-blocks 1)" },
  epochs: { kind: 'int', default: 100, min: 1, help: 'training epochs of the classifier' },
  lr: { kind: 'number', default: 0.001, min: 0, minExclusive: true, help: 'base learning rate, scaled by batch size / 256, cosine-annealed to 0 over the epochs' },
  'batch-size': { kind: 'int', default: 128, min: 1, help: 'images per step (the official --batch_size_per_gpu on one GPU)' },
  'weight-decay': { kind: 'number', default: 0, min: 0, help: "SGD's weight decay (momentum is 0.9)" },
  'precompute-features': {
    kind: 'boolean',
    default: true,
    help: 'run the backbone once on centre crops and train on those fixed features (fast); false follows the official recipe, a new random resized crop and flip of every training image each epoch (a backbone pass over the training set per epoch)',
  },
  'val-freq': { kind: 'int', default: 1, min: 1, help: 'evaluate after every N-th epoch (and after the last)' },
  'num-workers': { kind: 'int', min: 1, help: 'image decoding threads (default: the number of cores)' },
  'output-json': { kind: 'string', metavar: 'FILE', help: 'write the settings, the per-epoch log and the accuracies as JSON' },
  'save-classifier': { kind: 'string', metavar: 'FILE', help: 'write the trained classifier as safetensors (linear.weight, linear.bias; class names in the metadata)' },
});

// An output whose directory is missing fails now, not after the training.
function checkWritable(file: string | undefined, option: string): void {
  if (file === undefined) return;
  const dir = dirname(resolve(file));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--${option} ${file}: directory ${dir} does not exist`);
}

const round = (s: number): number => Math.round(s * 1000) / 1000;

const metricsJson = (m: { top1: number; top5: number | null; loss: number }) => ({ top1: m.top1, top5: m.top5, loss: m.loss });

export const evalLinearCommand: Command = {
  summary: 'linear classifier on frozen features (eval_linear.py)',
  usage: `usage: dino eval-linear (--checkpoint FILE | --random-init) [options]

Trains a linear classifier (Linear(dim, classes), weight N(0, 0.01), bias 0) on the frozen backbone's
features with cross-entropy and SGD (momentum 0.9, lr = --lr * batch / 256, cosine-annealed per
epoch), as eval_linear.py, and reports top-1 and top-5 accuracy on the evaluation images. Features:
the CLS tokens of the last --n-last-blocks blocks after the final norm, concatenated; with
--avgpool-patchtokens (n = 1) the mean patch token interleaved with the CLS token, as the official
code lays them out.

By default the backbone runs once: the classifier trains on the features of the centre crops
(Resize, bicubic, then CenterCrop, the evaluation transform), which takes minutes on a CPU where the
official recipe takes a backbone pass per epoch. --precompute-features false follows the official
recipe: each epoch sees a new RandomResizedCrop (scale 0.08-1, bilinear) and flip of every training
image. Evaluation images always go through the evaluation transform.

The crop defaults to the image size of the backbone's position embeddings (224 for the released
weights) and the resize to crop * 256/224 (256 for 224). A random initialisation is made for --crop
(default 224). For Fashion-MNIST's 28x28 images, --crop 28 --resize 28 keeps them as they are.

Prints a line per epoch and the accuracy after the last epoch, with the best evaluated top-1 (what
eval_linear.py reports at the end).

options:
${describeOptions(OPTIONS)}`,
  async run(args) {
    const { options: o, given } = parseOptions(OPTIONS, args);
    const started = performance.now();
    const features = { nLastBlocks: o.nLastBlocks, avgpoolPatchtokens: o.avgpoolPatchtokens };
    try {
      checkFeatureOptions(features);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const checkpoint = o.checkpoint ?? o.pretrainedWeights;
    if (o.randomInit === (checkpoint !== undefined)) throw new UsageError(o.randomInit ? '--random-init and --checkpoint exclude each other' : 'give the backbone: --checkpoint FILE or --random-init');
    checkWritable(o.outputJson, 'output-json');
    checkWritable(o.saveClassifier, 'save-classifier');
    const { train, val } = evaluationData(o, given);
    const backbone = backboneFrom(o, given, o.randomInit ? { seed: o.seed } : undefined);
    let result: LinearProbeResult | undefined;
    try {
      const crop = o.crop ?? backbone.spec.imgSize;
      const resize = o.resize ?? defaultResize(crop);
      const dim = linearFeatureDim(backbone.spec.embedDim, features);
      const lr = scaledLr(o.lr, o.batchSize);
      console.log(`linear probe: ${backbone.source}; ${train.length} training and ${val.length} evaluation images, ${train.classes.length} classes`);
      console.log(
        `features: ${dim} dimensions (CLS of the last ${o.nLastBlocks} block${o.nLastBlocks > 1 ? 's' : ''}${o.avgpoolPatchtokens ? ' and the mean patch token' : ''}), crop ${crop}, resize ${resize}; ` +
          `${o.precomputeFeatures ? 'fixed centre-crop features' : 'random resized crops each epoch'}; ${o.epochs} epochs, batch ${o.batchSize}, lr ${lr}`,
      );
      result = await trainLinearProbe(backbone.model, train, val, {
        ...features,
        epochs: o.epochs,
        lr: o.lr,
        batchSize: o.batchSize,
        weightDecay: o.weightDecay,
        seed: o.seed,
        resize,
        crop,
        valFreq: o.valFreq,
        precomputeFeatures: o.precomputeFeatures,
        numWorkers: o.numWorkers,
        log: (line) => console.log(line),
        progress: (label) => progressReporter(label),
      });
      const { final, best } = result;
      console.log(`top-1 ${formatPercent(final.top1)}  top-5 ${formatPercent(final.top5)} on ${final.images} images after ${o.epochs} epochs; best top-1 ${formatPercent(best.top1)} (epoch ${best.epoch + 1})`);
      if (o.saveClassifier !== undefined) {
        writeSafetensors(o.saveClassifier, result.classifier.stateDict(), {
          classes: JSON.stringify(train.classes),
          n_last_blocks: String(o.nLastBlocks),
          avgpool_patchtokens: String(o.avgpoolPatchtokens),
          source: backbone.source,
        });
      }
      if (o.outputJson !== undefined) {
        const report = {
          source: backbone.source,
          feature_dim: dim,
          n_last_blocks: o.nLastBlocks,
          avgpool_patchtokens: o.avgpoolPatchtokens,
          precompute_features: o.precomputeFeatures,
          crop,
          resize,
          epochs: o.epochs,
          batch_size: o.batchSize,
          lr: o.lr,
          scaled_lr: lr,
          weight_decay: o.weightDecay,
          seed: o.seed,
          counts: { train_images: result.trainImages, val_images: final.images, classes: train.classes.length },
          top1: final.top1,
          top5: final.top5,
          val_loss: final.loss,
          best_top1: best.top1,
          best_epoch: best.epoch + 1,
          history: result.history.map((h) => ({ epoch: h.epoch + 1, lr: h.lr, train_loss: h.trainLoss, ...(h.val && { val: metricsJson(h.val) }) })),
          timings: { features_s: round(result.seconds.features), training_s: round(result.seconds.training), total_s: seconds(started) },
        };
        writeFileSync(o.outputJson, JSON.stringify(report, null, 2) + '\n');
      }
    } finally {
      result?.classifier.dispose();
      backbone.model.dispose();
    }
  },
};
