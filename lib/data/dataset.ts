// A labelled image dataset: class names, one label per image, and where each image comes from (a file
// to decode, or pixels already in memory). The images live in a store kept in shared memory, so the
// loader's worker threads see the same dataset without copying it: a store turns into a plain payload
// (strings and SharedArrayBuffers) and back.
import type { RgbImage } from '../augment/image.ts';
import { grayToRgb, readImageFile, type DecodeOptions } from './decode.ts';

export type ImageSource = { kind: 'file'; path: string } | { kind: 'gray'; name: string; width: number; height: number; pixels: Uint8Array };

// What can go wrong while decoding (ImageDecodeError) is the caller's to count; this only routes.
export function loadImage(source: ImageSource, options: DecodeOptions = {}): Promise<RgbImage> {
  switch (source.kind) {
    case 'file':
      return readImageFile(source.path, options);
    case 'gray':
      return Promise.resolve(grayToRgb(source.pixels, source.width, source.height));
  }
}

export function sourceName(source: ImageSource): string {
  return source.kind === 'file' ? source.path : source.name;
}

export type StorePayload =
  | { kind: 'files'; root: string; names: SharedArrayBuffer; offsets: SharedArrayBuffer }
  | { kind: 'gray'; name: string; width: number; height: number; pixels: SharedArrayBuffer };

export interface ImageStore {
  readonly length: number;
  source(index: number): ImageSource;
  payload(): StorePayload;
}

// File paths relative to a root, packed as UTF-8 in one shared buffer (an ImageNet-sized listing is
// tens of megabytes as strings per thread, a fraction of that packed once).
export class FileStore implements ImageStore {
  private readonly names: Uint8Array;
  private readonly offsets: Uint32Array;
  private static readonly decoder = new TextDecoder();

  private constructor(private readonly root: string, names: SharedArrayBuffer, offsets: SharedArrayBuffer) {
    this.names = new Uint8Array(names);
    this.offsets = new Uint32Array(offsets);
  }

  // `root` ends with the path separator, or is '' for absolute names.
  static from(root: string, relativePaths: readonly string[]): FileStore {
    const encoder = new TextEncoder();
    const encoded = relativePaths.map((p) => encoder.encode(p));
    const total = encoded.reduce((n, e) => n + e.length, 0);
    if (total >= 2 ** 32) throw new RangeError(`file names take ${total} bytes, more than 4 GiB`);
    const names = new SharedArrayBuffer(total);
    const offsets = new SharedArrayBuffer(4 * (encoded.length + 1));
    const bytes = new Uint8Array(names);
    const ends = new Uint32Array(offsets);
    let at = 0;
    encoded.forEach((e, i) => {
      bytes.set(e, at);
      at += e.length;
      ends[i + 1] = at;
    });
    return new FileStore(root, names, offsets);
  }

  static fromPayload(p: Extract<StorePayload, { kind: 'files' }>): FileStore {
    return new FileStore(p.root, p.names, p.offsets);
  }

  get length(): number {
    return this.offsets.length - 1;
  }

  source(index: number): ImageSource {
    const name = FileStore.decoder.decode(this.names.subarray(this.offsets[index], this.offsets[index + 1]));
    return { kind: 'file', path: this.root + name };
  }

  payload(): StorePayload {
    return { kind: 'files', root: this.root, names: this.names.buffer as SharedArrayBuffer, offsets: this.offsets.buffer as SharedArrayBuffer };
  }
}

// Gray images of one size, back to back (the IDX datasets).
export class GrayStore implements ImageStore {
  private readonly pixels: Uint8Array;

  constructor(private readonly name: string, readonly width: number, readonly height: number, pixels: SharedArrayBuffer) {
    if (pixels.byteLength % (width * height) !== 0) throw new RangeError(`${name}: ${pixels.byteLength} bytes is not a whole number of ${width}x${height} images`);
    this.pixels = new Uint8Array(pixels);
  }

  static fromPayload(p: Extract<StorePayload, { kind: 'gray' }>): GrayStore {
    return new GrayStore(p.name, p.width, p.height, p.pixels);
  }

  get length(): number {
    return this.pixels.length / (this.width * this.height);
  }

  source(index: number): ImageSource {
    const size = this.width * this.height;
    return { kind: 'gray', name: `${this.name}[${index}]`, width: this.width, height: this.height, pixels: this.pixels.subarray(index * size, (index + 1) * size) };
  }

  payload(): StorePayload {
    return { kind: 'gray', name: this.name, width: this.width, height: this.height, pixels: this.pixels.buffer as SharedArrayBuffer };
  }
}

export function storeFromPayload(p: StorePayload): ImageStore {
  return p.kind === 'files' ? FileStore.fromPayload(p) : GrayStore.fromPayload(p);
}

export class ImageDataset {
  constructor(
    // Where it came from, for messages (a directory, a file).
    readonly name: string,
    readonly classes: readonly string[],
    // labels[i] indexes classes.
    readonly labels: Int32Array,
    readonly images: ImageStore,
    // What the scan found and passed over: empty classes, symlink loops, entries that are not files.
    readonly notes: readonly string[] = [],
  ) {
    if (labels.length !== images.length) throw new RangeError(`${name}: ${labels.length} labels for ${images.length} images`);
    for (const l of labels) if (!(l >= 0 && l < classes.length)) throw new RangeError(`${name}: label ${l} is not one of the ${classes.length} classes`);
  }

  get length(): number {
    return this.labels.length;
  }

  source(index: number): ImageSource {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new RangeError(`${this.name}: image index ${index} is outside [0, ${this.length})`);
    return this.images.source(index);
  }

  // Images per class, in class order.
  classCounts(): number[] {
    const counts = new Array<number>(this.classes.length).fill(0);
    for (const l of this.labels) counts[l]++;
    return counts;
  }
}
