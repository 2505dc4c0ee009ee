// What the evaluation commands share: the options that pick a backbone and the image sizes, the
// backbone they describe, and a progress line for long feature passes.
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ImageDataset } from '../data/dataset.ts';
import { BUNDLED_DATASET, openDataset } from '../data/open.ts';
import { loadBackbone, randomBackbone, type LoadedBackbone } from '../eval/backbone.ts';
import { spreadSubset } from '../eval/features.ts';
import { ARCHITECTURES, type Architecture } from '../train/trainer.ts';
import { resolveDevice, type DeviceChoice } from '../engine/device.ts';
import { withDevice } from '../engine/tensor.ts';
import { defineOptions, UsageError } from './options.ts';

// --device of every command that runs a network.
export const DEVICE_OPTION = { kind: 'string', choices: ['auto', 'cpu', 'cuda'], default: 'auto', help: 'where the network runs: auto takes the GPU when CUDA is usable (dino info says which and why)' } as const;

export const BACKBONE_OPTIONS = defineOptions({
  checkpoint: { kind: 'string', metavar: 'FILE', help: 'weights: a dino-ts training checkpoint, an official .pth (training checkpoint or released backbone) or a safetensors state dict' },
  'pretrained-weights': { kind: 'string', metavar: 'FILE', help: 'same as --checkpoint (the official name)' },
  'checkpoint-key': { kind: 'string', choices: ['teacher', 'student'], default: 'teacher', help: 'which network of a training checkpoint' },
  arch: { kind: 'string', choices: Object.keys(ARCHITECTURES), help: 'checked against the weights; for a random initialisation the architecture (default vit_small)' },
  'patch-size': { kind: 'int', min: 1, help: 'checked against the weights; for a random initialisation the patch size (default 16)' },
  resize: { kind: 'int', min: 1, max: 65536, help: 'shorter side the images are resized to (bicubic) before the centre crop (default: crop * 256/224)' },
  crop: { kind: 'int', min: 1, max: 65536, help: "side of the centre crop, the network's input (default: the backbone's image size)" },
  device: DEVICE_OPTION,
});

interface BackboneChoice {
  device: string;
  checkpoint?: string;
  pretrainedWeights?: string;
  checkpointKey: string;
  arch?: string;
  patchSize?: number;
  crop?: number;
}

// The backbone the options name, in evaluation mode, on the --device; `random` makes a fresh one of
// --arch and --patch-size for the image size --crop (default 224).
export function backboneFrom(o: BackboneChoice, given: ReadonlySet<string>, random?: { seed: number }): LoadedBackbone {
  const { device } = resolveDevice(o.device as DeviceChoice);
  return withDevice(device, () => buildBackbone(o, given, random));
}

function buildBackbone(o: BackboneChoice, given: ReadonlySet<string>, random?: { seed: number }): LoadedBackbone {
  let backbone: LoadedBackbone;
  if (random !== undefined) {
    if (given.has('checkpoint-key')) throw new UsageError('--checkpoint-key needs a checkpoint; a random initialisation has none');
    backbone = randomBackbone((o.arch ?? 'vit_small') as Architecture, o.patchSize ?? 16, { seed: random.seed, imgSize: o.crop ?? 224 });
  } else {
    if (o.checkpoint !== undefined && o.pretrainedWeights !== undefined) throw new UsageError('--checkpoint and --pretrained-weights are the same option; give one');
    const path = o.checkpoint ?? o.pretrainedWeights;
    if (path === undefined) throw new UsageError('--checkpoint is required');
    if (!existsSync(path)) throw new Error(`${path}: no such file`);
    backbone = loadBackbone(path, { checkpointKey: o.checkpointKey as 'teacher' | 'student', arch: o.arch as Architecture | undefined, patchSize: o.patchSize });
  }
  backbone.model.eval();
  return backbone;
}

export const seconds = (since: number): number => Math.round(performance.now() - since) / 1000;

// A progress line on stderr at most every 10 seconds, so that short runs print none.
export function progressReporter(label: string, every = 10_000): (done: number, total: number) => void {
  const start = performance.now();
  let last = start;
  return (done, total) => {
    const now = performance.now();
    if (now - last < every || done >= total) return;
    last = now;
    const rate = done / ((now - start) / 1000);
    console.error(`${label}: ${done}/${total} images, ${rate.toFixed(1)} images/s, about ${Math.ceil((total - done) / rate)} s left`);
  };
}

// The evaluation data: a dataset with both splits, or a training and a validation path.
export const DATA_OPTIONS = defineOptions({
  'data-path': { kind: 'string', metavar: 'DIR', help: `dataset with a train and a val split: an IDX directory, a Tiny-ImageNet root, a directory with train/ and val/ ImageFolders, or '${BUNDLED_DATASET}' (the default)` },
  'train-path': { kind: 'string', metavar: 'DIR', help: 'training images (an ImageFolder, or any --data-path layout, its train split) instead of --data-path' },
  'val-path': { kind: 'string', metavar: 'DIR', help: 'evaluation images (an ImageFolder, or any --data-path layout, its val split), with --train-path' },
  'max-train': { kind: 'int', min: 1, metavar: 'N', help: 'use N training images spread evenly over the set (every len/N-th), for quick runs' },
  'max-val': { kind: 'int', min: 1, metavar: 'N', help: 'use N evaluation images spread evenly over the set' },
});

interface DataChoice {
  dataPath?: string;
  trainPath?: string;
  valPath?: string;
  maxTrain?: number;
  maxVal?: number;
}

export function evaluationData(o: DataChoice, given: ReadonlySet<string>): { train: ImageDataset; val: ImageDataset } {
  if (given.has('data-path') && (given.has('train-path') || given.has('val-path'))) throw new UsageError('give either --data-path or --train-path and --val-path');
  if (given.has('train-path') !== given.has('val-path')) throw new UsageError('--train-path and --val-path go together');
  const path = o.dataPath ?? BUNDLED_DATASET;
  let train = openDataset(o.trainPath ?? path, 'train');
  let val = openDataset(o.valPath ?? path, 'val');
  if (o.maxTrain !== undefined) train = spreadSubset(train, o.maxTrain);
  if (o.maxVal !== undefined) val = spreadSubset(val, o.maxVal);
  return { train, val };
}
