// Weighted k-NN against eval_knn.py's knn_classifier run by PyTorch (scripts/fixtures/knn.py): the
// ranked classes of every test image and the top-1/top-5 counts, for several k and temperatures, with
// fewer than 100 test images and fewer than five classes; then the cases the official code has no
// answer for.
import t from 'tap';
import { addon } from '../../lib/index.ts';
import { knnClassifier, knnPredict, type LabelledFeatures } from '../../lib/eval/knn.ts';
import { loadFixtures, type FixtureCase } from '../helpers/fixtures.ts';

interface Expected {
  k: number;
  correct1: number;
  correct5: number;
  top1: number;
  top5: number;
  ranked: number[][];
}

const fixtures = loadFixtures('knn');

function sets(c: FixtureCase): { train: LabelledFeatures; test: LabelledFeatures } {
  const feature = (name: string, labels: number[]) => ({
    features: Float32Array.from(c.tensors[name].data),
    dim: c.tensors[name].shape[1],
    labels: Int32Array.from(labels),
  });
  return { train: feature('train', c.attrs.train_labels), test: feature('test', c.attrs.test_labels) };
}

// The Fashion-MNIST case has no features: test/cli/eval-knn.test.ts runs it through the command line.
for (const name of ['small', 'large']) {
  const c = fixtures[name];
  t.test(`${name}: ${c.tensors.test.shape[0]} test images, ${c.attrs.num_classes} classes`, async (t) => {
    const { train, test } = sets(c);
    for (const [T, expected] of Object.entries(c.attrs.results as Record<string, Expected[]>)) {
      const temperature = Number(T);
      // Blocks of 7 rows: blocks that end inside the test set and a last short one.
      for (const chunkRows of [undefined, 7]) {
        const options = { ks: c.attrs.ks, temperature, numClasses: c.attrs.num_classes, chunkRows };
        const predictions = knnPredict(train, test, options);
        const results = knnClassifier(train, test, options);
        t.same(predictions.map((p) => p.k), expected.map((e) => e.k));
        expected.forEach((e, i) => {
          const { width, ranked } = predictions[i];
          const rows = Array.from({ length: test.labels.length }, (_, r) => [...ranked.subarray(r * width, (r + 1) * width)]);
          t.same(rows, e.ranked, `T=${T} k=${e.k} chunk ${chunkRows ?? 'default'}: ranked classes`);
          const { correct1, correct5, top1, top5, total } = results[i];
          t.same({ correct1, correct5, top1, top5, total }, { correct1: e.correct1, correct5: e.correct5, top1: e.top1, top5: e.top5, total: test.labels.length }, `T=${T} k=${e.k}: accuracies`);
        });
      }
    }
  });
}

t.test('the number of classes defaults to the labels; ks come back distinct and ascending', async (t) => {
  const c = fixtures.large;
  const { train, test } = sets(c);
  const results = knnClassifier(train, test, { ks: [20, 5, 20] });
  const expected = (c.attrs.results['0.07'] as Expected[]).filter((e) => e.k === 5 || e.k === 20);
  t.same(results.map((r) => [r.k, r.correct1, r.correct5]), expected.map((e) => [e.k, e.correct1, e.correct5]));
});

t.test('a single test image; exact ties go to the lower index and the lower class', async (t) => {
  // Three training images equally similar to the test image; k = 2 takes images 0 and 1 (classes 2
  // and 1), whose equal votes rank class 1 first; class 0 (no votes) fills the last place.
  const train = { features: Float32Array.from([1, 0, 1, 0, 1, 0, 0, 1]), dim: 2, labels: Int32Array.from([2, 1, 0, 0]) };
  const test = { features: Float32Array.from([3, 0]), dim: 2, labels: Int32Array.from([0]) };
  const [p] = knnPredict(train, test, { ks: [2] });
  t.same([...p.ranked], [1, 2]);
  const [r3] = knnPredict(train, test, { ks: [3] });
  t.same([...r3.ranked], [0, 1, 2], 'k = 3: three equal votes, in class order');
  const [r] = knnClassifier(train, test, { ks: [2] });
  t.same([r.correct1, r.correct5, r.top1, r.top5], [0, 0, 0, 0], 'label 0 is outside the top-2');
});

t.test('bad inputs are errors, and nothing is left behind', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const train = { features: new Float32Array(8).fill(1), dim: 2, labels: Int32Array.from([0, 1, 0, 1]) };
  const test = { features: Float32Array.from([1, 2]), dim: 2, labels: Int32Array.from([1]) };
  t.throws(() => knnClassifier(train, test, { ks: [5] }), /k = 5 is more than the 4 training images/);
  t.throws(() => knnClassifier(train, test, { ks: [0] }), /positive integer/);
  t.throws(() => knnClassifier(train, test, { ks: [1], temperature: 0 }), /temperature/);
  t.throws(() => knnClassifier(train, { ...test, dim: 1, labels: Int32Array.from([1, 1]) }, { ks: [1] }), /test features have 1 dimensions, training features 2/);
  t.throws(() => knnClassifier(train, { ...test, labels: Int32Array.from([1, 1]) }, { ks: [1] }), /2 labels for 1 feature rows/);
  t.throws(() => knnClassifier(train, { ...test, labels: Int32Array.from([3]) }, { ks: [1], numClasses: 2 }), /label 3 is not one of the 2 classes/);
  t.throws(() => knnClassifier(train, { ...test, features: Float32Array.from([1, NaN]) }, { ks: [1] }), /not finite/);
  t.throws(() => knnClassifier(train, { features: new Float32Array(0), dim: 2, labels: new Int32Array(0) }, { ks: [1] }), /no test features/);
  t.equal(addon.memoryStats('cpu').inUse, before);
});
