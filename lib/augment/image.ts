// RGB images as raw pixel buffers, and the two steps every crop ends with: the horizontal flip and
// torchvision's ToTensor + Normalize.
//
// The augmentations are plain synchronous functions on these buffers. Their pixel work runs in the
// native addon's image kernels (functions on byte arrays, no engine tensors), which the data loader's
// worker threads load too, so they run directly on the pixels a worker decoded.
import { addon } from '../engine/native.ts';

// 8 bits per channel, RGB interleaved, row-major: data.length === width * height * 3.
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type Rgb = readonly [number, number, number];

// torchvision's ImageNet statistics, which DINO normalises with.
export const IMAGENET_MEAN: Rgb = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Rgb = [0.229, 0.224, 0.225];

export function checkImage(img: RgbImage, what = 'image'): void {
  if (img === null || typeof img !== 'object') throw new TypeError(`${what} must be an RgbImage { width, height, data }`);
  const { width, height, data } = img;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what} must be at least 1x1 with integer sizes, got ${width}x${height}`);
  }
  if (!(data instanceof Uint8Array)) throw new TypeError(`${what}.data must be a Uint8Array`);
  if (data.length !== width * height * 3) throw new RangeError(`${what}.data has ${data.length} bytes, expected ${width}x${height}x3 = ${width * height * 3}`);
}

export function createImage(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

// PIL's transpose(FLIP_LEFT_RIGHT), in place.
export function flipHorizontal(img: RgbImage): void {
  addon.flipHorizontalU8(img.data, img.width, img.height);
}

export function checkRgb(v: Rgb, what: string, positive: boolean): void {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isFinite(x) && (!positive || x > 0))) {
    throw new RangeError(`${what} must be three finite${positive ? ' positive' : ''} numbers, got ${JSON.stringify(v)}`);
  }
}

// For each channel, the 256 values ToTensor + Normalize give, computed as PyTorch does in float32:
// (float(v) / 255 - mean) / std with each operation rounded to float32 (a double result of one
// +, -, * or / rounded once to float32 is the correctly rounded float32 result).
export function normalizationTable(mean: Rgb, std: Rgb): Float32Array {
  checkRgb(mean, 'mean', false);
  checkRgb(std, 'std', true);
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
  }
  return table;
}

// ToTensor + Normalize through a table from normalizationTable: HWC uint8 to CHW float32.
export function toNormalizedChw(img: RgbImage, table: Float32Array, out = new Float32Array(img.width * img.height * 3)): Float32Array {
  addon.normalizeU8(img.data, table, out);
  return out;
}
