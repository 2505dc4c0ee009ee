// The inputs of the Pillow reference cases (scripts/fixtures/augment.py: load_input), and comparisons
// of uint8 images.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RgbImage } from '../../lib/augment/image.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'augment');

function photo(name: string, width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(readFileSync(join(dir, `${name}-${width}x${height}.rgb`))) };
}

function filled(width: number, height: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < data.length; p += 3) data.set(rgb, p);
  return { width, height, data };
}

function crop(img: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * 3;
    data.set(img.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { width, height, data };
}

// columns x rows copies of img side by side.
function tile(img: RgbImage, columns: number, rows: number): RgbImage {
  const width = img.width * columns;
  const data = new Uint8Array(width * img.height * rows * 3);
  for (let y = 0; y < img.height * rows; y++) {
    const row = img.data.subarray((y % img.height) * img.width * 3, ((y % img.height) + 1) * img.width * 3);
    for (let c = 0; c < columns; c++) data.set(row, (y * width + c * img.width) * 3);
  }
  return { width, height: img.height * rows, data };
}

export function loadInput(name: string): RgbImage {
  switch (name) {
    case 'astronaut':
      return photo('astronaut', 64, 64);
    case 'chelsea':
      return photo('chelsea', 60, 40);
    case 'astronaut-gray': {
      const img = photo('astronaut', 64, 64);
      for (let p = 0; p < img.data.length; p += 3) img.data[p] = img.data[p + 2] = img.data[p + 1];
      return img;
    }
    case 'black':
      return filled(7, 5, [0, 0, 0]);
    case 'white':
      return filled(7, 5, [255, 255, 255]);
    case 'pixel':
      return filled(1, 1, [200, 30, 90]);
    case 'wide':
      return crop(photo('astronaut', 64, 64), 0, 0, 64, 2);
    case 'tall':
      return crop(photo('astronaut', 64, 64), 0, 0, 2, 64);
    case 'small':
      return crop(photo('chelsea', 60, 40), 30, 20, 3, 2);
    case 'patch':
      return crop(photo('chelsea', 60, 40), 15, 10, 30, 20);
    case 'astronaut-tiled':
      return tile(photo('astronaut', 64, 64), 5, 4);
    default:
      throw new Error(`unknown input ${name}`);
  }
}

export function fromBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}

// The largest difference between two byte arrays (Infinity when their lengths differ).
export function maxError(actual: Uint8Array, expected: Uint8Array): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  return worst;
}
