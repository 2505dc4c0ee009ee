// The linear evaluation against eval_linear.py in PyTorch (scripts/fixtures/linear.py): the probe's
// training steps (cross-entropy, SGD with momentum and weight decay, cosine annealing per epoch, short
// last batch), the accuracy, the feature layout (CLS tokens of the last n blocks; the interleaved
// average patch token) and the training crop's pixels (bilinear RandomResizedCrop and flip, exact).
// Then the pieces PyTorch cannot check: the seeded initialisation and a whole run on a few
// Fashion-MNIST images, both with stored features and with the augmenting loader.
import t from 'tap';
import { addon, dispose, Generator, tensor, tidy, VisionTransformer } from '../../lib/index.ts';
import { fashionMnist } from '../../lib/data/fashion-mnist.ts';
import { spreadSubset } from '../../lib/eval/features.ts';
import {
  checkFeatureOptions, cosineAnnealingLr, crossEntropy, LinearClassifier, linearFeatureDim, linearFeatures, linearProbeStep, scaledLr,
  topkCorrect, trainLinearProbe,
} from '../../lib/eval/linear.ts';
import { applyLinearCrop, drawLinearCrop, linearTrainCrop } from '../../lib/eval/linear-transform.ts';
import { SGD } from '../../lib/optim/sgd.ts';
import { assertClose } from '../helpers/close.ts';
import { fromFixture, loadFixtures } from '../helpers/fixtures.ts';
import { stateFromFixture } from '../model/fixture-model.ts';
import { fromBase64, loadInput, maxError } from '../augment/inputs.ts';

const cases = loadFixtures('linear');

t.test('probe training matches PyTorch step by step', async (t) => {
  for (const name of ['probe_plain', 'probe_weight_decay']) {
    const c = cases[name];
    const a = c.attrs;
    const features = c.tensors.features.data;
    const labels = Int32Array.from(c.tensors.labels.data);
    const [n, dim] = c.tensors.features.shape;
    const classes = c.tensors.weight0.shape[0];
    const clf = new LinearClassifier(dim, classes, new Generator(0));
    tidy(() => clf.loadStateDict([['linear.weight', fromFixture(c, 'weight0')], ['linear.bias', fromFixture(c, 'bias0')]]));
    const sgd = new SGD(clf.parameters(), { lr: a.lr, momentum: 0.9, weightDecay: a.weight_decay });
    const losses: number[] = [];
    const order = c.tensors.order.data;
    for (let epoch = 0; epoch < a.epochs; epoch++) {
      sgd.lr = cosineAnnealingLr(a.lr, epoch, a.epochs);
      t.ok(Math.abs(sgd.lr - a.lrs[epoch]) <= 1e-12 * a.lr, `${name}: epoch ${epoch} lr ${sgd.lr} (PyTorch ${a.lrs[epoch]})`);
      const rows = order.slice(epoch * n, (epoch + 1) * n);
      for (let start = 0; start < n; start += a.batch_size) {
        const batch = rows.slice(start, start + a.batch_size);
        const x = batch.flatMap((r) => features.slice(r * dim, (r + 1) * dim));
        losses.push(tidy(() => linearProbeStep(clf, sgd, tensor(x, [batch.length, dim]), Int32Array.from(batch, (r) => labels[r]))));
      }
    }
    // float32 throughout, as PyTorch: the differences are rounding (about 2e-7 observed).
    const tol = { atol: 1e-6, rtol: 1e-5 };
    assertClose(t, losses, c.tensors.losses.data, tol, `${name}: ${losses.length} step losses`);
    assertClose(t, clf.linear.weight, c.tensors.weight.data, tol, `${name}: final weight`);
    assertClose(t, clf.linear.bias!, c.tensors.bias.data, tol, `${name}: final bias`);
    t.ok(losses[losses.length - 1] < losses[0] - 0.1, `${name}: the loss went down (${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)})`);
    sgd.dispose();
    clf.dispose();
  }
});

t.test('cross-entropy against a direct computation', async (t) => {
  const logits = [2, -1, 0.5, 0.25, 3, -2];
  const labels = Int32Array.from([2, 1]);
  // mean over rows of log(sum exp) - logit[label]
  const rowLoss = (i: number) => {
    const row = logits.slice(3 * i, 3 * i + 3);
    return Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[labels[i]];
  };
  const want = (rowLoss(0) + rowLoss(1)) / 2;
  t.ok(Math.abs(tidy(() => crossEntropy(tensor(logits, [2, 3]), labels).item()) - want) < 1e-6, 'matches');
  t.throws(() => tidy(() => crossEntropy(tensor(logits, [2, 3]), Int32Array.from([0, 3]))), /label 3 is not one of the 3 classes/);
});

t.test('top-1 and top-5 accuracy as utils.accuracy', async (t) => {
  const c = cases.accuracy;
  const labels = Int32Array.from(c.tensors.target.data);
  const logits = Float32Array.from(c.tensors.logits.data);
  const percent = (k: number) => (100 * topkCorrect(logits, labels, k).reduce((a, b) => a + b, 0)) / labels.length;
  t.ok(Math.abs(percent(1) - c.attrs.top1) < 1e-4, `top-1 ${percent(1)} (PyTorch ${c.attrs.top1})`);
  t.ok(Math.abs(percent(5) - c.attrs.top5) < 1e-4, `top-5 ${percent(5)} (PyTorch ${c.attrs.top5})`);
  t.same([...topkCorrect(Float32Array.from([1, 1, 1]), Int32Array.from([2]), 2)], [0], 'ties rank the lower class first');
});

t.test('features: CLS tokens of the last n blocks, and the interleaved average patch token', async (t) => {
  const weights = cases.features_n1_avgpool;
  const a = weights.attrs;
  const vit = new VisionTransformer({ imgSize: a.img_size, patchSize: a.patch_size, embedDim: a.embed_dim, depth: a.depth, numHeads: a.num_heads, mlpRatio: a.mlp_ratio });
  const state = stateFromFixture(weights, 'backbone.');
  vit.loadStateDict(state);
  dispose(state.map(([, x]) => x));
  for (const name of ['features_n1_avgpool', 'features_n1', 'features_n2', 'features_n3']) {
    const c = cases[name];
    const opts = { nLastBlocks: c.attrs.n, avgpoolPatchtokens: c.attrs.avgpool };
    tidy(() => {
      const f = linearFeatures(vit, fromFixture(c, 'img'), opts);
      t.same(f.shape, c.tensors.features.shape, `${name}: shape`);
      t.equal(f.shape[1], linearFeatureDim(a.embed_dim, opts), `${name}: linearFeatureDim`);
      assertClose(t, f, c.tensors.features.data, { atol: 1e-5, rtol: 1e-5 }, name);
    });
  }
  t.throws(() => checkFeatureOptions({ nLastBlocks: 2, avgpoolPatchtokens: true }), /n = 1/, 'avgpool with n > 1 is refused (the official code fails)');
  t.throws(() => tidy(() => linearFeatures(vit, fromFixture(weights, 'img'), { nLastBlocks: 4, avgpoolPatchtokens: false })), /3 blocks, fewer than the 4/);
  t.throws(() => checkFeatureOptions({ nLastBlocks: 0, avgpoolPatchtokens: false }), /positive integer/);
  vit.dispose();
});

t.test('training crop: bilinear RandomResizedCrop and flip, exactly as Pillow', async (t) => {
  const list = Object.entries(cases).filter(([name]) => name.startsWith('train_crop_'));
  t.ok(list.length > 0);
  for (const [name, c] of list) {
    const [left, top, width, height] = c.attrs.box;
    const out = applyLinearCrop(loadInput(c.attrs.input), { box: { left, top, width, height }, flip: c.attrs.flip }, c.attrs.size);
    t.equal(maxError(out.data, fromBase64(c.attrs.expected)), 0, `${name}: ${JSON.stringify(c.attrs.box)} -> ${c.attrs.size}, flip ${c.attrs.flip}`);
  }
  const rng = new Generator(3);
  const draws = Array.from({ length: 2000 }, () => drawLinearCrop(50, 40, rng));
  const flips = draws.filter((d) => d.flip).length;
  t.ok(flips > 900 && flips < 1100, `flipped ${flips} of 2000`);
  const areas = draws.map((d) => (d.box.width * d.box.height) / 2000);
  t.ok(Math.min(...areas) < 0.15 && Math.max(...areas) > 0.9, 'crop areas span the scale range 0.08-1');
  t.throws(() => linearTrainCrop({ size: 0 }), /crop size/);
});

t.test('initial weights N(0, 0.01), zero bias, the official state-dict names', async (t) => {
  const clf = new LinearClassifier(1536, 100, new Generator(5));
  const w = clf.linear.weight.data();
  const m = w.reduce((s, v) => s + v, 0) / w.length;
  const sd = Math.sqrt(w.reduce((s, v) => s + (v - m) ** 2, 0) / w.length);
  t.ok(Math.abs(m) < 1.5e-4, `mean ${m}`);
  t.ok(Math.abs(sd - 0.01) < 2e-4, `std ${sd}`);
  t.ok(clf.linear.bias!.data().every((v) => v === 0), 'bias 0');
  t.same(clf.stateDict().map(([k, x]) => [k, [...x.shape]]), [['linear.weight', [100, 1536]], ['linear.bias', [100]]]);
  const again = new LinearClassifier(1536, 100, new Generator(5));
  t.same(again.linear.weight.data(), w, 'the seed gives the weights');
  clf.dispose();
  again.dispose();
  t.equal(scaledLr(0.001, 128), 0.0005, 'lr * batch / 256');
});

t.test('a whole probe on a few Fashion-MNIST images', async (t) => {
  const vit = new VisionTransformer({ imgSize: 28, patchSize: 7, embedDim: 16, depth: 2, numHeads: 2, generator: new Generator(1) });
  const train = spreadSubset(fashionMnist('train'), 40);
  const val = spreadSubset(fashionMnist('test'), 20);
  const base = { nLastBlocks: 2, avgpoolPatchtokens: false, epochs: 3, lr: 0.5, batchSize: 16, weightDecay: 0, seed: 0, resize: 28, crop: 28, valFreq: 2, numWorkers: 1 };
  for (const precomputeFeatures of [true, false]) {
    const before = addon.memoryStats('cpu').inUse;
    const lines: string[] = [];
    const r = await trainLinearProbe(vit, train, val, { ...base, precomputeFeatures, log: (l) => lines.push(l) });
    t.equal(r.featureDim, 32);
    t.same(r.history.map((h) => h.epoch), [0, 1, 2]);
    t.same(r.history.map((h) => h.val !== undefined), [true, false, true], 'evaluated at epochs 0 and 2 (val-freq 2) and at the last');
    t.same(r.final, r.history[2].val);
    t.equal(r.final.images, 20);
    t.ok(r.final.top5 !== null && r.final.top1 >= 0 && r.final.top1 <= r.final.top5 && r.final.top5 <= 100);
    t.ok(r.history.every((h) => Number.isFinite(h.trainLoss)));
    t.ok(Math.abs(r.history[1].lr - cosineAnnealingLr(scaledLr(0.5, 16), 1, 3)) < 1e-15, 'cosine-annealed lr');
    t.ok(lines.some((l) => l.startsWith('epoch 3/3')), 'one line per epoch');
    r.classifier.dispose();
    t.equal(addon.memoryStats('cpu').inUse, before, `precompute ${precomputeFeatures}: nothing leaked`);
  }
  vit.dispose();
});
