// Weighted k-NN classification of frozen features, as eval_knn.py's knn_classifier: features are
// L2-normalised, each test image's k most similar training images (cosine similarity) vote for their
// class with weight exp(similarity / T), and classes are ranked by their vote sums. Top-1 counts the
// first class, top-5 the first min(5, k, number of classes).
//
// Where the official code breaks, this does not: any number of test images (the official chunking
// divides by zero below 100), any number of classes (the official hard-codes 1000). Every k is served
// by one pass: the max(k) nearest neighbours of a test image are found once and each k reads a prefix.
// The similarities are computed by the native matmul on blocks of test rows, so memory stays bounded
// (about 64 MB of similarities at a time) whatever the size of the sets.
//
// Ties are broken by index: among training images with the same similarity the lower index is the
// nearer neighbour, and among classes with the same vote sum the lower class comes first. The official
// code leaves both to torch.topk and torch.sort. Equal vote sums happen in practice when fewer than
// five classes have votes: the top-5 is then filled with classes nobody voted for (in class order here),
// and such a class counts as a top-5 hit, as it does in the official code.
import { tensor } from '../engine/tensor.ts';
import { tidy } from '../engine/scope.ts';
import { noGrad } from '../autograd/tape.ts';
import { matmul } from '../ops/matmul.ts';
import { l2Normalize } from '../ops/norm.ts';

// Row-major features, one row of `dim` values per image.
export interface FeatureRows {
  features: Float32Array;
  dim: number;
}

export interface LabelledFeatures extends FeatureRows {
  labels: Int32Array;
}

export interface KnnOptions {
  // The numbers of neighbours to evaluate; each must be at most the number of training images.
  ks: readonly number[];
  // Temperature of the vote weights exp(similarity / T) (default 0.07, the official value).
  temperature?: number;
  // Classes to rank (default: one more than the largest label).
  numClasses?: number;
  // Test images per block of similarities (default: as many as fit in 2^24 similarities).
  chunkRows?: number;
}

export interface KnnPredictions {
  k: number;
  // Classes per test image in the ranking (min(5, k, numClasses)).
  width: number;
  // Row-major (test images, width): each test image's classes, best first.
  ranked: Int32Array;
}

export interface KnnResult {
  k: number;
  // Percentages of the test images.
  top1: number;
  top5: number;
  correct1: number;
  correct5: number;
  total: number;
}

export const DEFAULT_KNN_TEMPERATURE = 0.07;
export const DEFAULT_NB_KNN: readonly number[] = [10, 20, 100, 200];
const SIMILARITY_BLOCK = 1 << 24;

function rowCount(set: FeatureRows, what: string): number {
  const { features, dim } = set;
  if (!Number.isSafeInteger(dim) || dim < 1) throw new RangeError(`${what}: the feature dimension must be a positive integer, got ${dim}`);
  if (features.length % dim !== 0) throw new RangeError(`${what}: ${features.length} values are not whole rows of ${dim}`);
  for (let i = 0; i < features.length; i++) {
    if (!Number.isFinite(features[i])) throw new RangeError(`${what}: feature value ${i} is ${features[i]} (the model's output is not finite)`);
  }
  return features.length / dim;
}

function checkLabels(labels: Int32Array, rows: number, numClasses: number, what: string): void {
  if (labels.length !== rows) throw new RangeError(`${what}: ${labels.length} labels for ${rows} feature rows`);
  for (const l of labels) if (!(l >= 0 && l < numClasses)) throw new RangeError(`${what}: label ${l} is not one of the ${numClasses} classes`);
}

// The distinct k, ascending, each checked against the training set.
function checkedKs(ks: readonly number[], trainRows: number): number[] {
  if (ks.length === 0) throw new RangeError('no k given');
  for (const k of ks) {
    if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    if (k > trainRows) throw new RangeError(`k = ${k} is more than the ${trainRows} training images`);
  }
  return [...new Set(ks)].sort((a, b) => a - b);
}

// The k largest of sim[0..n) into idx/val, in descending order; the earlier index first among equals.
function topK(sim: Float32Array, k: number, idx: Int32Array, val: Float32Array): void {
  let filled = 0;
  for (let j = 0; j < sim.length; j++) {
    const v = sim[j];
    if (filled === k && !(v > val[k - 1])) continue;
    let p = filled < k ? filled++ : k - 1;
    for (; p > 0 && val[p - 1] < v; p--) {
      val[p] = val[p - 1];
      idx[p] = idx[p - 1];
    }
    val[p] = v;
    idx[p] = j;
  }
}

// The `width` classes with the most votes into out[at..], ties to the lower class.
function rankClasses(votes: Float64Array, width: number, out: Int32Array, at: number): void {
  for (let r = 0; r < width; r++) {
    let best = -1;
    for (let c = 0; c < votes.length; c++) {
      if (best >= 0 && !(votes[c] > votes[best])) continue;
      let taken = false;
      for (let q = at; q < at + r; q++) taken ||= out[q] === c;
      if (!taken) best = c;
    }
    out[at + r] = best;
  }
}

export function knnPredict(train: LabelledFeatures, test: FeatureRows, options: KnnOptions): KnnPredictions[] {
  const nTrain = rowCount(train, 'training features');
  const nTest = rowCount(test, 'test features');
  if (test.dim !== train.dim) throw new RangeError(`test features have ${test.dim} dimensions, training features ${train.dim}`);
  if (nTrain === 0) throw new RangeError('there are no training features');
  const ks = checkedKs(options.ks, nTrain);
  const T = options.temperature ?? DEFAULT_KNN_TEMPERATURE;
  if (!(T > 0 && Number.isFinite(T))) throw new RangeError(`the temperature must be a positive number, got ${T}`);
  const numClasses = options.numClasses ?? train.labels.reduce((m, l) => Math.max(m, l + 1), 1);
  checkLabels(train.labels, nTrain, numClasses, 'training features');
  const chunkRows = options.chunkRows ?? Math.max(1, Math.floor(SIMILARITY_BLOCK / nTrain));
  if (!Number.isSafeInteger(chunkRows) || chunkRows < 1) throw new RangeError(`chunkRows must be a positive integer, got ${chunkRows}`);

  const maxK = ks[ks.length - 1];
  const out = ks.map((k) => {
    const width = Math.min(5, k, numClasses);
    return { k, width, ranked: new Int32Array(nTest * width) };
  });
  const idx = new Int32Array(maxK);
  const val = new Float32Array(maxK);
  const votes = new Float64Array(numClasses);
  const { dim } = train;
  const trainT = tidy(() => l2Normalize(tensor(train.features, [nTrain, dim])));
  try {
    for (let start = 0; start < nTest; start += chunkRows) {
      const rows = Math.min(chunkRows, nTest - start);
      const sims = noGrad(() =>
        tidy(() => matmul(l2Normalize(tensor(test.features.subarray(start * dim, (start + rows) * dim), [rows, dim])), trainT, { transB: true }).data()),
      );
      for (let r = 0; r < rows; r++) {
        topK(sims.subarray(r * nTrain, (r + 1) * nTrain), maxK, idx, val);
        votes.fill(0);
        let counted = 0;
        for (const p of out) {
          for (; counted < p.k; counted++) votes[train.labels[idx[counted]]] += Math.exp(val[counted] / T);
          rankClasses(votes, p.width, p.ranked, (start + r) * p.width);
        }
      }
    }
  } finally {
    trainT.dispose();
  }
  return out;
}

// Top-1 and top-5 accuracies for each distinct k, in ascending order of k.
export function knnClassifier(train: LabelledFeatures, test: LabelledFeatures, options: KnnOptions): KnnResult[] {
  const numClasses = options.numClasses ?? Math.max(...[train.labels, test.labels].map((ls) => ls.reduce((m, l) => Math.max(m, l + 1), 1)));
  const total = test.labels.length;
  if (total === 0) throw new RangeError('there are no test features');
  checkLabels(test.labels, rowCount(test, 'test features'), numClasses, 'test features');
  return knnPredict(train, test, { ...options, numClasses }).map(({ k, width, ranked }) => {
    let correct1 = 0;
    let correct5 = 0;
    test.labels.forEach((label, i) => {
      if (ranked[i * width] === label) correct1++;
      for (let q = 0; q < width; q++) if (ranked[i * width + q] === label) correct5++;
    });
    return { k, top1: (correct1 * 100) / total, top5: (correct5 * 100) / total, correct1, correct5, total };
  });
}
