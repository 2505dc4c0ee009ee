// A small transform for the loader tests (the real augmentation is tested on its own): each crop is a
// nearest-neighbour sample of a random square of the image, drawn from the image's generator, scaled
// to [0, 1], CHW. Options can make it fail on purpose to test error paths.
import process from 'node:process';
import type { Generator } from '../../lib/engine/random.ts';
import type { RgbImage } from '../../lib/augment/image.ts';
import type { ImageTransform } from '../../lib/data/transform.ts';

export interface StandInOptions {
  sizes: number[];
  // Throw an error for images of this width (a bug in a transform).
  throwOnWidth?: number;
  // End the worker thread for images of this width (a worker that dies).
  exitOnWidth?: number;
  // Busy-wait this many milliseconds per image (a slow transform).
  delayMs?: number;
}

export function standIn(options: StandInOptions): ImageTransform {
  return (image: RgbImage, rng: Generator) => {
    if (image.width === options.throwOnWidth) throw new Error(`stand-in refuses width ${image.width}`);
    if (image.width === options.exitOnWidth) process.exit(7);
    if (options.delayMs) for (const end = Date.now() + options.delayMs; Date.now() < end; );
    return options.sizes.map((s) => crop(image, s, rng));
  };
}

function crop(image: RgbImage, s: number, rng: Generator): Float32Array {
  const side = Math.max(1, Math.round(rng.uniform(0.5, 1) * Math.min(image.width, image.height)));
  const x0 = rng.int(image.width - side + 1);
  const y0 = rng.int(image.height - side + 1);
  const out = new Float32Array(3 * s * s);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++) {
        const sx = x0 + Math.floor(((x + 0.5) * side) / s);
        const sy = y0 + Math.floor(((y + 0.5) * side) / s);
        out[(c * s + y) * s + x] = image.data[(sy * image.width + sx) * 3 + c] / 255;
      }
  return out;
}
