// Test images written on the spot: a PNG encoder for what sharp does not write (16-bit colour from
// given samples, a huge image that compresses to nothing), and helpers for small image trees.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

export const PNG_GRAY = 0;
export const PNG_RGB = 2;
export const PNG_RGBA = 6;

// A PNG of `samples` (row-major, interleaved, big-endian 16-bit when bitDepth is 16; for bit depths
// below 8, packed rows as PNG stores them).
export function png(width: number, height: number, bitDepth: number, colorType: number, samples: Uint8Array): Buffer {
  const rowBytes = samples.length / height;
  const raw = Buffer.alloc(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) raw.set(samples.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([bitDepth, colorType, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

// Smooth, distinct RGB pixels (JPEG keeps them close), varied by `seed`.
export function pattern(width: number, height: number, seed = 0): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      data[i] = (x * 7 + seed * 31) & 255;
      data[i + 1] = (y * 11 + seed * 17) & 255;
      data[i + 2] = ((x + y) * 5 + seed * 53) & 255;
    }
  return data;
}

export type Format = 'png' | 'jpeg' | 'webp' | 'tiff';

// Writes an RGB image file (creating its directory).
export async function writeImage(path: string, width: number, height: number, format: Format, seed = 0): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const image = sharp(pattern(width, height, seed), { raw: { width, height, channels: 3 } });
  writeFileSync(path, await image.toFormat(format).toBuffer());
}

// An ImageFolder of `count` PNG images spread over classes a, b and c, sizes varying from 5x3 (smaller
// than any crop) up; image i has width 5 + (i % 7) * 3 and pattern seed i.
export async function writeImageFolder(root: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const name = `${'abc'[i % 3]}/img${String(i).padStart(3, '0')}.png`;
    await writeImage(join(root, name), 5 + (i % 7) * 3, 3 + (i % 5) * 4, 'png', i);
  }
}
