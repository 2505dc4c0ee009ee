// `dino eval-linear` end to end on a few images: the report (printed, JSON) and the saved classifier,
// with stored features and with the official augmenting loader; a checkpoint file and a random
// initialisation; and the mistakes a user makes, each a clear message with exit code 1 or 2 and no
// stack trace.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dispose, readSafetensors, writeSafetensors } from '../../lib/index.ts';
import { randomBackbone } from '../../lib/eval/backbone.ts';
import { runCli } from '../helpers/cli.ts';
import { writeImage } from '../data/images.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'eval-linear-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// Runs the command line and collects what it prints.
const run = (args: string[]) => runCli(['eval-linear', ...args]);

// A small ViT on 16x16 crops (patch 8, two blocks' worth of speed per image): the fastest real run.
const TINY = ['--random-init', '--arch', 'vit_tiny', '--patch-size', '8', '--crop', '16', '--resize', '16', '--num-workers', '1'];
const FEW = ['--max-train', '30', '--max-val', '20', '--epochs', '2', '--batch-size', '8'];

t.test('--help', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, 0);
  for (const option of ['--n-last-blocks', '--avgpool-patchtokens', '--precompute-features', '--save-classifier']) t.match(r.out, option);
});

t.test('a run on the bundled Fashion-MNIST: report, JSON and classifier', async (t) => {
  const json = join(dir, 'report.json');
  const weights = join(dir, 'classifier.safetensors');
  const r = await run([...TINY, ...FEW, '--n-last-blocks', '2', '--output-json', json, '--save-classifier', weights]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /epoch 2\/2 .*val top-1/);
  t.match(r.out, /top-1 \d+\.\d\d%\s+top-5 \d+\.\d\d% on 20 images after 2 epochs; best top-1/);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  t.equal(report.feature_dim, 2 * 192);
  t.same(report.counts, { train_images: 30, val_images: 20, classes: 10 });
  t.equal(report.scaled_lr, (0.001 * 8) / 256);
  t.equal(report.history.length, 2);
  t.same(Object.keys(report.history[1]), ['epoch', 'lr', 'train_loss', 'val']);
  t.same(report.history[1].val, { top1: report.top1, top5: report.top5, loss: report.val_loss }, 'the last epoch is the final result');
  t.ok(report.top1 >= 0 && report.top1 <= report.top5 && report.top5 <= 100);
  t.ok(report.best_top1 >= report.top1 && [1, 2].includes(report.best_epoch));
  t.equal(report.precompute_features, true, 'stored features by default');
  const saved = readSafetensors(weights);
  t.same(saved.tensors.map(([k, x]) => [k, [...x.shape]]), [['linear.weight', [10, 384]], ['linear.bias', [10]]], 'the official state-dict names');
  t.equal(JSON.parse(saved.metadata.classes).length, 10);
  dispose(saved.tensors.map(([, x]) => x));
});

t.test('the official recipe (random resized crops each epoch), average-pooled tokens, a checkpoint file', async (t) => {
  const { model } = randomBackbone('vit_tiny', 8, { seed: 3, imgSize: 16 });
  const checkpoint = join(dir, 'backbone.safetensors');
  writeSafetensors(checkpoint, model.stateDict());
  model.dispose();
  const json = join(dir, 'official.json');
  const r = await run(['--checkpoint', checkpoint, '--num-workers', '1', ...FEW, '--precompute-features', 'false', '--n-last-blocks', '1', '--avgpool-patchtokens', '--val-freq', '5', '--output-json', json]);
  t.equal(r.code, 0, r.err);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  t.equal(report.crop, 16, "the crop defaults to the backbone's image size");
  t.equal(report.feature_dim, 2 * 192, 'CLS and mean patch token');
  t.equal(report.precompute_features, false);
  t.same(report.history.map((h: { val?: unknown }) => h.val !== undefined), [true, true], 'evaluated at the first epoch and at the last');
});

t.test('mistakes: clear messages, exit codes 1 and 2', async (t) => {
  const empty = join(dir, 'empty');
  await writeImage(join(dir, 'folder', 'train', 'cat', 'a.png'), 20, 20, 'png', 1);
  await writeImage(join(dir, 'folder', 'train', 'dog', 'b.png'), 20, 20, 'png', 2);
  await writeImage(join(dir, 'folder', 'val', 'cat', 'c.png'), 20, 20, 'png', 3);
  await writeImage(join(dir, 'folder', 'val', 'bird', 'd.png'), 20, 20, 'png', 4);
  mkdirSync(join(dir, 'noimages', 'cat'), { recursive: true });
  writeFileSync(join(dir, 'noimages', 'cat', 'notes.txt'), 'not an image');
  const { model } = randomBackbone('vit_tiny', 8, { imgSize: 16 });
  const tiny = join(dir, 'tiny.safetensors');
  writeSafetensors(tiny, model.stateDict());
  model.dispose();
  const cases: [string, string[], number, RegExp][] = [
    ['no backbone', [...FEW], 2, /give the backbone: --checkpoint FILE or --random-init/],
    ['both backbones', ['--random-init', '--checkpoint', tiny], 2, /exclude each other/],
    ['avgpool with n > 1', [...TINY, '--avgpool-patchtokens'], 2, /n = 1/],
    ['a missing checkpoint', ['--checkpoint', join(dir, 'nothing.safetensors')], 1, /nothing\.safetensors: no such file/],
    ['an architecture mismatch', ['--checkpoint', tiny, '--arch', 'vit_small'], 1, /holds vit_tiny, not vit_small/],
    ['more blocks than the backbone has', [...TINY, '--n-last-blocks', '13'], 1, /12 blocks, fewer than the 13/],
    ['a missing dataset', [...TINY, '--data-path', empty], 1, /empty: no such file or directory/],
    ['a folder with no images', [...TINY, '--train-path', join(dir, 'noimages'), '--val-path', join(dir, 'folder', 'val')], 1, /no images/],
    ['a validation class absent from training', [...TINY, '--data-path', join(dir, 'folder')], 1, /"bird" has images but no training images/],
    ['an output in a missing directory', [...TINY, '--output-json', join(dir, 'no', 'r.json')], 2, /--output-json .* does not exist/],
    ['a bad number', [...TINY, '--epochs', '0'], 2, /--epochs must be >= 1/],
  ];
  for (const [what, args, code, message] of cases) {
    const r = await run(args);
    t.equal(r.code, code, `${what}: exit code ${code}`);
    t.match(r.err, message, `${what}: ${r.err.split('\n')[0]}`);
    t.notMatch(r.err, /^\s+at /m, `${what}: no stack trace`);
  }
  const p = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'dino.ts'), 'eval-linear', '--checkpoint', join(dir, 'nothing.safetensors')], { cwd: root, encoding: 'utf8' });
  t.equal(p.status, 1, 'the process exits with 1');
  t.match(p.stderr, /^dino eval-linear: .*no such file/);
  t.notMatch(p.stderr, /^\s+at /m);
});
