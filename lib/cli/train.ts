// `dino train`: DINO self-supervised training (main_dino.py), with its options and defaults.
import process from 'node:process';
import { availableParallelism } from 'node:os';
import { ARCHITECTURES, DEFAULT_CONFIG, OPTIMIZERS, type DinoConfig } from '../train/trainer.ts';
import type { DeviceChoice } from '../engine/device.ts';
import { runTraining, type RunResult } from '../train/run.ts';
import { BUNDLED_DATASET } from '../data/open.ts';
import { camelCase, defineOptions, describeOptions, parseOptions, UsageError } from './options.ts';
import type { Command } from './command.ts';

const D = DEFAULT_CONFIG;

// The official arguments first, in main_dino.py's order, then ours.
export const TRAIN_OPTIONS = defineOptions({
  arch: { kind: 'string', choices: Object.keys(ARCHITECTURES), default: D.arch, help: 'ViT size (embed dim 192, 384, 768; 12 blocks)' },
  'patch-size': { kind: 'int', min: 1, default: D.patchSize, help: 'patch size in pixels (8 gives better features and costs much more)' },
  'out-dim': { kind: 'int', min: 1, default: D.outDim, help: 'dimension of the DINO head output; 65536 is tuned for ImageNet, small datasets do better with 1k-8k' },
  'norm-last-layer': { kind: 'boolean', default: D.normLastLayer, help: 'weight-normalise the last layer of the head with a fixed norm (false: better features, less stable)' },
  'momentum-teacher': { kind: 'number', min: 0, max: 1, default: D.momentumTeacher, help: 'base EMA momentum of the teacher, raised to 1 by a cosine schedule (0.9995 for small batches)' },
  'use-bn-in-head': { kind: 'boolean', default: D.useBnInHead, help: 'batch norm in the head MLP' },
  'warmup-teacher-temp': { kind: 'number', min: 0, minExclusive: true, default: D.warmupTeacherTemp, help: 'teacher temperature at the start of the warm-up' },
  'teacher-temp': { kind: 'number', min: 0, minExclusive: true, default: D.teacherTemp, help: 'teacher temperature after the warm-up (lower sharpens more; 0.02 helps against collapse)' },
  'warmup-teacher-temp-epochs': { kind: 'int', min: 0, default: D.warmupTeacherTempEpochs, help: 'epochs of linear teacher temperature warm-up' },
  'weight-decay': { kind: 'number', min: 0, default: D.weightDecay, help: 'initial weight decay (cosine schedule)' },
  'weight-decay-end': { kind: 'number', min: 0, default: D.weightDecayEnd, help: 'final weight decay' },
  'clip-grad': { kind: 'number', min: 0, default: D.clipGrad, help: 'per-tensor gradient norm clipping (0: off)' },
  'batch-size': { kind: 'int', min: 1, default: D.batchSize, aliases: ['batch_size_per_gpu', 'batch-size-per-gpu'], help: 'images per batch' },
  epochs: { kind: 'int', min: 1, default: D.epochs, help: 'training epochs' },
  'freeze-last-layer': { kind: 'int', min: 0, default: D.freezeLastLayer, help: 'epochs during which the last layer of the head is not updated' },
  lr: { kind: 'number', min: 0, default: D.lr, help: 'peak learning rate for a batch of 256 (linear scaling: lr * batch-size / 256), reached after the warm-up' },
  'warmup-epochs': { kind: 'int', min: 0, default: D.warmupEpochs, help: 'epochs of linear learning-rate warm-up' },
  'min-lr': { kind: 'number', min: 0, default: D.minLr, help: 'learning rate at the end of the cosine schedule' },
  optimizer: { kind: 'string', choices: OPTIMIZERS, default: D.optimizer, help: 'optimizer (AdamW with the official two parameter groups)' },
  'drop-path-rate': { kind: 'number', min: 0, max: 0.999, default: D.dropPathRate, help: 'stochastic depth rate of the student' },
  'global-crops-scale': { kind: 'numbers', count: 2, min: 0, max: 1, default: D.globalCropsScale, help: 'area range of the two global crops (fraction of the image)' },
  'local-crops-number': { kind: 'int', min: 0, default: D.localCropsNumber, help: 'number of small local crops (0: no multi-crop)' },
  'local-crops-scale': { kind: 'numbers', count: 2, min: 0, max: 1, default: D.localCropsScale, help: 'area range of the local crops' },
  'global-crops-size': { kind: 'int', min: 1, default: D.globalCropsSize, help: 'side of the global crops in pixels (use about the image size for small images, e.g. 28 or 32)' },
  'local-crops-size': { kind: 'int', min: 1, default: D.localCropsSize, help: 'side of the local crops in pixels (about 3/7 of the global size)' },
  'data-path': { kind: 'string', default: BUNDLED_DATASET, metavar: 'DIR', help: `training images: an ImageFolder (DIR/<class>/<image>; one folder is enough, labels are unused), a Tiny-ImageNet or IDX directory, or '${BUNDLED_DATASET}' for the bundled subset` },
  'output-dir': { kind: 'string', default: '.', metavar: 'DIR', help: 'where checkpoints, log.jsonl and loss.png go' },
  'saveckp-freq': { kind: 'int', min: 1, default: 20, help: 'also keep checkpoint{epoch:04}.safetensors every this many epochs' },
  seed: { kind: 'int', min: 0, default: D.seed, help: 'random seed (initialisation, data order, augmentation, stochastic depth)' },
  'num-workers': { kind: 'int', min: 1, default: Math.min(10, availableParallelism()), help: 'data loading threads (the official 10, or fewer on a machine with fewer cores)' },
  'use-fp16': { kind: 'boolean', default: false, help: 'accepted for the official command lines; training is float32 (true is refused)' },
  device: { kind: 'string', choices: ['auto', 'cpu', 'cuda'], default: 'auto', help: 'where to train: auto takes the GPU when CUDA and cuBLAS are usable, else the CPU (dino info says which and why)' },
  resume: { kind: 'boolean', default: false, help: 'continue the run in --output-dir from its newest intact checkpoint' },
  // Beyond the official arguments.
  'embed-dim': { kind: 'int', min: 1, help: 'a custom ViT width instead of --arch (with --depth and --num-heads)' },
  depth: { kind: 'int', min: 1, help: 'custom number of blocks' },
  'num-heads': { kind: 'int', min: 1, help: 'custom number of attention heads' },
  'img-size': { kind: 'int', min: 1, help: 'image size the position embeddings are made for (default: --global-crops-size; the official models use 224)' },
  'head-hidden-dim': { kind: 'int', min: 1, default: D.headHiddenDim, help: 'hidden width of the DINO head MLP' },
  'head-bottleneck-dim': { kind: 'int', min: 1, default: D.headBottleneckDim, help: 'bottleneck width of the DINO head' },
  'log-freq': { kind: 'int', min: 1, default: 10, help: 'print a progress line every this many iterations (when not on a terminal)' },
  'max-iterations': { kind: 'int', min: 1, metavar: 'N', help: 'stop (with a checkpoint, as on Ctrl-C) after N iterations in this process' },
});

const RUN_OPTIONS = new Set(['data-path', 'output-dir', 'saveckp-freq', 'num-workers', 'use-fp16', 'device', 'resume', 'log-freq', 'max-iterations']);
const MODEL_SHAPE = ['embed-dim', 'depth', 'num-heads'];

// The trainer configuration the command line asks for: every training option, with its default where
// it was not given.
export function trainConfigFromOptions(options: Record<string, unknown>, only?: Set<string>): Partial<DinoConfig> {
  const config: Record<string, unknown> = {};
  for (const name of Object.keys(TRAIN_OPTIONS)) {
    if (RUN_OPTIONS.has(name) || (only !== undefined && !only.has(name))) continue;
    const value = options[camelCase(name)];
    if (value !== undefined) config[camelCase(name)] = value;
  }
  if (only === undefined && config.imgSize === undefined) config.imgSize = config.globalCropsSize;
  return config as Partial<DinoConfig>;
}

function summarize(r: RunResult): string {
  const last = r.epochs.at(-1);
  const lines = [`${r.status}: iteration ${r.iteration} of ${r.totalIterations}${last !== undefined ? `, last epoch loss ${last.loss.toFixed(4)}` : ''}`];
  if (r.checkpoint !== undefined) lines.push(`checkpoint: ${r.checkpoint}`);
  if (r.warnings.length > 0) lines.push(`${r.warnings.length} warning(s), see above and log.jsonl`);
  return lines.join('\n');
}

export const trainCommand: Command = {
  summary: 'self-supervised DINO training of a ViT on a folder of images',
  usage: `usage: dino train [options]

Trains a ViT student and its EMA teacher with the DINO loss on multi-crop views of unlabelled images,
exactly as the official main_dino.py (single process). Options take the official names in kebab-case;
the official snake_case spellings (--batch_size_per_gpu, --norm_last_layer false, ...) work too.

The defaults are the official ones, tuned for ImageNet with 224-pixel crops. For a small dataset or
small images, set --global-crops-size/--local-crops-size to the image scale, use a small model
(--arch vit_tiny or --embed-dim/--depth/--num-heads, --patch-size 4 to 8), --out-dim 1024 to 8192,
and fewer --warmup-epochs; see the README.

Outputs in --output-dir: checkpoint.safetensors (every epoch, and on Ctrl-C), checkpoint{epoch:04}
.safetensors (every --saveckp-freq epochs), log.jsonl (every step and an epoch summary with the
teacher entropy and the teacher-student KL), loss.png (redrawn every epoch). A collapse warning with
likely remedies is printed when an epoch looks collapsed; a NaN/Inf loss stops the run and keeps the
last good checkpoint. Ctrl-C (SIGINT) or SIGTERM writes a checkpoint and exits; --resume continues it.

options:
${describeOptions(TRAIN_OPTIONS)}`,
  async run(args) {
    const { options, given } = parseOptions(TRAIN_OPTIONS, args);
    if (options.useFp16) throw new UsageError('--use-fp16 true: mixed precision is not available; training runs in float32');
    const shape = MODEL_SHAPE.filter((n) => given.has(n));
    if (shape.length !== 0 && shape.length !== MODEL_SHAPE.length) throw new UsageError('--embed-dim, --depth and --num-heads go together: give all three or none');
    if (options.localCropsSize > options.globalCropsSize) throw new UsageError(`--local-crops-size ${options.localCropsSize} is larger than --global-crops-size ${options.globalCropsSize}`);
    // A resumed run checks what the command line wrote out against its checkpoint; defaults do not count.
    const config = trainConfigFromOptions(options);
    const written = trainConfigFromOptions(options, given);
    const result = await runTraining(config, {
      dataPath: options.dataPath,
      outputDir: options.outputDir,
      saveckpFreq: options.saveckpFreq,
      numWorkers: options.numWorkers,
      device: options.device as DeviceChoice,
      resume: options.resume,
      logFreq: options.logFreq,
      maxIterations: options.maxIterations,
      mustMatch: written,
    }, process.stdout);
    console.log(summarize(result));
    return result.status === 'diverged' ? 1 : 0;
  },
};
