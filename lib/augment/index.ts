// The image transforms of DINO on raw RGB buffers: the multi-crop training augmentation and the
// evaluation transform, bit-exact with torchvision 0.8 on PIL images. The pixel work runs in the native
// addon's image kernels, which the data loader's worker threads load too.
export { DinoAugmentation, JITTER_OPS, type DinoAugmentationOptions, type CropParams, type ColorJitterParams } from './dino.ts';
export { evalTransform, resizeShorterSide, centerCrop, type EvalTransformOptions } from './eval.ts';
export { resizeBicubic, resizeBilinear, type Box } from './resize.ts';
export { gaussianBlur } from './blur.ts';
export { adjustBrightness, adjustContrast, adjustSaturation, adjustHue, grayscale, solarize, blend, rgbToHsv, hsvToRgb } from './color.ts';
export { drawResizedCropBox, centerCropOffset, roundHalfEven, type Range } from './crop.ts';
export { checkImage, createImage, flipHorizontal, normalizationTable, toNormalizedChw, IMAGENET_MEAN, IMAGENET_STD, type RgbImage, type Rgb } from './image.ts';
