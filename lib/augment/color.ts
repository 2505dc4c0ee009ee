// The colour operations of torchvision's ColorJitter, RandomGrayscale and DINO's Solarization on PIL
// images, reproduced to the bit, in place on the pixel buffer:
// - brightness, contrast and saturation are PIL's ImageEnhance: Image.blend(degenerate, img, factor)
//   with a black, a mean-gray and a grayscale degenerate image. Blend (libImaging/Blend.c) computes
//   in1 + alpha * (in2 - in1) in float32 (alpha is the factor rounded to float32) and truncates,
//   clipping to [0, 255] (it only needs to when alpha is outside [0, 1]);
// - Contrast's gray level is the mean of convert('L') as PIL's ImageStat takes it from the histogram,
//   rounded with int(mean + 0.5);
// - convert('L') is ITU-R 601-2 in 16-bit fixed point: (19595 R + 38470 G + 7471 B + 32768) >> 16;
// - hue is torchvision's adjust_hue: PIL's RGB -> HSV conversion (libImaging/Convert.c, float32 and
//   double arithmetic as written there), H shifted by trunc(hue * 255) with uint8 wrap-around (what
//   numpy 1.x gave for np.uint8 of a negative value), and PIL's HSV -> RGB;
// - solarize is ImageOps.solarize(threshold 128): v >= 128 becomes 255 - v.
import type { RgbImage } from './image.ts';

const fround = Math.fround;

function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

// fround(alpha * d) for d = in2 - in1 in [-255, 255], indexed by d + 255.
function blendSteps(factor: number): Float32Array {
  if (!Number.isFinite(factor)) throw new RangeError(`blend factor must be finite, got ${factor}`);
  const alpha = fround(factor);
  const steps = new Float32Array(511);
  for (let d = -255; d <= 255; d++) steps[d + 255] = alpha * d;
  return steps;
}

function blendValue(from: number, to: number, steps: Float32Array): number {
  const v = fround(from + steps[to - from + 255]);
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
}

// PIL's Image.blend(a, b, factor) on equally long byte arrays, into out (which may be a or b).
export function blend(a: Uint8Array, b: Uint8Array, factor: number, out: Uint8Array): void {
  if (a.length !== b.length || out.length !== a.length) throw new RangeError(`blend needs equal lengths, got ${a.length}, ${b.length} and ${out.length}`);
  const steps = blendSteps(factor);
  for (let i = 0; i < a.length; i++) out[i] = blendValue(a[i], b[i], steps);
}

function applyTable(data: Uint8Array, table: Uint8Array): void {
  for (let i = 0; i < data.length; i++) data[i] = table[data[i]];
}

// Blending every value with one constant: a 256-entry table.
function blendWithConstant(data: Uint8Array, constant: number, factor: number): void {
  const steps = blendSteps(factor);
  const table = new Uint8Array(256);
  for (let v = 0; v < 256; v++) table[v] = blendValue(constant, v, steps);
  applyTable(data, table);
}

// ImageEnhance.Brightness(img).enhance(factor).
export function adjustBrightness(img: RgbImage, factor: number): void {
  blendWithConstant(img.data, 0, factor);
}

// ImageEnhance.Contrast(img).enhance(factor).
export function adjustContrast(img: RgbImage, factor: number): void {
  const { data } = img;
  let sum = 0;
  for (let p = 0; p < data.length; p += 3) sum += luma(data[p], data[p + 1], data[p + 2]);
  blendWithConstant(data, Math.floor(sum / (data.length / 3) + 0.5), factor);
}

// ImageEnhance.Color(img).enhance(factor): blends each pixel with its own gray level.
export function adjustSaturation(img: RgbImage, factor: number): void {
  const { data } = img;
  const steps = blendSteps(factor);
  for (let p = 0; p < data.length; p += 3) {
    const l = luma(data[p], data[p + 1], data[p + 2]);
    data[p] = blendValue(l, data[p], steps);
    data[p + 1] = blendValue(l, data[p + 1], steps);
    data[p + 2] = blendValue(l, data[p + 2], steps);
  }
}

// torchvision's to_grayscale(img, num_output_channels=3): convert('L') repeated in the 3 channels.
export function grayscale(img: RgbImage): void {
  const { data } = img;
  for (let p = 0; p < data.length; p += 3) data[p] = data[p + 1] = data[p + 2] = luma(data[p], data[p + 1], data[p + 2]);
}

const SOLARIZE = Uint8Array.from({ length: 256 }, (_, v) => (v < 128 ? v : 255 - v));

// ImageOps.solarize(img, threshold=128).
export function solarize(img: RgbImage): void {
  applyTable(img.data, SOLARIZE);
}

// PIL's convert('HSV') on packed 3-byte pixels (src and dst may be the same array).
export function rgbToHsv(src: Uint8Array, dst: Uint8Array): void {
  for (let p = 0; p < src.length; p += 3) {
    const r = src[p];
    const g = src[p + 1];
    const b = src[p + 2];
    const max = r > g ? (r > b ? r : b) : g > b ? g : b;
    const min = r < g ? (r < b ? r : b) : g < b ? g : b;
    let h = 0;
    let s = 0;
    if (max !== min) {
      const range = max - min;
      const sat = fround(range / max);
      const rc = fround((max - r) / range);
      const gc = fround((max - g) / range);
      const bc = fround((max - b) / range);
      // In C these sums mix float32 and double; each is exact in double and rounded once to float32.
      let hue = r === max ? fround(bc - gc) : g === max ? fround(2 + rc - bc) : fround(4 + gc - rc);
      hue = fround((hue / 6 + 1) % 1);
      h = Math.trunc(hue * 255);
      s = Math.trunc(sat * 255);
    }
    dst[p] = h;
    dst[p + 1] = s;
    dst[p + 2] = max;
  }
}

// Per hue byte: the sector i = floor(h * 6 / 255) and the float32 remainder f; per saturation byte:
// the float32 s / 255. All as libImaging's hsv2rgb computes them.
const SECTOR = new Uint8Array(256);
const REMAINDER = new Float32Array(256);
const SATURATION = new Float32Array(256);
for (let v = 0; v < 256; v++) {
  const i = Math.floor((v * 6) / 255);
  SECTOR[v] = i % 6;
  REMAINDER[v] = (v * 6) / 255 - i;
  SATURATION[v] = v / 255;
}

// PIL's convert('RGB') from HSV on packed 3-byte pixels (src and dst may be the same array).
export function hsvToRgb(src: Uint8Array, dst: Uint8Array): void {
  for (let p = 0; p < src.length; p += 3) {
    const h = src[p];
    const s = src[p + 1];
    const v = src[p + 2];
    if (s === 0) {
      dst[p] = dst[p + 1] = dst[p + 2] = v;
      continue;
    }
    const f = REMAINDER[h];
    const fs = SATURATION[s];
    // C's round() (half away from zero) on non-negative values is Math.round.
    const x = Math.round(v * (1 - fs));
    const y = Math.round(v * (1 - fround(fs * f)));
    const z = Math.round(v * (1 - fs * (1 - f)));
    let r: number;
    let g: number;
    let b: number;
    switch (SECTOR[h]) {
      case 0: r = v; g = z; b = x; break;
      case 1: r = y; g = v; b = x; break;
      case 2: r = x; g = v; b = z; break;
      case 3: r = x; g = y; b = v; break;
      case 4: r = z; g = x; b = v; break;
      default: r = v; g = x; b = y;
    }
    dst[p] = r;
    dst[p + 1] = g;
    dst[p + 2] = b;
  }
}

// torchvision's adjust_hue(img, hueFactor) on a PIL RGB image, hueFactor in [-0.5, 0.5].
export function adjustHue(img: RgbImage, hueFactor: number): void {
  if (!(hueFactor >= -0.5 && hueFactor <= 0.5)) throw new RangeError(`hue factor must be in [-0.5, 0.5], got ${hueFactor}`);
  const { data } = img;
  const shift = Math.trunc(hueFactor * 255) & 255;
  rgbToHsv(data, data);
  for (let p = 0; p < data.length; p += 3) data[p] = (data[p] + shift) & 255;
  hsvToRgb(data, data);
}
