// DINO's multi-crop augmentation (DataAugmentationDINO in main_dino.py) on raw RGB buffers, matching
// torchvision 0.8 on PIL images pixel for pixel once the random parameters are the same.
//
//   global 1: RandomResizedCrop(G, globalCropsScale, bicubic), flip + jitter, GaussianBlur(p=1.0)
//   global 2: RandomResizedCrop(G, globalCropsScale, bicubic), flip + jitter, GaussianBlur(p=0.1),
//             Solarization(p=0.2)
//   local xN: RandomResizedCrop(L, localCropsScale, bicubic), flip + jitter, GaussianBlur(p=0.5)
//   flip + jitter: RandomHorizontalFlip(0.5), RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], 0.8),
//                  RandomGrayscale(0.2)
//   every crop then ToTensor + Normalize(mean, std).
//
// Randomness is split from the pixels: drawParams() takes every random decision from the Generator in
// torchvision's order, applyCrop() carries one crop's decisions out. apply() does both.
import type { Generator } from '../engine/random.ts';
import { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, solarize } from './color.ts';
import { gaussianBlur } from './blur.ts';
import { checkCropRanges, drawResizedCropBox, type Range } from './crop.ts';
import { checkImage, createImage, flipHorizontal, IMAGENET_MEAN, IMAGENET_STD, normalizationTable, toNormalizedChw, type Rgb, type RgbImage } from './image.ts';
import { resizeBicubic, type Box } from './resize.ts';

export interface DinoAugmentationOptions {
  globalCropsScale?: Range;
  localCropsScale?: Range;
  localCropsNumber?: number;
  globalCropsSize?: number;
  localCropsSize?: number;
  mean?: Rgb;
  std?: Rgb;
}

// DataAugmentationDINO's defaults (main_dino.py's arguments), which the trainer's defaults also take.
export const DINO_AUGMENTATION_DEFAULTS = Object.freeze({
  globalCropsScale: [0.4, 1] as [number, number],
  localCropsScale: [0.05, 0.4] as [number, number],
  localCropsNumber: 8,
  globalCropsSize: 224,
  localCropsSize: 96,
});

// The ColorJitter operations, by the index torchvision's randperm(4) refers to them with.
export const JITTER_OPS = ['brightness', 'contrast', 'saturation', 'hue'] as const;

export interface ColorJitterParams {
  // A permutation of 0..3 (JITTER_OPS): the order the operations run in.
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

// Everything random about one crop.
export interface CropParams {
  box: Box;
  // The square output side.
  size: number;
  flip: boolean;
  // null when RandomApply skipped the jitter.
  jitter: ColorJitterParams | null;
  grayscale: boolean;
  // PIL's blur radius, null when the blur did not fire.
  blurSigma: number | null;
  solarize: boolean;
}

// The official constants (main_dino.py and utils.py).
const CROP_RATIO: Range = [3 / 4, 4 / 3];
const FLIP_P = 0.5;
const JITTER_P = 0.8;
// ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1) as factor ranges.
const JITTER_RANGES: Record<(typeof JITTER_OPS)[number], Range> = { brightness: [0.6, 1.4], contrast: [0.6, 1.4], saturation: [0.8, 1.2], hue: [-0.1, 0.1] };
const GRAYSCALE_P = 0.2;
const BLUR_SIGMA: Range = [0.1, 2];

interface CropRecipe {
  size: number;
  scale: Range;
  blurP: number;
  // null: this crop has no Solarization transform (and draws nothing for it).
  solarizeP: number | null;
}

// torch.randperm's distribution (Fisher-Yates).
function permutation(n: number, rng: Generator): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function drawCrop(width: number, height: number, recipe: CropRecipe, rng: Generator): CropParams {
  const box = drawResizedCropBox(width, height, recipe.scale, CROP_RATIO, rng);
  const flip = rng.random() < FLIP_P;
  let jitter: ColorJitterParams | null = null;
  // RandomApply skips when p < rand; ColorJitter then draws the order, and each factor as its
  // operation comes up in that order.
  if (rng.random() <= JITTER_P) {
    const order = permutation(4, rng);
    const factors = { brightness: 1, contrast: 1, saturation: 1, hue: 0 };
    for (const op of order) {
      const name = JITTER_OPS[op];
      factors[name] = rng.uniform(...JITTER_RANGES[name]);
    }
    jitter = { order, ...factors };
  }
  const gray = rng.random() < GRAYSCALE_P;
  // DINO's GaussianBlur fires when random() <= p, then draws the radius.
  const blurSigma = rng.random() <= recipe.blurP ? rng.uniform(...BLUR_SIGMA) : null;
  const solar = recipe.solarizeP !== null && rng.random() < recipe.solarizeP;
  return { box, size: recipe.size, flip, jitter, grayscale: gray, blurSigma, solarize: solar };
}

function checkSize(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 1 || v > 65536) throw new RangeError(`${what} must be an integer in [1, 65536], got ${v}`);
}

export class DinoAugmentation {
  readonly globalCropsSize: number;
  readonly localCropsSize: number;
  readonly localCropsNumber: number;
  private readonly recipes: CropRecipe[];
  private readonly table: Float32Array;
  // One uint8 buffer per crop size, reused between calls.
  private readonly buffers = new Map<number, RgbImage>();

  constructor({
    globalCropsScale = DINO_AUGMENTATION_DEFAULTS.globalCropsScale,
    localCropsScale = DINO_AUGMENTATION_DEFAULTS.localCropsScale,
    localCropsNumber = DINO_AUGMENTATION_DEFAULTS.localCropsNumber,
    globalCropsSize = DINO_AUGMENTATION_DEFAULTS.globalCropsSize,
    localCropsSize = DINO_AUGMENTATION_DEFAULTS.localCropsSize,
    mean = IMAGENET_MEAN,
    std = IMAGENET_STD,
  }: DinoAugmentationOptions = {}) {
    checkCropRanges(globalCropsScale, CROP_RATIO);
    checkCropRanges(localCropsScale, CROP_RATIO);
    checkSize(globalCropsSize, 'globalCropsSize');
    checkSize(localCropsSize, 'localCropsSize');
    if (!Number.isSafeInteger(localCropsNumber) || localCropsNumber < 0) throw new RangeError(`localCropsNumber must be a non-negative integer, got ${localCropsNumber}`);
    this.globalCropsSize = globalCropsSize;
    this.localCropsSize = localCropsSize;
    this.localCropsNumber = localCropsNumber;
    this.table = normalizationTable(mean, std);
    const global = { size: globalCropsSize, scale: globalCropsScale };
    this.recipes = [
      { ...global, blurP: 1, solarizeP: null },
      { ...global, blurP: 0.1, solarizeP: 0.2 },
      ...Array.from({ length: localCropsNumber }, () => ({ size: localCropsSize, scale: localCropsScale, blurP: 0.5, solarizeP: null })),
    ];
  }

  // The random decisions for every crop of a width x height image, in the official crop order and in
  // the order torchvision draws them.
  drawParams(width: number, height: number, rng: Generator): CropParams[] {
    if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
    return this.recipes.map((recipe) => drawCrop(width, height, recipe, rng));
  }

  // One crop as uint8 RGB (size x size), before ToTensor + Normalize; written into `out` when given.
  applyCrop(img: RgbImage, params: CropParams, out?: RgbImage): RgbImage {
    const crop = resizeBicubic(img, params.size, params.size, params.box, out);
    if (params.flip) flipHorizontal(crop);
    if (params.jitter !== null) {
      const j = params.jitter;
      const isPermutation = Array.isArray(j.order) && j.order.length === 4 && [0, 1, 2, 3].every((op) => j.order.includes(op));
      if (!isPermutation) throw new RangeError(`jitter order must be a permutation of 0..3, got ${JSON.stringify(j.order)}`);
      for (const op of j.order) {
        if (op === 0) adjustBrightness(crop, j.brightness);
        else if (op === 1) adjustContrast(crop, j.contrast);
        else if (op === 2) adjustSaturation(crop, j.saturation);
        else adjustHue(crop, j.hue);
      }
    }
    if (params.grayscale) grayscale(crop);
    if (params.blurSigma !== null) gaussianBlur(crop, params.blurSigma);
    if (params.solarize) solarize(crop);
    return crop;
  }

  // [global1, global2, local1..localN], each CHW float32 (3 x size x size), normalised.
  apply(img: RgbImage, rng: Generator): Float32Array[] {
    checkImage(img);
    return this.drawParams(img.width, img.height, rng).map((params) => toNormalizedChw(this.applyCrop(img, params, this.buffer(params.size)), this.table));
  }

  private buffer(size: number): RgbImage {
    let b = this.buffers.get(size);
    if (b === undefined) this.buffers.set(size, (b = createImage(size, size)));
    return b;
  }
}
