// The pieces together: the embedded Fashion-MNIST subset through the worker loader and the real DINO
// augmentation into a small trainer, for a few steps (the training command builds on exactly this).
import t from 'tap';
import { DinoTrainer, addon, dinoTransform, fashionMnist, tensor, tidy, trainLoader } from '../../lib/index.ts';

t.test('a few DINO steps on the bundled Fashion-MNIST subset', async (t) => {
  const data = fashionMnist('train');
  t.equal(data.length >= 5000, true, `${data.length} training images`);
  const loader = trainLoader(data, {
    batchSize: 8,
    seed: 0,
    numWorkers: 2,
    transform: dinoTransform({ globalCropsSize: 32, localCropsSize: 16, localCropsNumber: 2 }),
  });
  const trainer = new DinoTrainer(
    { embedDim: 32, depth: 2, numHeads: 2, patchSize: 8, imgSize: 32, outDim: 128, headHiddenDim: 64, headBottleneckDim: 32, localCropsNumber: 2, batchSize: 8, epochs: 1, warmupEpochs: 0 },
    loader.batchesPerEpoch,
  );
  const losses: number[] = [];
  const inUse: number[] = [];
  try {
    for await (const batch of loader.epoch(0)) {
      t.same(batch.cropShapes, [[8, 3, 32, 32], [8, 3, 32, 32], [8, 3, 16, 16], [8, 3, 16, 16]], `batch ${batch.step}: crops [global, global, local, local]`);
      losses.push(tidy(() => trainer.step(batch.crops.map((c, i) => tensor(c, batch.cropShapes[i]))).loss));
      inUse.push(addon.memoryStats('cpu').inUse);
      if (losses.length === 3) break;
    }
  } finally {
    await loader.close();
  }
  t.equal(losses.length, 3);
  t.ok(losses.every(Number.isFinite), `losses ${losses.map((l) => l.toFixed(4)).join(', ')}`);
  t.equal(loader.skippedCount, 0, 'no image skipped');
  // The optimizer's moments appear with the first step; after that, steps leave nothing behind.
  t.equal(inUse[2], inUse[0], `bytes in use after steps 1 and 3: ${inUse[0]}, ${inUse[2]}`);
  trainer.dispose();
});
