// PIL's Image.resize with BICUBIC, as torchvision applies it to PIL images (Resize, and
// RandomResizedCrop's crop-then-resize), reproduced to the bit. Pillow's libImaging/Resample.c:
// - a separable convolution, horizontal pass first, then vertical; each pass rounds to uint8;
// - the kernel is Keys' cubic with a = -0.5 (PyTorch's bicubic uses -0.75) and support 2, widened by
//   the scale factor when downscaling (antialiasing): support = 2 * max(in / out, 1);
// - output pixel x samples around centre (x + 0.5) * in / out; the taps run from
//   trunc(centre - support + 0.5) to trunc(centre + support + 0.5), clipped to the image, and their
//   weights are normalised to sum 1 in double precision, then turned into 22-bit fixed point
//   (rounded half away from zero);
// - each output is (2^21 + sum(pixel * weight)) >> 22, clipped to [0, 255];
// - a pass is skipped when its size does not change; the horizontal pass only computes the rows the
//   vertical one reads.
// Pillow 13 started running the vertical pass first for images shrunk much more in height than in
// width; before that (every Pillow torchvision 0.8 ran on) the order was always horizontal first,
// which is what this does.
//
// The crop is not copied: the resize reads the box of the source directly, which is exactly
// torchvision's crop followed by resize (taps never reach outside the box).
import { checkImage, createImage, type RgbImage } from './image.ts';

// Integer pixel box, inside the image.
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const A = -0.5;

function bicubic(x: number): number {
  if (x < 0) x = -x;
  if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * A;
  return 0;
}

// Taps of one pass: output i reads `count[i]` inputs from `start[i]` with weights
// weights[i * ksize ..], in fixed point.
interface Taps {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

function computeTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const invFilterScale = 1 / filterScale;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const raw = new Float64Array(ksize);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    const n = hi - lo;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      const w = bicubic((x + lo - center + 0.5) * invFilterScale);
      raw[x] = w;
      sum += w;
    }
    for (let x = 0; x < n; x++) {
      const k = sum !== 0 ? raw[x] / sum : raw[x];
      weights[i * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    start[i] = lo;
    count[i] = n;
  }
  return { ksize, start, count, weights };
}

// The passes run through kernels generated per tap count: with the taps unrolled, V8 keeps the
// weights and row offsets in registers instead of reloading them for every pixel, which makes the
// passes about 1.5x (horizontal) and 2.5x (vertical) faster than loops over the taps. All the sums
// stay below 2^31 (255 * sum |w| < 1.3 * 2^30), so Math.imul and the int32 shift are exact.
//
// Horizontal: output column x (3 channels) of `rows` rows, from n pixels of each source row.
//   src[p + 3t + c] * w[k + t] summed over t, p += srcStride; dst[o + c], o += dstStride.
type HorizontalKernel = (src: Uint8Array, dst: Uint8ClampedArray, w: Int32Array, k: number, p: number, srcStride: number, o: number, dstStride: number, rows: number) => void;
// Vertical: one output row of `length` bytes from n source rows starting at p, `stride` apart.
type VerticalKernel = (src: Uint8Array, dst: Uint8ClampedArray, w: Int32Array, k: number, p: number, stride: number, o: number, length: number) => void;

const horizontalKernels: HorizontalKernel[] = [];
const verticalKernels: VerticalKernel[] = [];

const sumOfTaps = (n: number, term: (t: number) => string) => Array.from({ length: n }, (_, t) => term(t)).join(' + ');

function horizontalKernel(n: number): HorizontalKernel {
  const channel = (c: number) => `dst[o + ${c}] = (${HALF} + ${sumOfTaps(n, (t) => `Math.imul(src[p + ${3 * t + c}], w${t})`)}) >> ${PRECISION_BITS};`;
  return (horizontalKernels[n] ??= new Function('src', 'dst', 'w', 'k', 'p', 'srcStride', 'o', 'dstStride', 'rows', `
    ${Array.from({ length: n }, (_, t) => `const w${t} = w[k + ${t}];`).join(' ')}
    for (let y = 0; y < rows; y++, p += srcStride, o += dstStride) { ${channel(0)} ${channel(1)} ${channel(2)} }`) as HorizontalKernel);
}

function verticalKernel(n: number): VerticalKernel {
  return (verticalKernels[n] ??= new Function('src', 'dst', 'w', 'k', 'p', 'stride', 'o', 'length', `
    ${Array.from({ length: n }, (_, t) => `const w${t} = w[k + ${t}], q${t} = p + ${t} * stride;`).join(' ')}
    for (let i = 0; i < length; i++) dst[o + i] = (${HALF} + ${sumOfTaps(n, (t) => `Math.imul(src[q${t} + i], w${t})`)}) >> ${PRECISION_BITS};`) as VerticalKernel);
}

// Horizontal pass: rows [y0, y0 + rows) of the box into dst (rows x outWidth); the clamped array's
// stores clip to [0, 255] as PIL's clip8 does.
function resampleRows(src: RgbImage, box: Box, y0: number, rows: number, taps: Taps, outWidth: number, dst: Uint8ClampedArray): void {
  const srcStride = src.width * 3;
  const rowStart = (box.top + y0) * srcStride + box.left * 3;
  for (let x = 0; x < outWidth; x++) {
    horizontalKernel(taps.count[x])(src.data, dst, taps.weights, x * taps.ksize, rowStart + taps.start[x] * 3, srcStride, x * 3, outWidth * 3, rows);
  }
}

// Vertical pass: src rows of `rowLength` bytes from `base`, `stride` apart; tap positions count rows
// from there.
function resampleColumns(src: Uint8Array, base: number, stride: number, rowLength: number, taps: Taps, outHeight: number, dst: Uint8ClampedArray): void {
  for (let y = 0; y < outHeight; y++) {
    verticalKernel(taps.count[y])(src, dst, taps.weights, y * taps.ksize, base + taps.start[y] * stride, stride, y * rowLength, rowLength);
  }
}

// The horizontally resampled rows, reused between calls (each worker thread has its own module state,
// and the functions here are synchronous, so nothing else can hold it meanwhile).
let rowsScratch = new Uint8Array(0);

function scratch(n: number): Uint8Array {
  if (rowsScratch.length < n) rowsScratch = new Uint8Array(Math.max(n, rowsScratch.length * 2));
  return rowsScratch;
}

function clamped(data: Uint8Array): Uint8ClampedArray {
  return new Uint8ClampedArray(data.buffer, data.byteOffset, data.length);
}

export function checkBox(img: RgbImage, box: Box): void {
  const { left, top, width, height } = box;
  const ok = [left, top, width, height].every(Number.isSafeInteger) && left >= 0 && top >= 0 && width >= 1 && height >= 1 && left + width <= img.width && top + height <= img.height;
  if (!ok) throw new RangeError(`box ${JSON.stringify(box)} is not a non-empty integer box inside the ${img.width}x${img.height} image`);
}

// torchvision's resize(crop(img, box), (outHeight, outWidth), BICUBIC) on a PIL image. `box` defaults
// to the whole image; `out` (outWidth x outHeight) is written and returned when given.
export function resizeBicubic(img: RgbImage, outWidth: number, outHeight: number, box: Box = { left: 0, top: 0, width: img.width, height: img.height }, out?: RgbImage): RgbImage {
  checkImage(img);
  checkBox(img, box);
  if (!Number.isSafeInteger(outWidth) || !Number.isSafeInteger(outHeight) || outWidth < 1 || outHeight < 1) {
    throw new RangeError(`output size must be positive integers, got ${outWidth}x${outHeight}`);
  }
  const result = out ?? createImage(outWidth, outHeight);
  if (result.width !== outWidth || result.height !== outHeight || result.data.length !== outWidth * outHeight * 3) {
    throw new RangeError(`output image is ${result.width}x${result.height}, expected ${outWidth}x${outHeight}`);
  }
  if (result.data.buffer === img.data.buffer) throw new Error('the output image must not share memory with the input');
  const dst = clamped(result.data);
  const needHorizontal = outWidth !== box.width;
  const needVertical = outHeight !== box.height;
  const srcStride = img.width * 3;
  if (!needHorizontal && !needVertical) {
    for (let y = 0; y < box.height; y++) {
      const from = (box.top + y) * srcStride + box.left * 3;
      result.data.set(img.data.subarray(from, from + box.width * 3), y * box.width * 3);
    }
    return result;
  }
  const vertical = computeTaps(box.height, outHeight);
  const rowLength = outWidth * 3;
  if (!needHorizontal) {
    resampleColumns(img.data, box.top * srcStride + box.left * 3, srcStride, rowLength, vertical, outHeight, dst);
    return result;
  }
  const horizontal = computeTaps(box.width, outWidth);
  if (!needVertical) {
    resampleRows(img, box, 0, box.height, horizontal, outWidth, dst);
    return result;
  }
  // Only the rows the vertical taps reach.
  const first = vertical.start[0];
  const last = vertical.start[outHeight - 1] + vertical.count[outHeight - 1];
  const rows = scratch((last - first) * rowLength);
  resampleRows(img, box, first, last - first, horizontal, outWidth, clamped(rows));
  resampleColumns(rows, -first * rowLength, rowLength, rowLength, vertical, outHeight, dst);
  return result;
}
