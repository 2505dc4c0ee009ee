// The colour operations of torchvision's ColorJitter, RandomGrayscale and DINO's Solarization on PIL
// images, reproduced to the bit by the native kernels, in place on the pixel buffer. native/image/color.h
// says how each follows Pillow: ImageEnhance's blends in float32, convert('L') in 16-bit fixed point,
// adjust_hue through PIL's HSV conversions with numpy 1.x's uint8 wrap-around, ImageOps.solarize.
import { addon } from '../engine/native.ts';
import type { RgbImage } from './image.ts';

// PIL's Image.blend(a, b, factor) on equally long byte arrays, into out (which may be a or b).
export function blend(a: Uint8Array, b: Uint8Array, factor: number, out: Uint8Array): void {
  addon.blendU8(a, b, factor, out);
}

// ImageEnhance.Brightness(img).enhance(factor).
export function adjustBrightness(img: RgbImage, factor: number): void {
  addon.adjustBrightnessU8(img.data, factor);
}

// ImageEnhance.Contrast(img).enhance(factor): the blend is with the rounded mean of convert('L').
export function adjustContrast(img: RgbImage, factor: number): void {
  addon.adjustContrastU8(img.data, factor);
}

// ImageEnhance.Color(img).enhance(factor): blends each pixel with its own gray level.
export function adjustSaturation(img: RgbImage, factor: number): void {
  addon.adjustSaturationU8(img.data, factor);
}

// torchvision's adjust_hue(img, hueFactor) on a PIL RGB image, hueFactor in [-0.5, 0.5].
export function adjustHue(img: RgbImage, hueFactor: number): void {
  addon.adjustHueU8(img.data, hueFactor);
}

// torchvision's to_grayscale(img, num_output_channels=3): convert('L') repeated in the 3 channels.
export function grayscale(img: RgbImage): void {
  addon.grayscaleU8(img.data);
}

// ImageOps.solarize(img, threshold=128).
export function solarize(img: RgbImage): void {
  addon.solarizeU8(img.data);
}

// PIL's convert('HSV') on packed 3-byte pixels (src and dst may be the same array).
export function rgbToHsv(src: Uint8Array, dst: Uint8Array): void {
  addon.rgbToHsvU8(src, dst);
}

// PIL's convert('RGB') from HSV on packed 3-byte pixels (src and dst may be the same array).
export function hsvToRgb(src: Uint8Array, dst: Uint8Array): void {
  addon.hsvToRgbU8(src, dst);
}
