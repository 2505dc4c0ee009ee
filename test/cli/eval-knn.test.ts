// `dino eval-knn` end to end: the raw-pixel baseline on the bundled Fashion-MNIST against PyTorch's
// run of eval_knn.py's transform and classifier on the same images; a checkpoint's features against
// PyTorch's reference ViT with the same weights, and the dump/load round trip; a random
// initialisation; ImageFolder splits whose class lists differ; and every mistake a user makes, each
// a clear message with exit code 1 or 2 and no stack trace.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFeatures } from '../../lib/eval/features.ts';
import { knnClassifier } from '../../lib/eval/knn.ts';
import { addon } from '../../lib/engine/native.ts';
import { writeImageFolder } from '../data/images.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { referenceFeatures, root, runCli, writeTinyCheckpoint } from '../helpers/cli.ts';
import { pythonMissing } from '../io/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'eval-knn-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const checkpoint = join(dir, 'tiny.safetensors');
writeTinyCheckpoint(checkpoint);

const run = (args: string[]) => runCli(['eval-knn', ...args]);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const ONE_WORKER = ['--num-workers', '1'];

t.test('--help', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, 0);
  for (const option of ['--checkpoint', '--random-init', '--features', '--nb-knn', '--temperature', '--max-train', '--dump-features', '--load-features', '--output-json', '--resize', '--crop']) t.match(r.out, option);
});

t.test('raw pixels of Fashion-MNIST: the counts PyTorch gets from the same images', async (t) => {
  const expected = loadFixtures('knn').fashion_mnist_pixels.attrs;
  for (const [T, results] of Object.entries(expected.results as Record<string, { k: number; correct1: number; correct5: number }[]>)) {
    const json = join(dir, `pixels-${T}.json`);
    // The pixel defaults are the fixture's sizes: resize 32, crop 28.
    const r = await run(['--features', 'pixels', '--max-train', String(expected.n_train), '--max-val', String(expected.n_val), '--nb-knn', ...expected.ks.map(String), '--temperature', T, '--output-json', json, ...ONE_WORKER]);
    t.equal(r.code, 0, r.err);
    const report = readJson(json);
    t.same(report.results.map((x: any) => [x.k, x.correct1, x.correct5]), results.map((x) => [x.k, x.correct1, x.correct5]), `T=${T}`);
    t.match(report, { source: 'raw pixels (28x28 centre crop)', temperature: Number(T), dim: 3 * 28 * 28, skipped_k: [], counts: { train_images: 500, val_images: 100, classes: 10, train_skipped: 0, val_skipped: 0 } });
    t.same(Object.keys(report.timings).sort(), ['knn_s', 'total_s', 'train_features_s', 'val_features_s']);
    const row = report.results.find((x: any) => x.k === 20);
    t.match(r.out, new RegExp(`\\n\\s+20\\s+${row.top1.toFixed(2)}\\s+${row.top5.toFixed(2)}`), 'the table has the k = 20 row');
  }
});

t.test('a checkpoint: features as PyTorch computes them, dumped and loaded back to the same results', { skip: pythonMissing('torch', 'safetensors', 'PIL') }, async (t) => {
  const dump = join(dir, 'features');
  const json = join(dir, 'checkpoint.json');
  const args = ['--checkpoint', checkpoint, '--max-train', '40', '--max-val', '12', '--nb-knn', '1', '5', '10', '20', '--batch-size', '16', ...ONE_WORKER];
  const r = await run([...args, '--dump-features', dump, '--output-json', json]);
  t.equal(r.code, 0, r.err);
  const report = readJson(json);
  t.equal(report.source, `teacher of ${checkpoint}`);
  t.equal(report.dim, 32);

  // Crop 28 (the checkpoint's image size) from a resize to 32.
  const [teacherTrain, teacherVal, studentTrain] = referenceFeatures(checkpoint, [
    { key: 'teacher', images: { split: 'train', count: 40 }, resize: 32, crop: 28 },
    { key: 'teacher', images: { split: 't10k', count: 12 }, resize: 32, crop: 28 },
    { key: 'student', images: { split: 'train', count: 40 }, resize: 32, crop: 28 },
  ]).map((r) => r.cls.flat());
  const close = (got: Float32Array, want: number[]) => got.length === want.length && got.every((v, i) => Math.abs(v - want[i]) < 1e-4);
  const train = loadFeatures(join(dump, 'trainfeat.safetensors'));
  const val = loadFeatures(join(dump, 'testfeat.safetensors'));
  t.ok(close(train.features, teacherTrain), "training images: the reference ViT's CLS features");
  t.ok(close(val.features, teacherVal), "evaluation images: the reference ViT's CLS features");
  t.equal(train.classes.length, 10);
  t.same(report.results, knnClassifier(train, val, { ks: [1, 5, 10, 20], numClasses: 10 }), 'the classifier on the dumped features');

  const loaded = join(dir, 'loaded.json');
  const back = await run(['--load-features', dump, '--nb-knn', '1', '5', '10', '20', '--output-json', loaded]);
  t.equal(back.code, 0, back.err);
  t.same(readJson(loaded).results, report.results, 'loaded features: identical results');
  t.equal(readJson(loaded).source, report.source);

  const studentDump = join(dir, 'student');
  t.equal((await run([...args, '--checkpoint-key', 'student', '--dump-features', studentDump])).code, 0);
  const student = loadFeatures(join(studentDump, 'trainfeat.safetensors'));
  t.ok(close(student.features, studentTrain), "the student's features");
  t.ok(student.features.some((v, i) => v !== train.features[i]), 'differ from the teacher');
});

t.test('a random initialisation of --arch and --patch-size for --crop, seeded by --seed', async (t) => {
  const features = async (seed: string) => {
    const dump = join(dir, `random-${seed}`);
    const r = await run(['--random-init', '--device', 'cpu', '--arch', 'vit_tiny', '--patch-size', '8', '--crop', '16', '--seed', seed, '--max-train', '12', '--max-val', '4', '--nb-knn', '1', '3', '--dump-features', dump, ...ONE_WORKER]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, `random init (vit_tiny/8, seed ${seed}); 12 training and 4 evaluation images, 10 classes, 192 dimensions`);
    return loadFeatures(join(dump, 'trainfeat.safetensors')).features;
  };
  const a = await features('1');
  const b = await features('2');
  t.equal(a.length, 12 * 192);
  t.ok(a.some((v, i) => v !== b[i]), 'another seed, other features');
});

t.test('ImageFolder splits: validation classes matched to training classes by name', async (t) => {
  const data = join(dir, 'folders');
  await writeImageFolder(join(data, 'train'), 12);
  // The validation split has only class b, whose images are copies of training images: each one's
  // nearest neighbour is itself, so k = 1 is right every time if b is matched to training class 1
  // (it is class 0 of the validation split's own list).
  mkdirSync(join(data, 'val', 'b'), { recursive: true });
  for (const name of ['img001.png', 'img004.png']) copyFileSync(join(data, 'train', 'b', name), join(data, 'val', 'b', name));
  const json = join(dir, 'folders.json');
  const r = await run(['--data-path', data, '--features', 'pixels', '--crop', '8', '--nb-knn', '1', '20', '--output-json', json, ...ONE_WORKER]);
  t.equal(r.code, 0, r.err);
  const report = readJson(json);
  t.match(report.results, [{ k: 1, correct1: 2, total: 2 }]);
  t.same(report.skipped_k, [20]);
  t.match(r.err, /note: k = 20 left out: more than the 12 training images/);
  t.match(report.counts, { train_images: 12, val_images: 2, classes: 3 });

  // The same through --train-path and --val-path.
  const separate = await run(['--train-path', join(data, 'train'), '--val-path', join(data, 'val'), '--features', 'pixels', '--crop', '8', '--nb-knn', '1', ...ONE_WORKER]);
  t.equal(separate.code, 0, separate.err);
  t.match(separate.out, /\n\s+1\s+100\.00\s+100\.00/);

  mkdirSync(join(data, 'val', 'd'));
  copyFileSync(join(data, 'train', 'a', 'img000.png'), join(data, 'val', 'd', 'x.png'));
  const extra = await run(['--data-path', data, '--features', 'pixels', '--crop', '8', '--nb-knn', '1', ...ONE_WORKER]);
  t.equal(extra.code, 1);
  t.match(extra.err, /class "d" has images but no training images; the training and evaluation sets must share their class names/);
});

t.test('mistakes: exit code 2 for the command line, 1 for the files, a message and no stack trace', async (t) => {
  const empty = join(dir, 'empty');
  mkdirSync(join(empty, 'cls'), { recursive: true });
  const pixels = ['--features', 'pixels', '--max-train', '20', '--max-val', '5', ...ONE_WORKER];
  const cases: [string[], number, RegExp][] = [
    [[], 2, /give the features: --checkpoint FILE, --random-init, --features pixels or --load-features DIR/],
    [['--checkpoint', checkpoint, '--random-init'], 2, /--checkpoint and --random-init exclude each other/],
    [['--random-init', '--features', 'pixels'], 2, /--random-init and --features pixels exclude each other/],
    [['--features', 'pixels', '--arch', 'vit_small'], 2, /--arch needs a model; --features pixels has none/],
    [['--features', 'pixels', '--device', 'cpu'], 2, /--device needs a model; --features pixels has none/],
    [['--random-init', '--device', 'tpu'], 2, /--device/],
    ...(addon.buildInfo().cuda.usable ? [] : [[['--random-init', '--device', 'cuda', ...pixels.slice(2)], 1, /--device cuda: /] as [string[], number, RegExp]]),
    [['--random-init', '--checkpoint-key', 'student'], 2, /--checkpoint-key needs a checkpoint/],
    [['--checkpoint', checkpoint, '--seed', '3'], 2, /--seed is for --random-init/],
    [['--load-features', dir, '--checkpoint', checkpoint], 2, /--load-features reads features computed before; it takes no --checkpoint/],
    [['--train-path', empty, ...pixels], 2, /--train-path and --val-path go together/],
    [['--data-path', empty, '--train-path', empty, '--val-path', empty, ...pixels], 2, /give either --data-path or --train-path and --val-path/],
    [['--nb-knn', '30', '40', ...pixels], 2, /every k \(--nb-knn 30 40\) is more than the 20 training images/],
    [['--temperature', '0', ...pixels], 2, /--temperature must be > 0/],
    [['--checkpoint', join(dir, 'missing.safetensors')], 1, /missing\.safetensors: no such file/],
    [['--checkpoint', checkpoint, '--arch', 'vit_small'], 1, /holds a ViT of width 32 and depth 2, not vit_small \(--arch\)/],
    [['--checkpoint', checkpoint, '--patch-size', '16'], 1, /has patch size 4, not 16 \(--patch-size\)/],
    [['--data-path', empty, ...pixels], 1, /no images found/],
    [['--data-path', join(dir, 'nowhere'), ...pixels], 1, /nowhere: no such file or directory/],
    [['--load-features', join(dir, 'nowhere')], 1, /trainfeat\.safetensors: no such file \(--load-features reads the files --dump-features writes\)/],
    [['--load-features', dir], 1, /no such file/],
  ];
  for (const [args, code, message] of cases) {
    const r = await run(args);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.err, message, args.join(' '));
    t.notMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  const proc = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/dino.ts', 'eval-knn', '--checkpoint', join(dir, 'missing.safetensors')], { cwd: root, encoding: 'utf8' });
  t.equal(proc.status, 1, 'the program exits with 1');
  t.match(proc.stderr, /^dino eval-knn: .*missing\.safetensors: no such file/);
  t.notMatch(proc.stderr, /\n\s+at /);
});
