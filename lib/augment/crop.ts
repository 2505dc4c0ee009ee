// Where crops are taken: torchvision's RandomResizedCrop.get_params (0.8) and CenterCrop.
import type { Generator } from '../engine/random.ts';
import type { Box } from './resize.ts';

export type Range = readonly [number, number];

// Python's round(): halves go to the even neighbour.
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkRange(range: Range, what: string): void {
  if (!Array.isArray(range) || range.length !== 2 || !(range[0] > 0) || !(range[0] <= range[1]) || !Number.isFinite(range[1])) {
    throw new RangeError(`${what} must be [min, max] with 0 < min <= max, got ${JSON.stringify(range)}`);
  }
}

export function checkCropRanges(scale: Range, ratio: Range): void {
  checkRange(scale, 'crop scale');
  checkRange(ratio, 'crop aspect ratio');
}

// RandomResizedCrop.get_params for a width x height image: up to 10 tries of an area fraction
// ~ U(scale) and a log aspect ratio ~ U(log ratio), sizes rounded as Python's round() does, kept when
// the box fits, then its top and left uniform among the integer positions (top drawn first). When no
// try fits, the centred box of the whole image clamped to the ratio range. torch draws these from
// its own generator in float32; here they come from rng in double, with the same distributions.
export function drawResizedCropBox(width: number, height: number, scale: Range, ratio: Range, rng: Generator): Box {
  checkCropRanges(scale, ratio);
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  // max(1, ...): only a ratio range far from 1 on a 1-pixel-wide image rounds to 0, where torchvision
  // would fail on an empty crop.
  if (inRatio < ratio[0]) h = Math.max(1, roundHalfEven(w / ratio[0]));
  else if (inRatio > ratio[1]) w = Math.max(1, roundHalfEven(h * ratio[1]));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

// torchvision 0.8's center_crop offsets, int((size - crop + 1) * 0.5) (truncated toward zero, so
// negative when the crop is larger than the image: PIL's crop fills outside with black).
export function centerCropOffset(size: number, crop: number): number {
  return Math.trunc((size - crop + 1) * 0.5);
}
