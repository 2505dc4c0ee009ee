// safetensors: an 8-byte little-endian header length, a JSON header mapping each tensor name to
// {dtype, shape, data_offsets} (plus an optional "__metadata__" map of strings), then the raw
// little-endian data, the tensors back to back. Files are untrusted: the header is bounded and
// validated (its JSON, every name, dtype, shape and offset) before any tensor data is read, and the
// tensors must tile the data section exactly, so a size field can never point outside the file or make
// us allocate more than the file holds.
import { createHash } from 'node:crypto';
import { Tensor, tensor } from '../engine/tensor.ts';
import { dispose, tidy } from '../engine/scope.ts';
import { cast } from '../ops/elementwise.ts';
import type { DType } from '../engine/native.ts';
import { RandomAccessFile, withFile, writeFileAtomic, FileFormatError } from './file.ts';

// The stored element types we read. Integer tensors (BatchNorm's num_batches_tracked, step counters)
// become float32 when every value is an integer float32 holds exactly (all up to 2^24 in magnitude),
// and are refused otherwise.
export type StoredDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32';

const ITEM_SIZE: Record<StoredDType, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
const STORED: Record<DType, StoredDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const ENGINE: Partial<Record<StoredDType, DType>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

// The reference implementation's limit on the header size.
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
// Metadata entry holding the SHA-256 of the data section, for files written with `checksum`: a flipped
// bit anywhere in the tensors is then found on reading, not trained on.
export const CHECKSUM_KEY = 'data_sha256';

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  // Byte range in the data section.
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  // In data order.
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Record<string, string>;
  // Where the data section starts in the file.
  readonly dataStart: number;
}

export interface SafetensorsContents {
  // In file order (for files we write: the order they were given in).
  tensors: [string, Tensor][];
  metadata: Record<string, string>;
}

export function readSafetensorsHeader(file: RandomAccessFile): SafetensorsHeader {
  const fail = (m: string): never => {
    throw file.error(m);
  };
  if (file.size < 8) fail(file.size === 0 ? 'the file is empty' : `${file.size} bytes is too short for a safetensors file`);
  const lengthField = new DataView(file.read(0, 8, 'the header length').buffer);
  const headerLength = lengthField.getUint32(0, true) + lengthField.getUint32(4, true) * 2 ** 32;
  if (headerLength > MAX_HEADER_BYTES) fail(`the header length ${headerLength} is above the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file, or a corrupt one`);
  if (8 + headerLength > file.size) fail(`the header length ${headerLength} runs past the end of the file (${file.size} bytes): it is truncated or not a safetensors file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.read(8, headerLength, 'the header'));
  } catch {
    return fail('the header is not UTF-8 text');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`the header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');
  const twice = duplicateKey(text);
  if (twice !== undefined) fail(`the header names '${twice}' twice`);

  const dataStart = 8 + headerLength;
  const dataLength = file.size - dataStart;
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = checkMetadata(info, fail);
      continue;
    }
    const where = `tensor '${name}'`;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`${where}: its entry is not an object`);
    const { dtype, shape, data_offsets: offsets, ...rest } = info as Record<string, unknown>;
    if (Object.keys(rest).length > 0) fail(`${where}: unknown fields ${Object.keys(rest).join(', ')}`);
    if (typeof dtype !== 'string' || !Object.hasOwn(ITEM_SIZE, dtype)) {
      fail(`${where}: dtype ${JSON.stringify(dtype)} is not supported (${Object.keys(ITEM_SIZE).join(', ')} are)`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${where}: shape must be a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o))) fail(`${where}: data_offsets must be two integers`);
    const [begin, end] = offsets as number[];
    if (begin < 0 || end < begin || end > dataLength) fail(`${where}: data_offsets [${begin}, ${end}] lie outside the data section (${dataLength} bytes)`);
    const itemSize = ITEM_SIZE[dtype as StoredDType];
    // Multiply step by step: a product past the data length is wrong whatever it is, and stopping there
    // keeps it exact.
    let bytes = itemSize;
    for (const d of shape as number[]) {
      bytes *= d;
      if (bytes > dataLength) fail(`${where}: shape [${(shape as number[]).join(', ')}] needs more bytes than the file holds`);
    }
    if (bytes !== end - begin) fail(`${where}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${bytes} bytes, data_offsets give ${end - begin}`);
    entries.push({ name, dtype: dtype as StoredDType, shape: shape as number[], begin, end });
  }
  // The tensors must tile the data section: no overlaps, no gaps, nothing left over.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.begin < expected) fail(`tensors '${entries[i - 1].name}' and '${e.name}' overlap`);
    if (e.begin > expected) fail(`the data section has ${e.begin - expected} unused bytes before '${e.name}'`);
    expected = e.end;
  }
  if (expected !== dataLength) fail(`the tensors end at byte ${expected} of a ${dataLength}-byte data section`);
  return { entries, metadata, dataStart };
}

function checkMetadata(info: unknown, fail: (m: string) => never): Record<string, string> {
  if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`${METADATA_KEY} is not an object`);
  for (const [k, v] of Object.entries(info as object)) if (typeof v !== 'string') fail(`${METADATA_KEY}['${k}'] is not a string`);
  return { ...(info as Record<string, string>) };
}

// The first key that appears twice in one JSON object (JSON.parse keeps the last silently). Runs on
// text JSON.parse has accepted, so only strings, brackets and commas need attention.
function duplicateKey(text: string): string | undefined {
  const objects: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (expectKey && keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      objects.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      objects.push(null);
      expectKey = false;
    } else if (c === 0x7d || c === 0x5d) {
      objects.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = objects[objects.length - 1] !== null;
    }
  }
  return undefined;
}

// A tensor from contiguous little-endian bytes (a fresh buffer, so typed arrays can view it). Float16
// and bfloat16 stay as they are unless float32 is asked for; integers always become float32.
export function tensorFromBytes(bytes: Uint8Array, dtype: StoredDType, shape: readonly number[], toFloat32: boolean, what: string): Tensor {
  const n = bytes.byteLength / ITEM_SIZE[dtype];
  const at = bytes.byteOffset;
  switch (dtype) {
    case 'F32':
      return tensor(new Float32Array(bytes.buffer, at, n), shape);
    case 'F16':
    case 'BF16': {
      const bits = new Uint16Array(bytes.buffer, at, n);
      const stored = ENGINE[dtype]!;
      if (!toFloat32) return tensor(bits, shape, { dtype: stored });
      if (n === 0) return tensor(new Float32Array(0), shape);
      return tidy(() => cast(tensor(bits, shape, { dtype: stored }), 'float32'));
    }
    case 'I64':
    case 'I32': {
      const ints = dtype === 'I64' ? new BigInt64Array(bytes.buffer, at, n) : new Int32Array(bytes.buffer, at, n);
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = Number(ints[i]);
        values[i] = v;
        if (values[i] !== v || (typeof ints[i] === 'bigint' && BigInt(v) !== ints[i])) {
          throw new FileFormatError(`${what}: ${dtype === 'I64' ? 'int64' : 'int32'} value ${ints[i]} (element ${i}) has no exact float32 equal; integer tensors load as float32 only when every value is exact (all integers up to 2^24 are)`);
        }
      }
      return tensor(values, shape);
    }
  }
}

export function readSafetensors(path: string): SafetensorsContents {
  return withFile(path, (file) => {
    const header = readSafetensorsHeader(file);
    const expected = header.metadata[CHECKSUM_KEY];
    const hash = expected !== undefined ? createHash('sha256') : null;
    const tensors: [string, Tensor][] = [];
    try {
      for (const e of header.entries) {
        const bytes = file.read(header.dataStart + e.begin, e.end - e.begin, `tensor '${e.name}'`);
        hash?.update(bytes);
        tensors.push([e.name, tensorFromBytes(bytes, e.dtype, e.shape, false, `${path}: tensor '${e.name}'`)]);
      }
      if (hash !== null && hash.digest('hex') !== expected) throw file.error('the tensor data does not match its checksum: the file is corrupted');
    } catch (err) {
      dispose(tensors.map(([, t]) => t));
      throw err;
    }
    return { tensors, metadata: header.metadata };
  });
}

// A tensor's bytes as stored (a host copy).
function storedBytes(name: string, t: Tensor): Uint8Array {
  const values = t.dtype === 'float32' ? t.data() : t.rawData();
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (bytes.length !== t.size * ITEM_SIZE[STORED[t.dtype]]) throw new Error(`'${name}': the tensor gave ${bytes.length} bytes for shape [${t.shape.join(', ')}]`);
  return bytes;
}

// Writes float32, float16 and bfloat16 tensors as they are (F32, F16, BF16), atomically: see
// writeFileAtomic. The header is padded with spaces to a multiple of 8 bytes, as the reference writer
// does, so that the data section is aligned. With `checksum`, the data's SHA-256 goes into the
// metadata (CHECKSUM_KEY) and readSafetensors verifies it; other readers just see one more entry.
export function writeSafetensors(path: string, tensors: Iterable<readonly [string, Tensor]>, metadata: Record<string, string> = {}, { checksum = false } = {}): void {
  const list = [...tensors];
  if (Object.hasOwn(metadata, CHECKSUM_KEY)) throw new Error(`metadata cannot use the reserved key '${CHECKSUM_KEY}'`);
  if (checksum) {
    const hash = createHash('sha256');
    for (const [name, t] of list) hash.update(storedBytes(name, t));
    metadata = { ...metadata, [CHECKSUM_KEY]: hash.digest('hex') };
  }
  // No prototype: a tensor named '__proto__' is just a name.
  const header: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`metadata values must be strings; '${k}' is ${typeof v}`);
  }
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (typeof name !== 'string' || name === '' || name === METADATA_KEY) throw new TypeError(`invalid tensor name ${JSON.stringify(name)}`);
    if (Object.hasOwn(header, name)) throw new Error(`tensor name '${name}' is given twice`);
    if (!(t instanceof Tensor)) throw new TypeError(`'${name}' is not a Tensor`);
    const bytes = t.size * ITEM_SIZE[STORED[t.dtype]];
    header[name] = { dtype: STORED[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(8 + Math.ceil(json.length / 8) * 8).fill(0x20);
  const length = new DataView(padded.buffer);
  length.setUint32(0, padded.length - 8, true);
  length.setUint32(4, 0, true);
  padded.set(json, 8);
  writeFileAtomic(path, (sink) => {
    sink.write(padded);
    for (const [name, t] of list) sink.write(storedBytes(name, t));
  });
}
