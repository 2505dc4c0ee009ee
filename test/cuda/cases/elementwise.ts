// Parity cases for the elementwise ops (arithmetic with broadcasting, affine, sum and mean, reshape, cast)
// and the shape ops (concat, slice, slice_backward, permute). Everything but the sums is an exact IEEE
// operation or a copy on both devices (the GPU uses the _rn intrinsics, which never fuse, and copies the
// CPU's cast bit logic), so those are compared exactly. Sums accumulate in double on both devices but in
// another order, which can move the float result by an ulp when the double sum lies next to a rounding
// tie; they get an ulp-sized tolerance.
import { randn, type Input, type ParityCase } from '../../helpers/cuda.ts';

const exact = { atol: 0, rtol: 0 };
// An ulp of a float is 6e-8 to 1.2e-7 relative; atol covers sums that cancel to near zero.
const sumTol = { atol: 1e-6, rtol: 1e-6 };

const scalar = (v: number): Input => ({ data: [v], shape: [] });

// Values that stress IEEE semantics: signed zeros, infinities, NaN, subnormals, the largest floats.
const specials = [0, -0, 1, -1, Infinity, -Infinity, NaN, 1e-40, -1e-40, 1.4e-45, 3.4e38, -3.4e38, 1e-38, 0.1, 3, -7];

// randn with every `every`-th value replaced by the next special value.
function withSpecials(shape: readonly number[], seed: number, every = 7): Input {
  const x = randn(shape, seed);
  const data = Float32Array.from(x.data);
  for (let i = 0, k = 0; i < data.length; i += every, k++) data[i] = specials[k % specials.length];
  return { data, shape };
}

// --- add, sub, mul, div -------------------------------------------------------------------------------

const binaryOps = ['add', 'sub', 'mul', 'div'];

// Shape pairs: the model's broadcasts first, then the edge cases.
const binaryShapes: [number[], number[], string][] = [
  [[4, 37, 384], [384], '(B, T, C) + (C): biases'],
  [[4, 1, 1], [4, 37, 65], '(B, 1, 1) * (B, T, C): per-sample scales'],
  [[1, 97], [33, 97], '(1, D) - (N, D)'],
  [[33, 97], [33, 1], '(N, D) / (N, 1): per-row'],
  [[], [5, 7], 'scalar tensor on the left'],
  [[3, 5], [], 'scalar tensor on the right'],
  [[], [], 'two scalar tensors'],
  [[100003], [100003], 'same shape, not a multiple of the block'],
  [[3, 1, 5], [1, 4, 1], 'both sides broadcast'],
  [[2, 1, 3, 1, 2, 1, 3], [1, 3, 1, 2, 1, 4, 1], 'rank 7, alternating broadcasts (no dims merge)'],
  [[1, 1, 1, 6], [2, 3, 1, 6], 'leading size-1 dims'],
  [[0, 5], [5], 'empty'],
];

function binaryCases(): ParityCase[] {
  const out: ParityCase[] = [];
  binaryOps.forEach((op, k) => {
    for (const [sa, sb, what] of binaryShapes) {
      out.push({ op, inputs: [randn(sa, 10 + k, 2), randn(sb, 20 + k, 2)], tol: exact, what: `${op} ${what}` });
    }
    // NaN, inf, signed zeros and subnormals on both sides, so that 0/0, inf-inf, x/0 and subnormal results occur.
    out.push({
      op,
      inputs: [withSpecials([16, 17], 30 + k, 3), withSpecials([16, 17], 40 + k, 5)],
      tol: exact,
      what: `${op} with NaN, inf, zeros and subnormals`,
    });
    out.push({
      op,
      inputs: [withSpecials([9, 16], 50 + k, 2), { data: specials, shape: [16] }],
      tol: exact,
      what: `${op} broadcasting a row of special values`,
    });
  });
  return out;
}

// --- broadcast_to, affine -----------------------------------------------------------------------------

const broadcastCases: ParityCase[] = [
  { op: 'broadcast_to', inputs: [randn([384], 60)], attrs: { shape: [4, 37, 384] }, tol: exact, what: 'broadcast_to (C) -> (B, T, C)' },
  { op: 'broadcast_to', inputs: [randn([3, 1], 61)], attrs: { shape: [2, 3, 5] }, tol: exact, what: 'broadcast_to (3, 1) -> (2, 3, 5)' },
  { op: 'broadcast_to', inputs: [scalar(-0)], attrs: { shape: [4, 4] }, tol: exact, what: 'broadcast_to of a scalar tensor (-0)' },
  { op: 'broadcast_to', inputs: [withSpecials([16, 1], 62, 1)], attrs: { shape: [16, 33] }, tol: exact, what: 'broadcast_to of special values' },
  { op: 'broadcast_to', inputs: [randn([2, 7], 63)], attrs: { shape: [2, 7] }, tol: exact, what: 'broadcast_to its own shape' },
  { op: 'broadcast_to', inputs: [randn([1, 5], 64)], attrs: { shape: [0, 5] }, tol: exact, what: 'broadcast_to an empty shape' },
];

const affineCases: ParityCase[] = [
  { op: 'affine', inputs: [randn([100003], 70, 3)], attrs: { alpha: -0.3, beta: 2 }, tol: exact, what: 'affine -0.3 x + 2, odd size' },
  { op: 'affine', inputs: [randn([4, 37, 65], 71)], attrs: { alpha: 1 / 3 }, tol: exact, what: 'affine x / 3' },
  { op: 'affine', inputs: [withSpecials([5, 31], 72, 1)], attrs: { alpha: 1e30, beta: -0.5 }, tol: exact, what: 'affine of special values, overflowing' },
  { op: 'affine', inputs: [scalar(2.5)], attrs: { alpha: -1 }, tol: exact, what: 'affine of a scalar tensor' },
  { op: 'affine', inputs: [randn([0, 3], 73)], attrs: { alpha: 2, beta: 1 }, tol: exact, what: 'affine of an empty tensor' },
];

// --- sum, mean ----------------------------------------------------------------------------------------

function reduceCases(): ParityCase[] {
  const out: ParityCase[] = [];
  const x = randn([4, 37, 65], 80, 2);
  const axesList: (number[] | undefined)[] = [[0], [1], [2], [-1], [0, 2], [0, 1], [1, 2], [0, 1, 2], undefined];
  for (const op of ['sum', 'mean']) {
    for (const axes of axesList) {
      for (const keepdim of [false, true]) {
        out.push({
          op,
          inputs: [x],
          attrs: { axes, keepdim },
          tol: sumTol,
          what: `${op} (4, 37, 65) over ${axes ? `[${axes.join(', ')}]` : 'all axes'}${keepdim ? ', keepdim' : ''}`,
        });
      }
    }
    const more: [number[], number[] | undefined, string][] = [
      [[2, 65536], [-1], '65,536-wide rows (the DINO head)'],
      [[1, 300007], undefined, 'one long row, split into chunks'],
      [[5000, 37], [1], 'many short rows (a warp each)'],
      [[3, 9000], [1], 'a few mid-sized rows'],
      [[2048, 384], [0], 'columns over 2048 rows (split into chunks)'],
      [[64, 37, 384], [0, 1], 'columns of (B*T, C)'],
      [[3, 100, 700], [1], 'columns, outer > 1'],
      [[600, 500], [0], 'columns, many outputs'],
      [[7, 1, 5], [1], 'a size-1 axis'],
      [[3, 0, 4], [1], 'an empty axis'],
      [[], undefined, 'a scalar tensor (nothing reduced: a copy)'],
      [[5], [0], 'a vector'],
    ];
    more.forEach(([shape, axes, what], k) => {
      out.push({ op, inputs: [randn(shape, 90 + k, 3)], attrs: { axes }, tol: sumTol, what: `${op} ${what}` });
    });
    // Rows holding NaN, +inf, -inf, and +inf with -inf; columns likewise through the column kernel.
    const rows = randn([5, 100], 110);
    const data = Float32Array.from(rows.data);
    data[100 + 17] = NaN;
    data[200 + 3] = Infinity;
    data[300 + 50] = -Infinity;
    data[400 + 1] = Infinity;
    data[400 + 99] = -Infinity;
    out.push({ op, inputs: [{ data, shape: [5, 100] }], attrs: { axes: [1] }, tol: sumTol, what: `${op} of rows with NaN and inf` });
    out.push({ op, inputs: [{ data, shape: [5, 100] }], attrs: { axes: [0] }, tol: sumTol, what: `${op} of columns with NaN and inf` });
  }
  return out;
}

// --- reshape, cast --------------------------------------------------------------------------------------

const reshapeCases: ParityCase[] = [
  { op: 'reshape', inputs: [randn([4, 6], 120)], attrs: { shape: [2, -1, 3] }, tol: exact, what: 'reshape (a view)' },
];

// The float32 copy path of cast; the 16-bit directions, compared bit for bit, are castCases16 below.
const castCases: ParityCase[] = [
  { op: 'cast', inputs: [withSpecials([7, 33], 130, 2)], attrs: { dtype: 'float32' }, tol: exact, what: 'cast float32 -> float32 (a copy)' },
  { op: 'cast', inputs: [scalar(-0)], attrs: { dtype: 'float32' }, tol: exact, what: 'cast of a scalar tensor' },
  { op: 'cast', inputs: [randn([0, 4], 131)], attrs: { dtype: 'float32' }, tol: exact, what: 'cast of an empty tensor' },
];

// float32 values at the edges of the 16-bit formats: ties that round to even (both ways), values just
// above and below a tie, the largest finite halves and what rounds past them to inf, half subnormals and
// what underflows to zero, bfloat16 rounding carrying into the exponent, NaNs with payloads.
function castValues32(): Float32Array {
  const bits = [
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xff812345,
    0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x3f80ffff, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x3fffffff,
    0x00000001, 0x80000001, 0x007fffff, 0x00800000, // float subnormals and the smallest normal
    0x3f801000, 0x3f803000, 0x3f801001, 0x3f800fff, // float16 ties at 1 (half ulp 2^-11)
    0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000, 0xc77ff000, // 65504, just under/at the inf cut-off
    0x38800000, 0x387fffff, 0x38000000, 0x33800000, 0x33000000, 0x32ffffff, 0x33000001, 0xb3000001, // half subnormals
    0x33c00000, 0x34400000, 0x34a00000, 0x37ffe000, 0x387fe000, 0x387ff000, // subnormal ties and rounding up to normal
  ];
  const u = new Uint32Array(bits.length + 64);
  u.set(bits);
  const r = new Float32Array(u.buffer);
  const noise = randn([64], 140, 1000);
  for (let i = 0; i < 64; i++) r[bits.length + i] = noise.data[i];
  return r;
}

function castValues16(): Uint16Array {
  // Every bit pattern of a 16-bit format: zeros, subnormals, normals, inf and NaNs with all payloads.
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all[i] = i;
  return all;
}

const edges32: Input = { data: castValues32(), shape: [castValues32().length] };

const castCases16: ParityCase[] = [
  { op: 'cast', inputs: [edges32], attrs: { dtype: 'bfloat16' }, tol: exact, what: 'cast float32 -> bfloat16 edge values' },
  { op: 'cast', inputs: [edges32], attrs: { dtype: 'float16' }, tol: exact, what: 'cast float32 -> float16 edge values' },
  { op: 'cast', inputs: [randn([1000003], 141, 70000)], attrs: { dtype: 'float16' }, tol: exact, what: 'cast float32 -> float16, odd size, overflowing' },
  { op: 'cast', inputs: [randn([1000003], 142, 3)], attrs: { dtype: 'bfloat16' }, tol: exact, what: 'cast float32 -> bfloat16, odd size' },
  { op: 'cast', inputs: [{ data: castValues16(), shape: [256, 256], dtype: 'bfloat16' }], attrs: { dtype: 'float32' }, tol: exact, what: 'cast bfloat16 -> float32, every bit pattern' },
  { op: 'cast', inputs: [{ data: castValues16(), shape: [256, 256], dtype: 'float16' }], attrs: { dtype: 'float32' }, tol: exact, what: 'cast float16 -> float32, every bit pattern' },
  { op: 'cast', inputs: [{ data: castValues16().subarray(0, 77), shape: [7, 11], dtype: 'float16' }], attrs: { dtype: 'float16' }, tol: exact, what: 'cast float16 -> float16 (a copy)' },
];

// --- concat, slice, slice_backward ----------------------------------------------------------------------

function concatCases(): ParityCase[] {
  const out: ParityCase[] = [];
  const base = [3, 5, 7];
  for (const axis of [0, 1, 2, -1]) {
    const ax = axis < 0 ? axis + 3 : axis;
    const lens = [2, 1, 4, 3];
    const inputs = lens.map((len, k) => randn(base.map((s, d) => (d === ax ? len : s)), 150 + k));
    out.push({ op: 'concat', inputs, attrs: { axis }, tol: exact, what: `concat of 4 along axis ${axis}` });
    const withEmpty = [2, 0, 3].map((len, k) => randn(base.map((s, d) => (d === ax ? len : s)), 160 + k));
    out.push({ op: 'concat', inputs: withEmpty, attrs: { axis }, tol: exact, what: `concat of 3 along axis ${axis}, one empty` });
  }
  // The class token before the patch tokens: (B, 1, C) and (B, T, C) along axis 1; and three long rows.
  out.push({ op: 'concat', inputs: [randn([4, 1, 384], 170), randn([4, 36, 384], 171)], attrs: { axis: 1 }, tol: exact, what: 'concat class token + patches' });
  out.push({ op: 'concat', inputs: [randn([2, 40001], 172), randn([2, 3], 173), randn([2, 25000], 174)], attrs: { axis: -1 }, tol: exact, what: 'concat of 3 long rows' });
  out.push({ op: 'concat', inputs: [randn([5], 175)], attrs: { axis: 0 }, tol: exact, what: 'concat of one input' });
  return out;
}

function sliceCases(): ParityCase[] {
  const out: ParityCase[] = [];
  const x = randn([4, 9, 6], 180);
  const ranges: [number, number, number, string][] = [
    [1, 0, 9, 'the whole axis'],
    [1, 0, 1, 'the first element (class token)'],
    [1, 1, 9, 'all but the first'],
    [1, 8, 9, 'the last element'],
    [1, -3, 100, 'negative start, end past the axis'],
    [1, 5, 2, 'an empty range'],
    [0, 3, 4, 'the last of axis 0'],
    [2, 1, 5, 'the middle of the last axis'],
    [-1, -1, 6, 'the last element of the last axis'],
  ];
  for (const [axis, start, end, what] of ranges) {
    out.push({ op: 'slice', inputs: [x], attrs: { axis, start, end }, tol: exact, what: `slice ${what}` });
  }
  out.push({ op: 'slice', inputs: [randn([3, 70001], 181)], attrs: { axis: 1, start: 12345, end: 65536 }, tol: exact, what: 'slice of long rows' });
  // slice_backward(dy, {axis, start, size}): dy has the slice's shape.
  const back: [number[], number, number, number, string][] = [
    [[4, 1, 6], 1, 0, 9, 'at the start'],
    [[4, 1, 6], 1, 8, 9, 'at the end'],
    [[4, 1, 6], 1, -1, 9, 'negative start'],
    [[4, 9, 6], 1, 0, 9, 'the whole axis'],
    [[4, 0, 6], 1, 3, 9, 'an empty slice (all zeros)'],
    [[4, 9, 3], 2, 2, 6, 'the last axis, in the middle'],
    [[2, 9, 6], 0, 2, 4, 'axis 0, at the end'],
    [[3, 30000], 1, 100, 70001, 'long rows'],
  ];
  back.forEach(([shape, axis, start, size, what], k) => {
    out.push({ op: 'slice_backward', inputs: [randn(shape, 190 + k)], attrs: { axis, start, size }, tol: exact, what: `slice_backward ${what}` });
  });
  return out;
}

// --- permute ----------------------------------------------------------------------------------------------

const permutes: [number[], number[], string][] = [
  [[67, 129], [1, 0], 'rank 2 transpose, ragged tiles'],
  [[300, 257], [1, 0], 'rank 2 transpose, larger'],
  [[1, 129], [1, 0], 'rank 2 with a size-1 dim (a copy)'],
  [[5, 37, 65], [0, 2, 1], 'rank 3, batched transpose'],
  [[5, 37, 65], [2, 0, 1], 'rank 3, (2, 0, 1)'],
  [[5, 37, 65], [1, 0, 2], 'rank 3, rows stay contiguous'],
  [[5, 37, 65], [0, 1, 2], 'rank 3, identity'],
  [[2, 6, 37, 64], [0, 2, 1, 3], 'rank 4, (B, H, T, hd) -> (B, T, H, hd)'],
  [[1, 7, 7, 16], [0, 3, 1, 2], 'rank 4, (1, g, g, D) -> (1, D, g, g)'],
  [[3, 4, 5, 6], [3, 2, 1, 0], 'rank 4, reversed'],
  [[2, 37, 3, 6, 64], [2, 0, 3, 1, 4], 'rank 5, qkv (B, T, 3, H, hd) -> (3, B, H, T, hd)'],
  [[2, 3, 4, 5, 33], [4, 1, 3, 0, 2], 'rank 5, last dim moved first'],
  [[3, 1, 5, 1, 7], [4, 3, 2, 1, 0], 'rank 5 with size-1 dims'],
  [[4, 0, 3], [2, 1, 0], 'an empty tensor'],
  [[], [], 'a scalar tensor'],
];

const permuteCases: ParityCase[] = permutes.map(([shape, dims, what], k) => ({
  op: 'permute',
  inputs: [randn(shape, 200 + k)],
  attrs: { dims },
  tol: exact,
  what: `permute ${what}`,
}));

export const cases: ParityCase[] = [
  ...binaryCases(),
  ...broadcastCases,
  ...affineCases,
  ...reduceCases(),
  ...reshapeCases,
  ...castCases,
  ...castCases16,
  ...concatCases(),
  ...sliceCases(),
  ...permuteCases,
];
