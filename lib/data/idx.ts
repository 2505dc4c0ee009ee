// IDX files, the format of MNIST and Fashion-MNIST, gzipped or not: a magic number (two zero bytes,
// the element type, the number of dimensions), each dimension as a big-endian uint32, then the
// elements. Images are (n, rows, cols) unsigned bytes (magic 00 00 08 03), labels (n) unsigned bytes
// (00 00 08 01). Sizes are checked against the file's length, so a truncated or padded file is an
// error, not a misaligned dataset.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { FileFormatError } from '../io/file.ts';
import { GrayStore, ImageDataset } from './dataset.ts';

const UBYTE = 0x08;
// A gzip bomb stops here instead of exhausting memory; the full MNIST training images are 47 MB.
const MAX_DECOMPRESSED = 1 << 30;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

// Parses one IDX file of unsigned bytes with `ndim` dimensions.
export function parseIdx(bytes: Uint8Array, ndim: number, name: string): IdxArray {
  const fail = (why: string) => new FileFormatError(`${name}: ${why}`);
  if (bytes.length < 4) throw fail(`${bytes.length} bytes is too short for an IDX header`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw fail(`not an IDX file (magic ${hex(bytes.subarray(0, 4))})`);
  if (bytes[2] !== UBYTE) throw fail(`element type 0x${bytes[2].toString(16).padStart(2, '0')} is not unsigned bytes (0x08)`);
  if (bytes[3] !== ndim) throw fail(`${bytes[3]} dimensions where ${ndim} were expected (magic ${hex(bytes.subarray(0, 4))})`);
  const header = 4 + 4 * ndim;
  if (bytes.length < header) throw fail(`the header needs ${header} bytes, the file has ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - header !== count) {
    throw fail(`dimensions ${dims.join('x')} need ${count} bytes after the ${header}-byte header, the file has ${bytes.length - header}`);
  }
  return { dims, data: bytes.subarray(header) };
}

// Reads an IDX file, gunzipping it first when it starts with the gzip magic (1f 8b).
export function readIdx(path: string, ndim: number): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_DECOMPRESSED });
    } catch (e) {
      throw new FileFormatError(`${path}: cannot gunzip: ${(e as Error).message}`);
    }
  }
  return parseIdx(bytes, ndim, path);
}

export interface IdxDatasetOptions {
  // Class names by label; default '0', '1', ... up to the largest label.
  classes?: readonly string[];
}

// An image IDX file and its label IDX file as a dataset of gray images (RGB on load, by repeating the
// channel).
export function idxDataset(imagesPath: string, labelsPath: string, options: IdxDatasetOptions = {}): ImageDataset {
  const images = readIdx(imagesPath, 3);
  const labels = readIdx(labelsPath, 1);
  const [n, rows, cols] = images.dims;
  if (labels.dims[0] !== n) throw new FileFormatError(`${labelsPath}: ${labels.dims[0]} labels for the ${n} images of ${imagesPath}`);
  if (n === 0 || rows === 0 || cols === 0) throw new FileFormatError(`${imagesPath}: no images (dimensions ${images.dims.join('x')})`);
  const maxLabel = labels.data.reduce((m, l) => Math.max(m, l), 0);
  const classes = options.classes ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  if (maxLabel >= classes.length) throw new FileFormatError(`${labelsPath}: label ${maxLabel} but only ${classes.length} classes`);
  const pixels = new SharedArrayBuffer(images.data.length);
  new Uint8Array(pixels).set(images.data);
  return new ImageDataset(imagesPath, classes, Int32Array.from(labels.data), new GrayStore(imagesPath, cols, rows, pixels));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
