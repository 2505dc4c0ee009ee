// PIL's Image.resize with BICUBIC or BILINEAR, as torchvision applies it to PIL images (Resize, and
// RandomResizedCrop's crop-then-resize), reproduced to the bit by the native kernel, which
// native/image/resample.h describes: Pillow's separable fixed-point convolution, horizontal pass first
// as in every Pillow before 13 (the ones torchvision 0.8 ran on).
//
// The crop is not copied: the resize reads the box of the source directly, which is exactly
// torchvision's crop followed by resize (taps never reach outside the box).
import { addon } from '../engine/native.ts';
import { checkImage, createImage, type RgbImage } from './image.ts';

// Integer pixel box, inside the image.
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

// torchvision's resize(crop(img, box), (outHeight, outWidth), BICUBIC) on a PIL image. `box` defaults
// to the whole image; `out` (outWidth x outHeight) is written and returned when given.
export function resizeBicubic(img: RgbImage, outWidth: number, outHeight: number, box?: Box, out?: RgbImage): RgbImage {
  return resample('bicubic', img, outWidth, outHeight, box, out);
}

// The same with BILINEAR (visualize_attention.py's Resize).
export function resizeBilinear(img: RgbImage, outWidth: number, outHeight: number, box?: Box, out?: RgbImage): RgbImage {
  return resample('bilinear', img, outWidth, outHeight, box, out);
}

function resample(filter: 'bicubic' | 'bilinear', img: RgbImage, outWidth: number, outHeight: number, box: Box = { left: 0, top: 0, width: img.width, height: img.height }, out?: RgbImage): RgbImage {
  checkImage(img);
  if (!Number.isSafeInteger(outWidth) || !Number.isSafeInteger(outHeight) || outWidth < 1 || outHeight < 1) {
    throw new RangeError(`output size must be positive integers, got ${outWidth}x${outHeight}`);
  }
  const result = out ?? createImage(outWidth, outHeight);
  if (result.width !== outWidth || result.height !== outHeight) throw new RangeError(`output image is ${result.width}x${result.height}, expected ${outWidth}x${outHeight}`);
  // The kernel checks the box, the buffers' lengths and that they do not overlap.
  addon.resampleU8(filter, img.data, img.width, img.height, box.left, box.top, box.width, box.height, result.data, outWidth, outHeight);
  return result;
}
