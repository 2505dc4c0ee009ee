// PIL's ImageFilter.GaussianBlur(radius=sigma), which DINO's GaussianBlur applies, reproduced to the
// bit by the native kernel, which native/image/blur.h describes: Pillow's three "extended" box blurs in
// each direction, in 24-bit fixed point, with the box sizes computed in float32 as Pillow does.
import { addon } from '../engine/native.ts';
import type { RgbImage } from './image.ts';

// ImageFilter.GaussianBlur(radius=sigma) applied to img, in place.
export function gaussianBlur(img: RgbImage, sigma: number): void {
  addon.gaussianBlurU8(img.data, img.width, img.height, sigma);
}
