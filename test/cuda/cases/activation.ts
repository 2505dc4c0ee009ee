// Parity cases for the activation and normalisation families: gelu, softmax, log_softmax, layer_norm,
// l2_normalize, each forward and backward. Widths cover the two GPU paths (a warp per row up to 1024
// wide, a block per row beyond, with 256 or 1024 threads), their boundaries (1024, 1025, 8193), rows
// that do not fill the last block, a single row, width 1, the model's widths (197 attention, 384 / 768
// ViT, 256 bottleneck, 65,536 DINO head), empty tensors, and the non-finite rows the softmaxes define.
//
// Where the two devices round differently: the CPU's exp and normal CDF are its own polynomials
// (within ~1 ulp of exact; the CDF within 1e-7 absolute), the GPU uses expf / erfcf (within 2 / 4 ulp);
// row sums are taken in double on both, in different orders, so after rounding to float they agree to
// within 1 ulp; and either compiler may fuse a multiply-add the other does not. Every output is a few
// float operations from those, so the tolerances below are a few ulps of the terms involved.
import { randn, type Input, type ParityCase } from '../../helpers/cuda.ts';

export const cases: ParityCase[] = [];

// --- input builders -------------------------------------------------------------------------------

// x with row r (of the last axis) replaced by values(j).
function setRow(x: Input, r: number, values: (j: number) => number): Input {
  const N = x.shape[x.shape.length - 1];
  const data = Float32Array.from(x.data);
  for (let j = 0; j < N; j++) data[r * N + j] = values(j);
  return { data, shape: x.shape };
}

// x with the given flat elements replaced.
function patch(x: Input, at: [number, number][]): Input {
  const data = Float32Array.from(x.data);
  for (const [i, v] of at) data[i] = v;
  return { data, shape: x.shape };
}

// Row r of width N, in double.
const rowOf = (x: Input, r: number, N: number) => Float64Array.from({ length: N }, (_, j) => x.data[r * N + j]);

// Per-row map over the last axis, computed in double: realistic inputs for the backward ops.
function mapRows(x: Input, f: (row: Float64Array) => ArrayLike<number>): Input {
  const N = x.shape[x.shape.length - 1];
  const rows = N === 0 ? 0 : x.data.length / N;
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < rows; r++) out.set(f(rowOf(x, r, N)), r * N);
  return { data: out, shape: x.shape };
}

// Same non-finite behaviour as the ops: the max skips NaN, inf - inf and NaN propagate to the sum.
function softmaxRow(row: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function logSoftmaxRow(row: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
  return row.map((v) => v - m - Math.log(s));
}

// Per-row statistics (rows of x's last axis) as float32 vectors.
function perRow(x: Input, f: (row: Float64Array) => number): Input {
  const N = x.shape[x.shape.length - 1];
  const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = f(rowOf(x, r, N));
  return { data: out, shape: [rows] };
}

const mean = (row: Float64Array) => row.reduce((a, b) => a + b, 0) / row.length;
const rstd = (eps: number) => (row: Float64Array) => {
  const m = mean(row);
  return 1 / Math.sqrt(row.reduce((a, v) => a + (v - m) * (v - m), 0) / row.length + eps);
};
const norm = (row: Float64Array) => Math.sqrt(row.reduce((a, v) => a + v * v, 0));
function maxAbs(x: Input): number {
  let m = 0;
  for (let i = 0; i < x.data.length; i++) m = Math.max(m, Math.abs(x.data[i]));
  return m;
}

// --- gelu -----------------------------------------------------------------------------------------

// |y| = |x Phi(x)| <= 8 for x in [-8, 8): the CPU's Phi is within 1e-7 absolute and its y within
// 3.9e-7 of exact (measured over [-10, 10]), the GPU's erfcf within 4 ulp; 1e-6 absolute covers a
// couple of ulps of |y| ~ 4, rtol the rest. The negative tail is tiny in absolute terms.
const geluTol = { atol: 1e-6, rtol: 2e-6 };
// NaN propagates; -20 and -100 underflow Phi to 0 on both; large positive x gives x.
const geluSpecial = patch(randn([3, 197], 11, 8), [
  [0, NaN],
  [1, -20],
  [2, -100],
  [3, 20],
  [4, 100],
  [5, 0],
  [6, -0],
  [7, -5.5],
]);
for (const [x, what] of [
  [randn([1], 1, 4), 'one element'],
  [randn([31], 2, 4), ''],
  [randn([65537], 3, 8), 'not a multiple of the block'],
  [randn([2, 197, 1536], 4, 4), 'a ViT-S MLP hidden layer'],
  [geluSpecial, 'NaN, -0, and values whose Phi underflows or saturates'],
  [{ data: new Float32Array(0), shape: [0, 5] }, 'empty'],
] as [Input, string][]) {
  cases.push({ op: 'gelu', inputs: [x], tol: geluTol, what: what ? `gelu ${what}` : undefined });
  const dy = randn(x.shape, 100 + x.data.length, 1);
  cases.push({ op: 'gelu_backward', inputs: [dy, x], tol: geluTol, what: what ? `gelu_backward ${what}` : undefined });
}

// --- softmax / log_softmax ------------------------------------------------------------------------

// Probabilities in [0, 1]: exp within ~1 ulp on the CPU and 2 ulp on the GPU, the row sum in double,
// one rounding each for 1 / sum and the product: ~5 ulp relative. The atol only matters for
// probabilities that underflow to subnormals (x - max < -87), where relative error is meaningless.
const softmaxTol = { atol: 1e-9, rtol: 2e-6 };
// (x - max) - log(sum): x - max is exact and the same on both; log(sum) differs by the exp error
// (~3e-7 relative on the sum, so 3e-7 absolute on the log) plus a rounding of |log sum| <= 20.
const logSoftmaxTol = { atol: 1e-6, rtol: 1e-6 };

// Rows of width N holding each kind of non-finite input: -inf entries beside finite ones (probability
// 0, log-probability -inf), only -inf (all NaN), a NaN (all NaN), +inf (all NaN), +inf and -inf
// together (all NaN), and a plain row last.
function nonFinite(N: number, seed: number): Input {
  let x = randn([6, N], seed, 3);
  x = setRow(x, 0, (j) => (j % 3 === 1 || N === 1 ? -Infinity : x.data[j]));
  if (N > 1) x = patch(x, [[N - 1, -Infinity]]);  // the last entry too, and the row keeps a finite one
  x = setRow(x, 1, () => -Infinity);
  x = patch(x, [[2 * N + Math.floor(N / 2), NaN]]);
  x = patch(x, [[3 * N + N - 1, Infinity]]);
  x = patch(x, [
    [4 * N, Infinity],
    [4 * N + N - 1, -Infinity],
  ]);
  return x;
}

const softmaxInputs: [Input, string][] = [
  [randn([5, 1], 21, 3), 'width 1'],
  [randn([7, 31], 22, 3), ''],
  [randn([1, 31], 23, 3), 'one row'],
  [randn([3, 4, 197], 24, 5), 'attention rows'],
  [randn([1001, 197], 25, 5), 'rows not filling the last block'],
  [randn([13, 1000], 26, 5), ''],
  [randn([3, 1024], 27, 5), 'the widest warp row'],
  [randn([3, 1025], 28, 5), 'the narrowest block row'],
  [randn([5, 8193], 29, 5), 'the first 1024-thread row'],
  [randn([1, 65536], 30, 10), 'one DINO head row'],
  [randn([6, 65536], 31, 10), 'DINO head rows'],
  [randn([4, 197], 32, 60), 'probabilities down to subnormals'],
  [nonFinite(1, 33), 'non-finite rows, width 1'],
  [nonFinite(31, 34), 'non-finite rows, width 31'],
  [nonFinite(197, 35), 'non-finite rows, width 197'],
  [nonFinite(65536, 36), 'non-finite rows, width 65536'],
  [{ data: new Float32Array(0), shape: [0, 197] }, 'no rows'],
  [{ data: new Float32Array(0), shape: [3, 0] }, 'empty rows'],
];

for (const [x, what] of softmaxInputs) {
  const label = (op: string) => (what ? `${op} ${what} [${x.shape.join(', ')}]` : undefined);
  cases.push({ op: 'softmax', inputs: [x], tol: softmaxTol, what: label('softmax') });
  cases.push({ op: 'log_softmax', inputs: [x], tol: logSoftmaxTol, what: label('log_softmax') });

  // Backward inputs: the forward outputs of x (NaN rows stay NaN, -inf entries give 0 / -inf) and
  // dy ~ 1. softmax: y (dy - sum(dy y)), sum(dy y) a double sum of exact products rounded once, so
  // the two devices differ by one rounding of a difference of |dy| ~ 1 terms times y <= 1.
  const dy = randn(x.shape, 200 + x.data.length, 1);
  cases.push({
    op: 'softmax_backward',
    inputs: [dy, mapRows(x, softmaxRow)],
    tol: { atol: 1e-7, rtol: 1e-6 },
    what: label('softmax_backward'),
  });
  // log_softmax: dy - exp(y) sum(dy): the exp differs by ~3 ulp between the devices and a fused
  // multiply-add by one rounding, so a few ulp of |exp(y) sum(dy)|, which can exceed |dx| ~ |dy|:
  // scale the atol by the largest max(exp(y)) |sum(dy)| over the case's rows.
  const N = x.shape[x.shape.length - 1];
  const logp = mapRows(x, logSoftmaxRow);
  let term = 1;
  for (let r = 0; N > 0 && r < x.data.length / N; r++) {
    const pmax = Math.exp(rowOf(logp, r, N).reduce((a, v) => (v > a ? v : a), -Infinity));
    const s = Math.abs(rowOf(dy, r, N).reduce((a, v) => a + v, 0));
    if (Number.isFinite(pmax * s)) term = Math.max(term, pmax * s);
  }
  cases.push({
    op: 'log_softmax_backward',
    inputs: [dy, logp],
    tol: { atol: 1e-6 * term, rtol: 1e-6 },
    what: label('log_softmax_backward'),
  });
}

// --- layer_norm -----------------------------------------------------------------------------------

// y = xhat w + b with |xhat| <~ 2 and |w|, |b| <= 1: the mean and rstd come from double sums and agree
// to one rounding; the rest is the same float expression, up to where each compiler fuses a
// multiply-add: a couple of ulps of terms of size ~3. mean and rstd themselves: one rounding.
const layerNormTol = { atol: 1e-6, rtol: 1e-6 };

interface LayerNormCase {
  x: Input;
  eps?: number;
  what: string;
}

const largeMean = ((): Input => {
  const x = randn([7, 384], 41, 0.01);
  return { data: Float32Array.from(x.data, (v) => v + 1000), shape: x.shape };
})();

const layerNormCases: LayerNormCase[] = [
  { x: randn([5, 1], 42, 1), what: 'width 1 (zero variance: y = bias)' },
  { x: randn([1, 31], 43, 1), what: 'one row' },
  { x: randn([9, 31], 44, 1), what: 'width 31' },
  { x: randn([2, 197, 384], 45, 1), what: 'ViT-S tokens' },
  { x: randn([257, 768], 46, 1), what: 'ViT-B rows, one past two reduction chunks' },
  { x: randn([1, 768], 47, 1), what: 'one ViT-B row' },
  { x: randn([3, 1000], 48, 1), what: 'width 1000' },
  { x: randn([4, 1025], 49, 1), what: 'the narrowest block row' },
  { x: randn([2, 65536], 50, 1), what: 'width 65536' },
  { x: largeMean, what: 'mean 1000 with std 0.006' },
  { x: randn([6, 384], 51, 1e-3), eps: 1e-5, what: 'eps 1e-5 comparable to the variance' },
  { x: randn([6, 31], 52, 1e-3), eps: 0.1, what: 'eps 0.1 dominating the variance' },
  { x: { data: new Float32Array(0), shape: [0, 384] }, what: 'no rows (dweight, dbias written as 0)' },
];

for (const { x, eps, what } of layerNormCases) {
  const C = x.shape[x.shape.length - 1];
  const weight = randn([C], 300 + C, 1);
  const bias = randn([C], 301 + C, 1);
  const attrs = eps === undefined ? undefined : { eps };
  const label = (op: string) => `${op} ${what} [${x.shape.join(', ')}]${eps === undefined ? '' : ` eps ${eps}`}`;
  cases.push({ op: 'layer_norm', inputs: [x, weight, bias], attrs, tol: layerNormTol, what: label('layer_norm') });

  // dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w: a few roundings of terms up to
  // |g| (1 + |xhat|) ~ 3 |g|max, then times rstd (up to ~1/sqrt(eps)): scale the atol by
  // rstd_max |dy|max |w|max. dweight, dbias: double sums of the same float products in another
  // order, one final rounding: rtol covers it, the atol only sums that cancel to ~0.
  const dy = randn(x.shape, 302 + x.data.length, 1);
  const rs = perRow(x, rstd(eps ?? 1e-6));
  const scale = (x.data.length === 0 ? 1 : maxAbs(rs)) * maxAbs(dy) * maxAbs(weight);
  cases.push({
    op: 'layer_norm_backward',
    inputs: [dy, x, weight, perRow(x, mean), rs],
    tol: { atol: 2e-6 * Math.max(1, scale), rtol: 1e-5 },
    what: label('layer_norm_backward'),
  });
}

// --- l2_normalize ---------------------------------------------------------------------------------

// y = x / max(norm, eps): the norm is a double sum rounded once (same on both to one rounding), then
// one correctly rounded division and one product on both devices.
const l2Tol = { atol: 1e-7, rtol: 1e-6 };

interface L2Case {
  x: Input;
  eps?: number;
  what: string;
}

const l2Cases: L2Case[] = [
  { x: randn([5, 1], 61, 1), what: 'width 1' },
  { x: randn([1, 31], 62, 1), what: 'one row' },
  { x: randn([7, 31], 63, 1), what: 'width 31' },
  { x: randn([64, 256], 64, 1), what: 'DINO head bottleneck rows' },
  { x: randn([1001, 197], 65, 1), what: 'rows not filling the last block' },
  { x: randn([10, 1000], 66, 1), what: 'width 1000' },
  { x: randn([3, 1025], 67, 1), what: 'the narrowest block row' },
  { x: randn([2, 65536], 68, 1), what: 'width 65536' },
  // A zero row (norm 0 < eps), a row of norm ~1e-4 (< eps 1e-3), a NaN row, then ordinary rows.
  {
    x: setRow(setRow(patch(randn([5, 384], 69, 1), [[2 * 384 + 7, NaN]]), 0, () => 0), 1, (j) => (j === 3 ? 1e-4 : 0)),
    eps: 1e-3,
    what: 'rows below eps 1e-3 and a NaN row',
  },
  { x: setRow(randn([3, 31], 70, 1), 1, () => 0), what: 'a zero row with the default eps' },
  { x: { data: new Float32Array(0), shape: [3, 0] }, what: 'empty rows (norm 0)' },
  { x: { data: new Float32Array(0), shape: [0, 5] }, what: 'no rows' },
];

for (const { x, eps, what } of l2Cases) {
  const attrs = eps === undefined ? undefined : { eps };
  const label = (op: string) => `${op} ${what} [${x.shape.join(', ')}]${eps === undefined ? '' : ` eps ${eps}`}`;
  cases.push({ op: 'l2_normalize', inputs: [x], attrs, tol: l2Tol, what: label('l2_normalize') });

  // dx = dy / n - x sum(dy x) / n^3: the two terms can cancel (exactly so at width 1), leaving a few
  // ulps of the larger, which is at most ||dy|| / n: scale the atol by that over the case's rows.
  // Rows below eps: dx = dy / eps, one product, within rtol.
  const dy = randn(x.shape, 400 + x.data.length, 1);
  const n = perRow(x, norm);
  const dyNorm = perRow(dy, norm);
  let scale = 1;
  for (let r = 0; r < n.data.length; r++) {
    const nr = n.data[r];
    if (nr >= (eps ?? 1e-12)) scale = Math.max(scale, dyNorm.data[r] / nr);
  }
  cases.push({
    op: 'l2_normalize_backward',
    inputs: [dy, x, n],
    attrs,
    tol: { atol: 1e-6 * scale, rtol: 1e-5 },
    what: label('l2_normalize_backward'),
  });
}
