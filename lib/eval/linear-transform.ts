// The training transform of the linear evaluation (eval_linear.py): RandomResizedCrop(size) with
// torchvision's defaults (scale 0.08-1, ratio 3/4-4/3, BILINEAR), RandomHorizontalFlip, ToTensor,
// Normalize. Its own module because the data loader's worker threads import it: they need the pixel
// functions, not the model and training code of lib/eval/linear.ts.
import { checkCropRanges, drawResizedCropBox, type Range } from '../augment/crop.ts';
import { checkImage, createImage, flipHorizontal, IMAGENET_MEAN, IMAGENET_STD, normalizationTable, toNormalizedChw, type Rgb, type RgbImage } from '../augment/image.ts';
import { resizeBilinear, type Box } from '../augment/resize.ts';
import type { Generator } from '../engine/random.ts';
import type { ImageTransform, TransformSpec } from '../data/transform.ts';

export interface LinearCropOptions {
  // The square side of the crop (224 officially).
  size?: number;
  scale?: Range;
  mean?: Rgb;
  std?: Rgb;
}

export interface LinearCropParams {
  box: Box;
  flip: boolean;
}

const RATIO: Range = [3 / 4, 4 / 3];
const DEFAULT_SCALE: Range = [0.08, 1];

function checkOptions({ size = 224, scale = DEFAULT_SCALE }: LinearCropOptions): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > 65536) throw new RangeError(`crop size must be an integer in [1, 65536], got ${size}`);
  checkCropRanges(scale, RATIO);
}

// The random decisions for a width x height image, in torchvision's order: the crop box, then the flip.
export function drawLinearCrop(width: number, height: number, rng: Generator, scale: Range = DEFAULT_SCALE): LinearCropParams {
  const box = drawResizedCropBox(width, height, scale, RATIO, rng);
  return { box, flip: rng.random() < 0.5 };
}

// The crop as uint8 RGB (size x size), before ToTensor + Normalize.
export function applyLinearCrop(img: RgbImage, params: LinearCropParams, size: number, out?: RgbImage): RgbImage {
  const crop = resizeBilinear(img, size, size, params.box, out);
  if (params.flip) flipHorizontal(crop);
  return crop;
}

// The factory the loader's workers call (named by linearTrainCrop's spec).
export function linearTrainTransform(options: LinearCropOptions): ImageTransform {
  const { size = 224, scale = DEFAULT_SCALE, mean = IMAGENET_MEAN, std = IMAGENET_STD } = options;
  checkOptions(options);
  const table = normalizationTable(mean, std);
  const buffer = createImage(size, size);
  return (image, rng) => {
    checkImage(image);
    return [toNormalizedChw(applyLinearCrop(image, drawLinearCrop(image.width, image.height, rng, scale), size, buffer), table)];
  };
}

// One randomly resized and flipped crop. Bad options throw here, not in the workers.
export function linearTrainCrop(options: LinearCropOptions = {}): TransformSpec {
  linearTrainTransform(options);
  return { module: import.meta.url, name: linearTrainTransform.name, options };
}
