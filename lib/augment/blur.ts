// PIL's ImageFilter.GaussianBlur(radius=sigma), which DINO's GaussianBlur applies, reproduced to the
// bit. Pillow (libImaging/BoxBlur.c) approximates the Gaussian with three passes of an "extended" box
// blur in each direction (Gwosdek et al., 2011): a box of integer radius r plus fractional end taps,
// whose total radius r + a is chosen so that three passes have variance sigma^2:
//   sigma2 = sigma^2 / 3, L = sqrt(12 sigma2 + 1), r = floor((L - 1) / 2),
//   a = (2r + 1)(r(r + 1) - 3 sigma2) / (6 (sigma2 - (r + 1)^2))
// in float32 (sigma is passed to C as a float). Each pass works in 24-bit fixed point: the box weight
// ww = trunc(2^24 / (2(r + a) + 1)), the end-tap weight fw = (2^24 - (2r + 1) ww) / 2, and each
// output is (acc * ww + (end taps) * fw + 2^23) >> 24, so every pass rounds to uint8. Edges repeat the
// first and last pixel. The three horizontal passes run first, then the three vertical ones.
import type { RgbImage } from './image.ts';

const fround = Math.fround;

interface BoxPass {
  floatRadius: number;
  radius: number;
  boxWeight: number;
  edgeWeight: number;
}

// _gaussian_blur_radius(sigma, passes=3) and ImagingHorizontalBoxBlur's weights.
function boxPass(sigma: number): BoxPass {
  const s = fround(sigma);
  const sigma2 = fround(fround(s * s) / 3);
  const L = fround(Math.sqrt(12 * sigma2 + 1));
  const l = fround(Math.floor((L - 1) / 2));
  let a = fround(fround(fround(2 * l) + 1) * fround(fround(l * fround(l + 1)) - fround(3 * sigma2)));
  a = fround(a / fround(6 * fround(sigma2 - fround(fround(l + 1) * fround(l + 1)))));
  const floatRadius = fround(l + a);
  const radius = Math.trunc(floatRadius);
  const boxWeight = Math.trunc(fround(16777216 / fround(fround(floatRadius * 2) + 1)));
  return { floatRadius, radius, boxWeight, edgeWeight: Math.floor((16777216 - (radius * 2 + 1) * boxWeight) / 2) };
}

// 2^-24: multiplying by it and truncating is >> 24 for the sums here (below 2^32, exact in doubles),
// and much faster in V8 than >>> on a double.
const INV24 = 2 ** -24;
const HALF24 = 2 ** 23;

// One pass over one line of one channel: n values at src[s], src[s + step], ... to the same positions
// of dst. ImagingLineBoxBlur32 with its two layouts (lines longer or shorter than the box); p walks
// the output position x, ahead x + radius and behind x - radius - 1.
function blurLine(src: Uint8Array, dst: Uint8Array, s: number, step: number, n: number, pass: BoxPass): void {
  const { radius, boxWeight: ww, edgeWeight: fw } = pass;
  const end = s + n * step;
  const first = src[s];
  const lastValue = src[end - step];
  const edgeA = Math.min(radius + 1, n);
  const edgeB = Math.max(n - radius - 1, 0);
  // The window sum for the pixel left of the line: the first pixel repeated, then the line's start.
  let acc = first * (radius + 1);
  for (let x = 0; x < edgeA - 1; x++) acc += src[s + x * step];
  acc += lastValue * (radius - edgeA + 1);
  const stopA = s + edgeA * step;
  const stopB = s + edgeB * step;
  let p = s;
  let ahead = s + radius * step;
  if (edgeA <= edgeB) {
    for (; p < stopA; p += step, ahead += step) {
      acc += src[ahead] - first;
      dst[p] = ((acc * ww + (first + src[ahead + step]) * fw + HALF24) * INV24) | 0;
    }
    for (let behind = p - (radius + 1) * step; p < stopB; p += step, ahead += step, behind += step) {
      const left = src[behind];
      acc += src[ahead] - left;
      dst[p] = ((acc * ww + (left + src[ahead + step]) * fw + HALF24) * INV24) | 0;
    }
  } else {
    for (; p < stopB; p += step, ahead += step) {
      acc += src[ahead] - first;
      dst[p] = ((acc * ww + (first + src[ahead + step]) * fw + HALF24) * INV24) | 0;
    }
    for (; p < stopA; p += step) {
      acc += lastValue - first;
      dst[p] = ((acc * ww + (first + lastValue) * fw + HALF24) * INV24) | 0;
    }
  }
  for (let behind = p - (radius + 1) * step; p < end; p += step, behind += step) {
    const left = src[behind];
    acc += lastValue - left;
    dst[p] = ((acc * ww + (left + lastValue) * fw + HALF24) * INV24) | 0;
  }
}

// Passes alternate between the image and this buffer, reused between calls (module state is per
// thread and the blur is synchronous).
let pingPong = new Uint8Array(0);

// ImageFilter.GaussianBlur(radius=sigma) applied to img, in place.
export function gaussianBlur(img: RgbImage, sigma: number): void {
  if (!(sigma >= 0 && sigma < 2 ** 31)) throw new RangeError(`blur sigma must be a finite number >= 0, got ${sigma}`);
  const pass = boxPass(sigma);
  // Pillow returns a copy for radius 0, and skips the passes for a box radius of 0.
  if (sigma === 0 || pass.floatRadius === 0) return;
  const { width, height, data } = img;
  if (pingPong.length < data.length) pingPong = new Uint8Array(Math.max(data.length, pingPong.length * 2));
  let src: Uint8Array = data;
  let dst: Uint8Array = pingPong;
  const rowStep = width * 3;
  for (let i = 0; i < 6; i++) {
    const horizontal = i < 3;
    const lines = horizontal ? height : width;
    for (let line = 0; line < lines; line++) {
      const start = horizontal ? line * rowStep : line * 3;
      for (let c = 0; c < 3; c++) blurLine(src, dst, start + c, horizontal ? 3 : rowStep, horizontal ? width : height, pass);
    }
    [src, dst] = [dst, src];
  }
}
