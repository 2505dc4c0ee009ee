// Image decoding through sharp (libvips) to 8-bit RGB, matching what torchvision's loader gives
// (PIL's Image.open(path).convert('RGB')), which is what the official DINO trained on:
// - alpha is dropped, not composited (convert('RGB') keeps the colour channels as they are);
// - gray becomes RGB by repeating the channel; palette images are expanded;
// - CMYK is converted with PIL's formula (R = (255 - K) * (1 - C / 255), rounded the same way), not
//   through a colour profile;
// - embedded ICC profiles are ignored, as PIL does;
// - EXIF orientation is ignored: PIL does not rotate on load, so neither do we;
// - truncated or corrupt data is an error, as PIL's default (LOAD_TRUNCATED_IMAGES = False);
//   libjpeg warnings that PIL also ignores (extraneous bytes) are not.
// Only the raster formats PIL reads are accepted (JPEG, PNG, WebP, GIF, TIFF): libvips would also
// render SVG or PDF content, which torchvision's loader refuses.
// One deliberate difference: 16-bit gray is scaled to 8 bits by its high byte, as 16-bit colour is
// (by PIL too); PIL clips 16-bit gray ("I;16") to 255 instead, which turns most such images white.
//
// Every failure is an ImageDecodeError naming the image and the reason; the loader counts these as
// skipped images instead of stopping.
import { stat, readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { RgbImage } from '../augment/image.ts';

// PIL's decompression-bomb error threshold (2 * Image.MAX_IMAGE_PIXELS): images with more pixels are
// refused before any pixel is decoded. 12,000 x 12,000 (144 MP) is accepted and decoded at full size.
export const DEFAULT_MAX_PIXELS = 178_956_970;

const PIL_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff']);

export interface DecodeOptions {
  // Refuse images with more pixels (width x height) than this, from the header alone.
  maxPixels?: number;
}

export class ImageDecodeError extends Error {
  readonly code = 'ERR_DINO_IMAGE_DECODE';
  override name = 'ImageDecodeError';

  constructor(readonly image: string, readonly reason: string) {
    super(`${image}: ${reason}`);
  }
}

// Decodes an encoded image (JPEG, PNG, WebP, GIF (its first frame), TIFF). `name` only labels errors.
export async function decodeImage(bytes: Uint8Array, name: string, options: DecodeOptions = {}): Promise<RgbImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  if (bytes.length === 0) throw new ImageDecodeError(name, 'empty file');
  try {
    const image = sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels, ignoreIcc: true });
    const { format, space } = await image.metadata();
    if (!PIL_FORMATS.has(format)) throw new Error(`${format} content is not a raster image format PIL reads`);
    if (space === 'cmyk') {
      const { data, info } = await image.pipelineColourspace('cmyk').toColourspace('cmyk').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`CMYK image decoded to ${info.channels} channels`);
      return { width: info.width, height: info.height, data: cmykToRgb(data) };
    }
    const { data, info } = await image.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    throw new ImageDecodeError(name, reason(e as Error));
  }
}

// Reads and decodes an image file. Only regular files are read (a directory or a FIFO named like an
// image is refused at once instead of blocking), and read errors are decode errors.
export async function readImageFile(path: string, options: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error(`not a regular file (${fileKind(st)})`);
    bytes = await readFile(path);
  } catch (e) {
    throw new ImageDecodeError(path, `cannot read: ${(e as Error).message}`);
  }
  return decodeImage(bytes, path, options);
}

// libvips' messages run over several lines, often repeated; one line of the distinct ones.
function reason(e: Error): string {
  const lines = [...new Set(e.message.split('\n').map((l) => l.trim()).filter((l) => l !== ''))];
  const text = lines.join(' ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

// Gray pixels (one byte each) to RGB by repeating the value, as PIL's convert('RGB') does for mode L.
export function grayToRgb(gray: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(3 * gray.length);
  for (let i = 0, j = 0; i < gray.length; i++, j += 3) data[j] = data[j + 1] = data[j + 2] = gray[i];
  return { width, height, data };
}

// PIL's CMYK -> RGB: each channel is (255 - K) - C * (255 - K) / 255, with its rounded division by 255.
function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const rgb = new Uint8Array((cmyk.length / 4) * 3);
  for (let i = 0, j = 0; i < cmyk.length; i += 4, j += 3) {
    const nk = 255 - cmyk[i + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[i + c] * nk + 128;
      rgb[j + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

function fileKind(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device';
}
