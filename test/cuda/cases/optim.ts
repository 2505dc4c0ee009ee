// Parity cases for batch normalisation, the optimizer ops (AdamW, EMA, assign, norm, clipping) and bicubic
// interpolation. The CUDA kernels repeat the CPU's float and double operations in the CPU's order (no
// fused multiply-adds, column sums over the rows in order, the same taps), so most of these are expected
// to match bitwise and are compared exactly. The norm is the exception: its double sum runs in another
// order, which can move the float result by an ulp, and the clipped gradient inherits that. Batch norm is
// the other: its CPU kernels are also built for AVX-512 (DINO_SIMD_CLONES), where GCC fuses their
// multiply-adds, so on such a CPU they round once where the GPU (and the CPU's other builds) round twice.
import { randn, type Input, type ParityCase } from '../../helpers/cuda.ts';

const exact = { atol: 0, rtol: 0 };
// An ulp or two of a float (1.2e-7 relative per ulp), for values derived from a norm summed in another order.
const normTol = { atol: 0, rtol: 1e-6 };
// An ulp or two of the largest term (|x - mean| * rstd * weight is at most ~10 here; ~200 in the offset-100
// evaluation case, which rtol covers since its outputs are as large): the CPU's fused multiply-adds.
const batchNormTol = { atol: 4e-6, rtol: 2e-6 };

function map(x: Input, f: (v: number, i: number) => number): Input {
  return { data: Float32Array.from(x.data, f), shape: x.shape };
}
const shifted = (x: Input, by: number): Input => map(x, (v) => v + by);
const positive = (x: Input, floor: number): Input => map(x, (v) => Math.abs(v) + floor);
const scalar = (v: number): Input => ({ data: [v], shape: [] });
const filled = (shape: number[], v: number): Input => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape });

// --- batch_norm and its backward ----------------------------------------------------------------------

function batchNorm(N: number, C: number, offset: number, training: boolean, seed: number): ParityCase {
  const inputs = [
    shifted(randn([N, C], seed, 2), offset), // x: a large offset checks the centring against cancellation
    randn([C], seed + 1),
    randn([C], seed + 2),
    randn([C], seed + 3, 5), // running_mean
    positive(randn([C], seed + 4), 0.25), // running_var
    scalar(7), // num_batches_tracked
  ];
  return {
    op: 'batch_norm',
    inputs,
    attrs: { training, momentum: 0.1, eps: 1e-5 },
    tol: batchNormTol,
    // Training writes the running statistics and the counter; evaluation must leave them as they were.
    written: [3, 4, 5],
    what: `batch_norm (${N}, ${C}) offset ${offset} ${training ? 'training' : 'evaluation'}`,
  };
}

function batchNormBackward(N: number, C: number, training: boolean, seed: number): ParityCase {
  const offset = 3;
  return {
    op: 'batch_norm_backward',
    inputs: [
      randn([N, C], seed), // dy
      shifted(randn([N, C], seed + 1, 2), offset), // x
      randn([C], seed + 2), // weight
      shifted(randn([C], seed + 3, 0.1), offset), // mean, near the batch mean as the forward saves it
      positive(randn([C], seed + 4), 0.5), // rstd
    ],
    attrs: { training },
    tol: batchNormTol,
    what: `batch_norm_backward (${N}, ${C}) ${training ? 'training' : 'evaluation'}`,
  };
}

const batchNormCases: ParityCase[] = [];
for (const training of [true, false]) {
  batchNormCases.push(
    batchNorm(2, 1, 0, training, 11),
    batchNorm(7, 65, 100, training, 12),
    batchNorm(129, 300, -0.5, training, 13),
    batchNorm(640, 2048, 1, training, 14), // the DINO head's hidden width, a batch of crops
    batchNormBackward(2, 1, training, 21),
    batchNormBackward(7, 65, training, 22),
    batchNormBackward(129, 300, training, 23),
    batchNormBackward(640, 2048, training, 24),
  );
}
batchNormCases.push(batchNorm(1, 5, 0, false, 15)); // one row is allowed in evaluation
batchNormCases.push(batchNormBackward(1, 5, false, 25));

// --- adamw_step, ema_update, assign --------------------------------------------------------------------

function adamw(shape: number[], step: number, weightDecay: number, seed: number): ParityCase {
  return {
    op: 'adamw_step',
    inputs: [
      randn(shape, seed), // param
      randn(shape, seed + 1, 0.01), // grad
      randn(shape, seed + 2, 0.001), // exp_avg
      positive(randn(shape, seed + 3, 1e-5), 0), // exp_avg_sq
    ],
    attrs: { lr: 5e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, step },
    tol: exact,
    written: [0, 2, 3],
    what: `adamw_step [${shape.join(', ')}] step ${step} weightDecay ${weightDecay}`,
  };
}

const optimCases: ParityCase[] = [
  adamw([1], 1, 0, 31),
  adamw([1000], 1, 0.04, 32),
  adamw([37, 29], 10, 0, 33),
  adamw([65537], 1000, 0.04, 34),
  adamw([384, 1536], 250000, 0.4, 35), // a ViT-S MLP weight late in training: the bias corrections near 1
  { ...adamw([300], 3, 0.04, 36), attrs: { lr: 1e-3, beta1: 0.3, beta2: 0.5, eps: 1e-6, weightDecay: 0.04, step: 3 }, what: 'adamw_step [300] small betas' },
];
for (const [n, momentum] of [
  [1, 0.996],
  [4097, 0.996],
  [65536 + 3, 0.9995],
  [100, 0],
  [100, 1],
] as const) {
  optimCases.push({
    op: 'ema_update',
    inputs: [randn([n], 41 + n), randn([n], 42 + n)],
    attrs: { momentum },
    tol: exact,
    written: [0],
    what: `ema_update [${n}] momentum ${momentum}`,
  });
}
optimCases.push(
  { op: 'assign', inputs: [randn([3, 5], 51), randn([3, 5], 52)], tol: exact, written: [0] },
  { op: 'assign', inputs: [randn([70001], 53), randn([70001], 54)], tol: exact, written: [0] },
);

// --- norm, norm_backward, clip_grad_norm ---------------------------------------------------------------

for (const shape of [[0], [1], [1000], [257, 129], [(1 << 20) + 3]]) {
  optimCases.push({ op: 'norm', inputs: [randn(shape, 61 + shape[0], 3)], tol: normTol });
}
optimCases.push(
  { op: 'norm', inputs: [filled([5000], 0)], tol: exact, what: 'norm of zeros' },
  { op: 'norm_backward', inputs: [randn([1000], 71), scalar(3.5), scalar(0.7)], tol: exact },
  { op: 'norm_backward', inputs: [randn([65537], 72), scalar(123.25), scalar(-2)], tol: exact },
  { op: 'norm_backward', inputs: [filled([10], 0), scalar(0), scalar(1)], tol: exact, what: 'norm_backward at zero' },
);
// randn in [-1, 1): the norm of n values is about sqrt(n / 3).
for (const [n, maxNorm] of [
  [5000, 3], // norm ~41: clipped
  [5000, 100], // not clipped: grad untouched
  [1, 0.5],
  [(1 << 20) + 3, 3],
  [(1 << 20) + 3, 1e4],
] as const) {
  optimCases.push({
    op: 'clip_grad_norm',
    inputs: [randn([n], 81 + n)],
    attrs: { maxNorm },
    tol: normTol,
    written: [0],
    what: `clip_grad_norm [${n}] maxNorm ${maxNorm}`,
  });
}
optimCases.push({
  op: 'clip_grad_norm',
  inputs: [filled([100], 0)],
  attrs: { maxNorm: 1 },
  tol: exact,
  written: [0],
  what: 'clip_grad_norm of zeros',
});

// --- bicubic_interpolate and its backward --------------------------------------------------------------

// DINO's interpolate_pos_encoding: a g0 x g0 grid of position embeddings to g x g, with the scale factor
// (g + 0.1) / g0, so that in * scale is not an integer and the given scale, not out / in, sets the taps.
function posEncoding(planes: number, g0: number, g: number, seed: number): ParityCase[] {
  const s = (g + 0.1) / g0;
  return [
    {
      op: 'bicubic_interpolate',
      inputs: [randn([1, planes, g0, g0], seed, 0.1)],
      attrs: { scaleH: s, scaleW: s, outH: g, outW: g },
      tol: exact,
      what: `bicubic_interpolate (1, ${planes}, ${g0}, ${g0}) -> ${g} x ${g}`,
    },
    {
      op: 'bicubic_interpolate_backward',
      inputs: [randn([1, planes, g, g], seed + 1)],
      attrs: { inH: g0, inW: g0, scaleH: s, scaleW: s },
      tol: exact,
      what: `bicubic_interpolate_backward (1, ${planes}, ${g}, ${g}) -> ${g0} x ${g0}`,
    },
  ];
}

const interpolateCases: ParityCase[] = [
  ...posEncoding(384, 14, 6, 91), // ViT-S/16 local crops (96 px)
  ...posEncoding(384, 14, 14, 92), // same size: scale 14.1/14, not the identity
  ...posEncoding(384, 14, 60, 93), // upsampling by 4.3
  ...posEncoding(768, 28, 60, 94), // ViT-B/8 at 480 px
  ...posEncoding(3, 60, 6, 95), // strong downsampling
  ...posEncoding(2, 6, 37, 96),
  // Unequal scales, the output size from floor(in * scale), one pixel wide images.
  { op: 'bicubic_interpolate', inputs: [randn([2, 3, 5, 7], 101)], attrs: { scaleH: 1.7, scaleW: 0.61 }, tol: exact },
  { op: 'bicubic_interpolate_backward', inputs: [randn([2, 3, 8, 4], 102)], attrs: { inH: 5, inW: 7, scaleH: 1.7, scaleW: 0.61 }, tol: exact },
  { op: 'bicubic_interpolate', inputs: [randn([1, 2, 1, 1], 103)], attrs: { scaleH: 4, scaleW: 3 }, tol: exact },
  { op: 'bicubic_interpolate_backward', inputs: [randn([1, 2, 4, 3], 104)], attrs: { inH: 1, inW: 1, scaleH: 4, scaleW: 3 }, tol: exact },
  { op: 'bicubic_interpolate', inputs: [randn([1, 1, 3, 40], 105)], attrs: { scaleH: 13.4, scaleW: 0.05 }, tol: exact },
  { op: 'bicubic_interpolate_backward', inputs: [randn([1, 1, 40, 2], 106)], attrs: { inH: 3, inW: 40, scaleH: 13.4, scaleW: 0.05 }, tol: exact },
  // No planes: an empty output, nothing launched.
  { op: 'bicubic_interpolate', inputs: [randn([0, 3, 4, 4], 107)], attrs: { scaleH: 2, scaleW: 2 }, tol: exact },
  { op: 'bicubic_interpolate_backward', inputs: [randn([1, 0, 8, 8], 108)], attrs: { inH: 4, inW: 4, scaleH: 2, scaleW: 2 }, tol: exact },
];

export const cases: ParityCase[] = [...batchNormCases, ...optimCases, ...interpolateCases];
