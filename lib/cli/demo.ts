// `dino demo` (what `npm start` runs): the whole pipeline on the bundled Fashion-MNIST subset in a few
// minutes on a laptop's CPU. A short DINO training of a small ViT, then the k-NN evaluation of the
// trained teacher beside two baselines (the same network at its random initialisation, and the raw
// pixels), then the attention maps of a few test images. Each stage is the real command (train,
// eval-knn, attention) run with the arguments printed, so the demo doubles as a worked example.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { fashionMnist } from '../data/fashion-mnist.ts';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from '../train/checkpoint.ts';
import { DinoTrainer } from '../train/trainer.ts';
import { CHECKPOINT } from '../train/run.ts';
import { attentionCommand } from './attention.ts';
import type { Command } from './command.ts';
import { evalKnnCommand } from './eval-knn.ts';
import { defineOptions, describeOptions, parseOptions } from './options.ts';
import { trainCommand } from './train.ts';

// The embedded default: a ViT of width 128 and depth 4 in 7-pixel patches of the 28-pixel images, with
// crops, head and schedule sized for a small dataset and a short run (the official defaults are for
// ImageNet; see the README). Two official options make the difference in a run this short: batch norm
// in the head, and a teacher momentum of 0.99 instead of 0.996 (the teacher follows the student sooner).
// Without them the teacher's output drifts towards uniform after two epochs and its k-NN accuracy
// stays within two points of the random initialisation's.
export const DEMO_TRAIN_ARGS: Record<string, string> = {
  'data-path': 'fashion-mnist',
  'embed-dim': '128',
  depth: '4',
  'num-heads': '4',
  'patch-size': '7',
  'global-crops-size': '28',
  'local-crops-size': '14',
  'local-crops-number': '2',
  'out-dim': '1024',
  'head-hidden-dim': '256',
  'head-bottleneck-dim': '64',
  'use-bn-in-head': 'true',
  'momentum-teacher': '0.99',
  'batch-size': '64',
  epochs: '10',
  'warmup-epochs': '1',
  lr: '0.002',
  'drop-path-rate': '0',
  'saveckp-freq': '100',
};

const OPTIONS = defineOptions({
  'output-dir': { kind: 'string', default: join('runs', 'fashion-mnist-demo'), metavar: 'DIR', help: 'where the run and the reports go (run again: training is resumed or skipped, the reports redone)' },
  epochs: { kind: 'int', min: 1, default: Number(DEMO_TRAIN_ARGS.epochs), help: 'training epochs (78 iterations each)' },
  'num-workers': { kind: 'int', min: 1, help: 'data loading threads (default: the number of cores, at most 10)' },
  'attention-images': { kind: 'int', min: 0, default: 4, help: 'test images to draw the attention maps of' },
  'max-iterations': { kind: 'int', min: 1, metavar: 'N', help: 'train for at most N iterations in this run (a quick look at the whole pipeline)' },
});

const flags = (args: Record<string, string>): string[] => Object.entries(args).flatMap(([k, v]) => [`--${k}`, v]);

const STAGES = { train: trainCommand, 'eval-knn': evalKnnCommand, attention: attentionCommand };

async function stage(title: string, name: keyof typeof STAGES, args: string[]): Promise<void> {
  console.log(`\n== ${title}\n$ dino ${name} ${args.join(' ')}`);
  const code = await STAGES[name].run(args);
  if (code !== undefined && code !== 0) throw new Error(`${title} failed (exit code ${code})`);
}

interface KnnJson {
  results: { k: number; top1: number; top5: number }[];
}

export const demoCommand: Command = {
  summary: 'the embedded default (npm start): train, evaluate and look at a small ViT on Fashion-MNIST',
  usage: `usage: dino demo [options]

Runs the pipeline on the bundled Fashion-MNIST subset (5,000 training and 1,000 test images):
  1. dino train      a small ViT (width 128, depth 4, patch 7) for 10 epochs
  2. dino eval-knn   the trained teacher, the same network at its random initialisation, raw pixels
  3. dino attention  the last block's attention maps of a few test images
and prints where everything is. Each stage prints the command it runs.

options:
${describeOptions(OPTIONS)}`,
  async run(args) {
    const { options: o } = parseOptions(OPTIONS, args);
    const out = o.outputDir;
    mkdirSync(out, { recursive: true });
    const workers = o.numWorkers !== undefined ? ['--num-workers', String(o.numWorkers)] : [];
    const limit = o.maxIterations !== undefined ? ['--max-iterations', String(o.maxIterations)] : [];

    await stage('training', 'train', [...flags({ ...DEMO_TRAIN_ARGS, epochs: String(o.epochs), 'output-dir': out }), '--resume', ...workers, ...limit]);
    const checkpoint = join(out, CHECKPOINT);

    // The random-init baseline is the trained network's own starting point: the same configuration and
    // seed give the same initial weights.
    const init = join(out, 'init.safetensors');
    if (!existsSync(init)) {
      const trained = loadTrainerCheckpoint(checkpoint);
      const fresh = new DinoTrainer(trained.config, trained.itersPerEpoch);
      saveTrainerCheckpoint(init, fresh);
      fresh.dispose();
      trained.dispose();
    }

    const knn = [
      { name: 'trained teacher', file: 'knn-trained.json', args: ['--checkpoint', checkpoint] },
      { name: 'random init', file: 'knn-random-init.json', args: ['--checkpoint', init] },
      { name: 'raw pixels', file: 'knn-pixels.json', args: ['--features', 'pixels'] },
    ];
    for (const k of knn) await stage(`k-NN: ${k.name}`, 'eval-knn', ['--data-path', 'fashion-mnist', ...k.args, '--output-json', join(out, k.file), ...workers]);

    const pictures: string[] = [];
    if (o.attentionImages > 0) {
      const images = join(out, 'attention-images');
      mkdirSync(images, { recursive: true });
      const test = fashionMnist('test');
      for (let i = 0; i < o.attentionImages; i++) {
        const index = Math.floor((i * test.length) / o.attentionImages);
        const source = test.source(index);
        if (source.kind !== 'gray') throw new Error('the bundled Fashion-MNIST should be in memory');
        const file = join(images, `test${String(index).padStart(4, '0')}.png`);
        await sharp(Buffer.from(source.pixels), { raw: { width: source.width, height: source.height, channels: 1 } }).png().toFile(file);
        pictures.push(file);
      }
      for (const file of pictures) {
        const name = file.slice(images.length + 1, -'.png'.length);
        await stage(`attention: ${name}`, 'attention', ['--checkpoint', checkpoint, '--image', file, '--image-size', '28', '28', '--output-dir', join(out, 'attention', name)]);
      }
    }

    const top1 = (file: string, k: number) => (JSON.parse(readFileSync(join(out, file), 'utf8')) as KnnJson).results.find((r) => r.k === k)?.top1;
    console.log(`\n== summary (k-NN top-1 on the 1,000 test images, 5,000 training images, T = 0.07)`);
    console.log('  features            k=10    k=20');
    for (const k of knn) console.log(`  ${k.name.padEnd(18)} ${top1(k.file, 10)?.toFixed(1).padStart(5)}   ${top1(k.file, 20)?.toFixed(1).padStart(5)}`);
    console.log(`\nresults in ${out}:`);
    console.log(`  ${checkpoint}  the trained student and teacher (dino eval-knn/embed/attention --checkpoint ...)`);
    console.log(`  ${join(out, 'log.jsonl')}, ${join(out, 'loss.png')}  the training log and loss curve`);
    console.log(`  ${join(out, 'knn-*.json')}  the k-NN results`);
    if (pictures.length > 0) console.log(`  ${join(out, 'attention')}/  attention maps per image (attn-head*.png, attn-mean.png, mask_th0.6_head*.png)`);
  },
};
