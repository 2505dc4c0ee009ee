// The evaluation transform of eval_knn.py and eval_linear.py: Resize(resize, bicubic) of the shorter
// side, CenterCrop(crop), ToTensor, Normalize; as torchvision 0.8 does it on PIL images.
import { centerCropOffset } from './crop.ts';
import { checkImage, createImage, IMAGENET_MEAN, IMAGENET_STD, normalizationTable, toNormalizedChw, type Rgb, type RgbImage } from './image.ts';
import { resizeBicubic } from './resize.ts';

export interface EvalTransformOptions {
  resize?: number;
  crop?: number;
  mean?: Rgb;
  std?: Rgb;
}

// torchvision's resize(img, size) for an int size: the shorter side becomes `size` and the other
// int(size * long / short); an image whose shorter side already is `size` is left alone.
export function resizeShorterSide(img: RgbImage, size: number, resize = resizeBicubic): RgbImage {
  const { width: w, height: h } = img;
  if ((w <= h && w === size) || (h <= w && h === size)) return img;
  return w < h ? resize(img, size, Math.trunc((size * h) / w)) : resize(img, Math.trunc((size * w) / h), size);
}

// center_crop(img, crop): PIL's crop of the centred box, black where it reaches outside the image.
export function centerCrop(img: RgbImage, crop: number): RgbImage {
  const out = createImage(crop, crop);
  const top = centerCropOffset(img.height, crop);
  const left = centerCropOffset(img.width, crop);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(crop, img.width - left);
  if (x1 <= x0) return out;
  for (let y = Math.max(0, -top); y < Math.min(crop, img.height - top); y++) {
    const from = ((top + y) * img.width + left + x0) * 3;
    out.data.set(img.data.subarray(from, from + (x1 - x0) * 3), (y * crop + x0) * 3);
  }
  return out;
}

// Resize(resize, BICUBIC), CenterCrop(crop), ToTensor, Normalize(mean, std): CHW float32, 3 x crop x crop.
export function evalTransform(img: RgbImage, { resize = 256, crop = 224, mean = IMAGENET_MEAN, std = IMAGENET_STD }: EvalTransformOptions = {}): Float32Array {
  checkImage(img);
  for (const [name, v] of [['resize', resize], ['crop', crop]] as const) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 65536) throw new RangeError(`${name} must be an integer in [1, 65536], got ${v}`);
  }
  return toNormalizedChw(centerCrop(resizeShorterSide(img, resize), crop), normalizationTable(mean, std));
}
