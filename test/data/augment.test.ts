// End to end with the real transforms (lib/augment): files and IDX pixels through the worker pool and
// DataAugmentationDINO / the evaluation crop give, bit for bit, what the same transform gives on the
// main thread with each image's own generator; at the official sizes a batch is
// [2 x (B, 3, 224, 224), 8 x (B, 3, 96, 96)]; an image smaller than the crop is upsampled.
import t from 'tap';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DinoAugmentation, type DinoAugmentationOptions } from '../../lib/augment/dino.ts';
import { evalTransform } from '../../lib/augment/eval.ts';
import { loadImage } from '../../lib/data/dataset.ts';
import { embeddedFashionMnistDir, fashionMnist } from '../../lib/data/fashion-mnist.ts';
import { imageFolder } from '../../lib/data/folder.ts';
import { evalLoader, trainLoader, type Batch, type DataLoader } from '../../lib/data/loader.ts';
import { imageGenerator } from '../../lib/data/sampler.ts';
import { dinoTransform, evalCrop } from '../../lib/data/transform.ts';
import { writeImage, writeImageFolder } from './images.ts';

const dir = mkdtempSync(join(tmpdir(), 'augment-loader-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const root = join(dir, 'folder');
await writeImageFolder(root, 10); // 5x3 up to 23x19: all smaller than the 32-pixel crops
await writeImage(join(root, 'a', 'large.jpg'), 120, 90, 'jpeg');
copyFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data', 'cmyk.jpg'), join(root, 'b', 'cmyk.jpg'));
const folder = imageFolder(root);

async function epoch(loader: DataLoader, e: number): Promise<Batch[]> {
  const out: Batch[] = [];
  try {
    for await (const b of loader.epoch(e)) out.push(b);
  } finally {
    await loader.close();
  }
  return out;
}

// Whether every row of the batch equals the crops `apply` computes for its image on this thread.
async function sameAsMainThread(batch: Batch, apply: (index: number) => Promise<Float32Array[]>): Promise<boolean> {
  for (let row = 0; row < batch.indices.length; row++) {
    const want = await apply(batch.indices[row]);
    const ok = want.every((w, p) => {
      const got = batch.crops[p].subarray(row * w.length, (row + 1) * w.length);
      return Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(w.buffer, w.byteOffset, w.byteLength));
    });
    if (!ok) return false;
  }
  return true;
}

t.test('DataAugmentationDINO through the workers equals it on the main thread, with 1 or 2 workers', async (t) => {
  const options: DinoAugmentationOptions = { globalCropsSize: 32, localCropsSize: 16, localCropsNumber: 2 };
  const augmentation = new DinoAugmentation(options);
  const seed = 11;
  const runs = [];
  for (const numWorkers of [1, 2]) runs.push(await epoch(trainLoader(folder, { batchSize: 4, seed, numWorkers, transform: dinoTransform(options) }), 1));
  const [one, two] = runs;
  t.equal(one.length, 3, '12 images: 3 batches of 4');
  for (const b of one) {
    t.same(b.cropShapes, [[4, 3, 32, 32], [4, 3, 32, 32], [4, 3, 16, 16], [4, 3, 16, 16]]);
    t.ok(b.crops.every((c) => c.every(Number.isFinite)), 'finite values');
    t.ok(await sameAsMainThread(b, async (i) => augmentation.apply(await loadImage(folder.source(i)), imageGenerator(seed, 1, i))), `step ${b.step}: bit-identical to the main thread`);
  }
  t.ok(
    one.every((b, s) => b.crops.every((c, p) => Buffer.from(c.buffer).equals(Buffer.from(two[s].crops[p].buffer)))),
    'the same bytes with 2 workers',
  );
  t.throws(() => dinoTransform({ localCropsNumber: -1 }), RangeError, 'bad options fail when the spec is made, not in a worker');
});

t.test('the evaluation crop through the workers, in order', async (t) => {
  const options = { resize: 36, crop: 32 };
  const batches = await epoch(evalLoader(folder, { batchSize: 5, numWorkers: 2, transform: evalCrop(options) }), 0);
  t.same(batches.map((b) => b.cropShapes), [[[5, 3, 32, 32]], [[5, 3, 32, 32]], [[2, 3, 32, 32]]]);
  t.same(batches.flatMap((b) => [...b.indices]), [...Array(folder.length).keys()]);
  for (const b of batches) t.ok(await sameAsMainThread(b, async (i) => [evalTransform(await loadImage(folder.source(i)), options)]), `batch ${b.step}: bit-identical`);
});

t.test('Fashion-MNIST at the official crop sizes', async (t) => {
  const dataset = fashionMnist('test', embeddedFashionMnistDir());
  const loader = trainLoader(dataset, { batchSize: 4, numWorkers: 2, transform: dinoTransform() });
  const it = loader.epoch(0);
  try {
    const { value } = await it.next();
    const b = value as Batch;
    t.same(b.cropShapes, [...[0, 1].map(() => [4, 3, 224, 224]), ...Array.from({ length: 8 }, () => [4, 3, 96, 96])], 'two 224 crops and eight 96 crops of 4 images');
    t.same([...b.labels], [...b.indices].map((i) => dataset.labels[i]));
    const augmentation = new DinoAugmentation();
    t.ok(await sameAsMainThread(b, async (i) => augmentation.apply(await loadImage(dataset.source(i)), imageGenerator(0, 0, i))), 'bit-identical to the main thread');
  } finally {
    await it.return();
    await loader.close();
  }
});
