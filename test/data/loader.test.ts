// The loader with a stand-in transform (test/data/stand-in-transform.ts): batches equal what the same
// transform gives on the main thread with each image's own generator (the oracle), in the epoch's
// order with drop_last; results do not depend on the number of workers or the prefetch depth;
// unreadable images are replaced (training) or left out (evaluation), counted and named; close() and
// failures never leave an iteration hanging.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadImage, type ImageDataset } from '../../lib/data/dataset.ts';
import { imageFolder } from '../../lib/data/folder.ts';
import { DataLoaderClosedError, evalLoader, trainLoader, type Batch, type DataLoader, type LoaderOptions, type SkippedImage } from '../../lib/data/loader.ts';
import { imageGenerator } from '../../lib/data/sampler.ts';
import type { TransformSpec } from '../../lib/data/transform.ts';
import { standIn, type StandInOptions } from './stand-in-transform.ts';
import { writeImageFolder } from './images.ts';

const dir = mkdtempSync(join(tmpdir(), 'loader-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const SIZES = [8, 8, 4];
const spec = (options: Partial<StandInOptions> = {}): TransformSpec => ({
  module: new URL('./stand-in-transform.ts', import.meta.url).href,
  name: 'standIn',
  options: { sizes: SIZES, ...options },
});

const N = 22;
await writeImageFolder(join(dir, 'good'), N);
const good = imageFolder(join(dir, 'good'));

// Fails the test instead of hanging it.
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

async function run(dataset: ImageDataset, options: Partial<LoaderOptions>, epochs: number[], kind = trainLoader): Promise<Batch[][]> {
  const loader = kind(dataset, { batchSize: 4, transform: spec(), numWorkers: 2, ...options });
  try {
    const out: Batch[][] = [];
    for (const e of epochs) out.push(await within(20_000, collect(loader, e), `epoch ${e}`));
    return out;
  } finally {
    await loader.close();
  }
}

// The oracle: the stand-in run here on each image with that image's generator.
async function expectedCrops(dataset: ImageDataset, seed: number, epoch: number, indices: Int32Array): Promise<Float32Array[]> {
  const transform = standIn({ sizes: SIZES });
  const perImage: Float32Array[][] = [];
  for (const i of indices) perImage.push(transform(await loadImage(dataset.source(i)), imageGenerator(seed, epoch, i)));
  return SIZES.map((_, p) => Float32Array.from(perImage.flatMap((crops) => [...crops[p]])));
}

const bytes = (batches: Batch[]) => batches.map((b) => [b.crops.map((c) => Buffer.from(c.buffer).toString('base64')), [...b.labels], [...b.indices]]);

t.test('training batches: the epoch order, drop_last, shapes, labels, and the oracle crops', async (t) => {
  const seed = 3;
  const [epoch0, epoch1] = await run(good, { seed }, [0, 1]);
  const loader = trainLoader(good, { batchSize: 4, transform: spec(), numWorkers: 1, seed });
  const order0 = loader.epochIndices(0);
  const order1 = loader.epochIndices(1);
  t.equal(loader.batchesPerEpoch, 5, '22 images, batches of 4: 5 batches, 2 images dropped');
  await loader.close();
  t.same([...order0].sort((a, b) => a - b), [...Array(N).keys()], 'an epoch is a permutation');
  t.notSame([...order0], [...order1], 'each epoch has its own order');
  const again = trainLoader(good, { batchSize: 4, transform: spec(), numWorkers: 1, seed });
  t.same([...again.epochIndices(0)], [...order0], 'the order depends only on (seed, epoch)');
  await again.close();
  for (const [epoch, batches, order] of [[0, epoch0, order0], [1, epoch1, order1]] as const) {
    t.same(batches.map((b) => [b.epoch, b.step]), [0, 1, 2, 3, 4].map((s) => [epoch, s]), `epoch ${epoch}: steps in order`);
    t.same(batches.flatMap((b) => [...b.indices]), [...order.subarray(0, 20)], `epoch ${epoch}: the order's first 20 images`);
    for (const b of batches) {
      t.same(b.cropShapes, SIZES.map((s) => [4, 3, s, s]));
      t.same([...b.labels], [...b.indices].map((i) => good.labels[i]), 'labels of those images');
      t.same(b.skipped, []);
      const want = await expectedCrops(good, seed, epoch, b.indices);
      t.ok(b.crops.every((c, p) => Buffer.from(c.buffer).equals(Buffer.from(want[p].buffer))), `epoch ${epoch} step ${b.step}: crops equal the oracle's, bit for bit`);
    }
  }
});

t.test('determinism: the same batches with 1 or 2 workers and any prefetch depth; another seed differs', async (t) => {
  const reference = bytes((await run(good, { seed: 5, numWorkers: 1, prefetchPerWorker: 1 }, [2]))[0]);
  t.same(bytes((await run(good, { seed: 5, numWorkers: 2 }, [2]))[0]), reference, '2 workers');
  t.same(bytes((await run(good, { seed: 5, numWorkers: 3, prefetchPerWorker: 4 }, [2]))[0]), reference, '3 workers, 4 batches each');
  t.notSame(bytes((await run(good, { seed: 6, numWorkers: 2 }, [2]))[0]), reference, 'seed 6');
});

t.test('an epoch resumed from a later batch gives exactly the batches an uninterrupted epoch gives there', async (t) => {
  const [full] = await run(good, { seed: 5 }, [1]);
  const loader = trainLoader(good, { batchSize: 4, transform: spec(), numWorkers: 2, seed: 5 });
  try {
    const resumed: Batch[] = [];
    for await (const b of loader.epoch(1, 3)) resumed.push(b);
    t.same(resumed.map((b) => b.step), [3, 4]);
    t.same(bytes(resumed), bytes(full.slice(3)));
    t.same(await collect({ epoch: (e: number) => loader.epoch(e, 5) } as DataLoader, 1), [], 'from the end: nothing');
    await t.rejects(loader.epoch(1, 6).next(), /fromStep must be an integer in \[0, 5\], got 6/);
  } finally {
    await loader.close();
  }
});

t.test('evaluation batches: dataset order, the last batch kept short', async (t) => {
  const [batches] = await run(good, {}, [0], evalLoader);
  t.same(batches.map((b) => b.indices.length), [4, 4, 4, 4, 4, 2]);
  t.same(batches.flatMap((b) => [...b.indices]), [...Array(N).keys()]);
  const last = batches[5];
  t.same(last.cropShapes, SIZES.map((s) => [2, 3, s, s]));
  t.same(last.crops.map((c) => c.length), SIZES.map((s) => 2 * 3 * s * s));
});

t.test('unreadable images: replaced in training, left out in evaluation, counted and named', async (t) => {
  const root = join(dir, 'mixed');
  await writeImageFolder(root, 12);
  const bad: Record<string, RegExp> = {
    'a/empty.png': /empty file/,
    'b/text.jpg': /unsupported image format/,
    'c/truncated.png': /./,
  };
  writeFileSync(join(root, 'a', 'empty.png'), '');
  writeFileSync(join(root, 'b', 'text.jpg'), 'not an image');
  writeFileSync(join(root, 'c', 'truncated.png'), readFileSync(join(root, 'c', 'img002.png')).subarray(0, 40));
  if (spawnSync('mkfifo', [join(root, 'a', 'fifo.jpg')]).status === 0) bad['a/fifo.jpg'] = /not a regular file \(a FIFO\)/;
  const ds = imageFolder(root);
  const badIndex = new Map<number, RegExp>();
  for (let i = 0; i < ds.length; i++) {
    const path = (ds.source(i) as { path: string }).path.slice(root.length + 1).split('\\').join('/');
    if (path in bad) badIndex.set(i, bad[path]);
  }
  t.equal(badIndex.size, Object.keys(bad).length, `${badIndex.size} bad files are listed`);

  let oneWorker: ReturnType<typeof bytes> = [];
  for (const numWorkers of [1, 2]) {
    const seen: SkippedImage[] = [];
    const loader = trainLoader(ds, { batchSize: 4, transform: spec(), numWorkers, seed: 1, onSkip: (s) => seen.push(s) });
    const batches = await within(20_000, collect(loader, 0), 'training epoch');
    await loader.close();
    const order = loader.epochIndices(0).subarray(0, loader.batchesPerEpoch * 4);
    const skipped = batches.flatMap((b) => b.skipped);
    t.ok(batches.every((b) => b.indices.length === 4 && b.crops.every((c, p) => c.length === 4 * 3 * SIZES[p] ** 2)), `${numWorkers} worker(s): every batch is full`);
    t.same(new Set(skipped.filter((s) => order.includes(s.index)).map((s) => s.index)), new Set([...badIndex.keys()].filter((i) => order.includes(i))), 'each bad file in the epoch was skipped');
    for (const s of skipped) {
      t.match(s.reason, badIndex.get(s.index)!, `${s.image}: ${s.reason}`);
      t.equal(s.image, (ds.source(s.index) as { path: string }).path, 'named by its path');
      t.ok(s.replacement !== null && s.replacement >= 0 && s.replacement < ds.length, `replaced by image ${s.replacement}`);
      t.equal(s.epoch, 0);
    }
    t.ok(batches.every((b) => [...b.indices].every((i) => !badIndex.has(i))), 'no row comes from a bad file');
    t.same(seen, skipped, 'onSkip saw every skip');
    t.equal(loader.skippedCount, skipped.length, 'and the loader counted them');
    if (numWorkers === 1) oneWorker = bytes(batches);
    else t.same(bytes(batches), oneWorker, 'replacements do not depend on the worker count');
  }

  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (message: string) => warnings.push(message);
  try {
    const loader = evalLoader(ds, { batchSize: 4, transform: spec(), numWorkers: 2 });
    const first = await within(20_000, collect(loader, 0), 'evaluation epoch');
    await within(20_000, collect(loader, 1), 'evaluation epoch');
    await loader.close();
    t.same(first.flatMap((b) => [...b.indices]), [...Array(ds.length).keys()].filter((i) => !badIndex.has(i)), 'evaluation: bad files left out, the rest in order');
    t.ok(first.flatMap((b) => b.skipped).every((s) => s.replacement === null));
    t.equal(loader.skippedCount, 2 * badIndex.size, 'counted in every epoch');
    t.equal(warnings.length, badIndex.size, 'the default warning: once per file');
    t.ok(warnings.every((w) => /^warning: skipped image .+ \(index \d+\): .+; left out$/.test(w)), warnings[0]);
  } finally {
    console.warn = warn;
  }
});

t.test('a dataset of nothing but unreadable files stops training with a clear error', async (t) => {
  const root = join(dir, 'all-bad');
  for (const c of ['a', 'b']) {
    mkdirSync(join(root, c), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, c, `${i}.jpg`), 'not an image');
  }
  const loader = trainLoader(imageFolder(root), { batchSize: 2, transform: spec(), numWorkers: 1, onSkip: () => {} });
  await t.rejects(within(20_000, collect(loader, 0), 'epoch'), { message: /32 images in a row could not be read.*is the dataset readable\?/ });
  await loader.close();
});

t.test('close() during an epoch rejects the awaited batch at once; the loader stays closed', async (t) => {
  // One worker, one batch ahead: the second batch is only started when asked for, so it is pending.
  const loader = trainLoader(good, { batchSize: 4, transform: spec({ delayMs: 100 }), numWorkers: 1, prefetchPerWorker: 1 });
  const it = loader.epoch(0);
  const first = await within(20_000, it.next(), 'first batch');
  t.equal(first.done, false);
  const started = Date.now();
  const pending = t.rejects(within(5_000, it.next(), 'the pending batch'), DataLoaderClosedError, 'the awaited batch rejects');
  await within(10_000, loader.close(), 'close');
  await pending;
  t.ok(Date.now() - started < 5_000, 'promptly');
  await t.rejects(loader.epoch(1).next(), { code: 'ERR_DINO_LOADER_CLOSED' }, 'a later epoch rejects');
  await loader.close();
  t.pass('close() twice is fine');
});

t.test('breaking out of an epoch cancels it; the next epoch is unaffected', async (t) => {
  const loader = trainLoader(good, { batchSize: 4, transform: spec(), numWorkers: 2, seed: 9 });
  for await (const b of loader.epoch(0)) {
    t.equal(b.step, 0);
    break;
  }
  const after = await within(20_000, collect(loader, 1), 'epoch 1');
  await loader.close();
  t.same(bytes(after), bytes((await run(good, { seed: 9 }, [1]))[0]), 'epoch 1 equals a fresh loader\'s');
  const busy = trainLoader(good, { batchSize: 4, transform: spec(), numWorkers: 1 });
  const it = busy.epoch(0);
  await it.next();
  await t.rejects(busy.epoch(1).next(), { message: /already being iterated/ }, 'one epoch at a time');
  await it.return();
  await busy.close();
});

t.test('an error in the transform rejects the iteration and names the image', async (t) => {
  const loader = trainLoader(good, { batchSize: 4, transform: spec({ throwOnWidth: 14 }), numWorkers: 2 });
  await t.rejects(within(20_000, collect(loader, 0), 'epoch'), { message: /img\d+\.png \(image \d+\): stand-in refuses width 14/ });
  await loader.close();
});

t.test('a worker that dies fails the loader: pending and later requests reject', async (t) => {
  const loader = trainLoader(good, { batchSize: 4, transform: spec({ exitOnWidth: 14 }), numWorkers: 2 });
  await t.rejects(within(20_000, collect(loader, 0), 'epoch'), { message: /data worker \d exited unexpectedly \(exit code 7\)/ });
  await t.rejects(loader.epoch(1).next(), { message: /exited unexpectedly/ }, 'the loader stays failed');
  await within(10_000, loader.close(), 'close');
});

t.test('a transform spec that names nothing is an error of the first batch', async (t) => {
  const loader = trainLoader(good, { batchSize: 4, transform: { ...spec(), name: 'nothing' }, numWorkers: 1 });
  await t.rejects(within(20_000, collect(loader, 0), 'epoch'), { message: /exports no function "nothing"/ });
  await loader.close();
});

t.test('bad options are clear errors', async (t) => {
  const options = { batchSize: 4, transform: spec(), numWorkers: 1 };
  t.throws(() => trainLoader(good, { ...options, batchSize: 0 }), RangeError);
  t.throws(() => trainLoader(good, { ...options, batchSize: 23 }), { message: /22 images make no full batch of 23/ });
  t.throws(() => trainLoader(good, { ...options, numWorkers: 1.5 }), RangeError);
  t.throws(() => trainLoader(good, { ...options, seed: -1 }), RangeError);
  const loader = evalLoader(good, { ...options, batchSize: 23 });
  t.equal(loader.batchesPerEpoch, 1, 'evaluation keeps a short batch');
  await t.rejects(loader.epoch(-1).next(), RangeError);
  await loader.close();
});

t.test('loaders left open, used or not, do not keep the process alive', async (t) => {
  const script = join(dir, 'left-open.mts');
  writeFileSync(
    script,
    `import { imageFolder } from ${JSON.stringify(new URL('../../lib/data/folder.ts', import.meta.url).href)};
import { trainLoader } from ${JSON.stringify(new URL('../../lib/data/loader.ts', import.meta.url).href)};
const dataset = imageFolder(${JSON.stringify(join(dir, 'good'))});
const options = { batchSize: 4, numWorkers: 2, transform: ${JSON.stringify(spec())} };
const loader = trainLoader(dataset, options);
for await (const b of loader.epoch(0)) { console.log('batch', b.step); break; }
trainLoader(dataset, options); // never used
`,
  );
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000, cwd: new URL('../..', import.meta.url).pathname });
  t.equal(r.signal, null, 'it exits by itself');
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'batch 0\n');
});
