// How the loader's worker threads turn a decoded image into crops. A transform cannot be sent to a
// thread as a function, so it is named by a spec: a module URL, the name of a factory the module
// exports, and options for it (anything structured-clone can copy). Each worker imports the module
// once and calls the factory once. The two transforms of DINO are here: the multi-crop augmentation
// for training and the resize + centre crop for evaluation.
import type { Generator } from '../engine/random.ts';
import { DinoAugmentation, type DinoAugmentationOptions } from '../augment/dino.ts';
import { evalTransform, type EvalTransformOptions } from '../augment/eval.ts';
import type { RgbImage } from '../augment/image.ts';

// One image to its crops, each a CHW float32 array of a square crop (3 * S * S values), in a fixed
// order (DINO: global 1, global 2, then the local crops). `rng` is this image's own generator.
export type ImageTransform = (image: RgbImage, rng: Generator) => Float32Array[];

export interface TransformSpec {
  // URL of an ES module (import.meta.url of the module that defines the factory, or a file: URL).
  module: string;
  // The exported factory: (options) => ImageTransform.
  name: string;
  options?: unknown;
}

export function dinoAugmentationTransform(options: DinoAugmentationOptions): ImageTransform {
  const augmentation = new DinoAugmentation(options);
  return (image, rng) => augmentation.apply(image, rng);
}

export function evalCropTransform(options: EvalTransformOptions): ImageTransform {
  return (image) => [evalTransform(image, options)];
}

// DataAugmentationDINO: [global 1, global 2, local 1..N]. Bad options throw here, not in the workers.
export function dinoTransform(options: DinoAugmentationOptions = {}): TransformSpec {
  new DinoAugmentation(options);
  return { module: import.meta.url, name: dinoAugmentationTransform.name, options };
}

// Resize (shorter side, bicubic), centre crop, normalise: one crop.
export function evalCrop(options: EvalTransformOptions = {}): TransformSpec {
  return { module: import.meta.url, name: evalCropTransform.name, options };
}
