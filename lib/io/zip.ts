// The ZIP subset that torch.save writes and torch.load reads: an archive of named records, stored
// uncompressed with their data aligned to 64 bytes (padding goes into an extra field), and ZIP64 records
// when an archive or a record passes 4 GiB. Reading also accepts deflated records (an archive repacked
// by a zip tool). Untrusted archives are validated before anything is read out of them: every record
// must lie inside the file without overlapping another, declared sizes must be possible for their
// compressed data, and checksums must match.
import { crc32, inflateRawSync } from 'node:zlib';
import type { ByteSink, RandomAccessFile } from './file.ts';

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA = 0x0001;
// torch's padding field: 'FB', then the pad length, then that many 'Z'.
const PADDING_EXTRA = 0x4246;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_END_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const STORED = 0;
const DEFLATED = 8;
// Deflate cannot expand data by more than about 1032:1; a record claiming more is malformed (or a bomb).
const MAX_DEFLATE_RATIO = 1032;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  // Where the record's data starts (after its local header).
  readonly dataOffset: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

// A 64-bit field; anything past 2^53 is far beyond any file and is treated as a huge (out-of-range) size.
function u64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class ZipReader {
  readonly entries: ReadonlyMap<string, ZipEntry>;

  private constructor(private readonly file: RandomAccessFile, entries: Map<string, ZipEntry>) {
    this.entries = entries;
  }

  static open(file: RandomAccessFile): ZipReader {
    const fail = (m: string): never => {
      throw file.error(m);
    };
    if (file.size === 0) fail('the file is empty');
    if (file.size < EOCD_SIZE) fail(`${file.size} bytes is too short for a zip archive`);
    // A record, or the end records of an archive without any.
    const head = file.read(0, 4, 'the signature');
    if (![LOCAL_HEADER, END_OF_CENTRAL_DIRECTORY, ZIP64_END].includes(viewOf(head).getUint32(0, true))) fail(`not a zip archive (it starts with ${hex(head)})`);

    // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB; take the
    // last signature whose comment length reaches exactly to the end of the file.
    const tailLength = Math.min(file.size, EOCD_SIZE + MAX_COMMENT);
    const tailStart = file.size - tailLength;
    const tail = file.read(tailStart, tailLength, 'the end of the archive');
    const tv = viewOf(tail);
    let eocd = -1;
    for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
      if (tv.getUint32(i, true) === END_OF_CENTRAL_DIRECTORY && i + EOCD_SIZE + tv.getUint16(i + 20, true) === tailLength) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) fail('no end-of-central-directory record: the archive is truncated or not a zip file');
    const eocdOffset = tailStart + eocd;
    if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) fail('multi-disk zip archives are not supported');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    let cdLimit = eocdOffset;

    const locatorOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
    if (locatorOffset >= 0 && viewOf(file.read(locatorOffset, 4, 'the ZIP64 locator')).getUint32(0, true) === ZIP64_LOCATOR) {
      const loc = viewOf(file.read(locatorOffset, ZIP64_LOCATOR_SIZE, 'the ZIP64 locator'));
      const recordOffset = u64(loc, 8);
      if (recordOffset + ZIP64_END_SIZE > locatorOffset) fail('the ZIP64 end record lies outside the archive');
      const rec = viewOf(file.read(recordOffset, ZIP64_END_SIZE, 'the ZIP64 end record'));
      if (rec.getUint32(0, true) !== ZIP64_END) fail('the ZIP64 end record has a bad signature');
      count = u64(rec, 32);
      cdSize = u64(rec, 40);
      cdOffset = u64(rec, 48);
      cdLimit = recordOffset;
    } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      fail('the archive needs a ZIP64 end record and has none');
    }
    if (cdOffset + cdSize > cdLimit) fail('the central directory lies outside the archive: it is truncated or corrupt');
    if (count * CENTRAL_HEADER_SIZE > cdSize) fail(`the central directory is too small for ${count} entries`);

    const cd = file.read(cdOffset, cdSize, 'the central directory');
    const cv = viewOf(cd);
    const entries = new Map<string, ZipEntry>();
    const spans: [number, number, string][] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_HEADER_SIZE > cdSize || cv.getUint32(p, true) !== CENTRAL_HEADER) fail(`central directory entry ${i} is malformed`);
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      const crc = cv.getUint32(p + 16, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let size = cv.getUint32(p + 24, true);
      const nameLength = cv.getUint16(p + 28, true);
      const extraLength = cv.getUint16(p + 30, true);
      const commentLength = cv.getUint16(p + 32, true);
      let localOffset = cv.getUint32(p + 42, true);
      const end = p + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
      if (end > cdSize) fail(`central directory entry ${i} runs past the directory`);
      const nameBytes = cd.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLength);
      let name: string;
      try {
        name = utf8.decode(nameBytes);
      } catch {
        return fail(`central directory entry ${i} has a name that is not UTF-8`);
      }
      // ZIP64 extended information: 64-bit values for exactly the fields saturated above, in this order.
      const extra = viewOf(cd.subarray(p + CENTRAL_HEADER_SIZE + nameLength, p + CENTRAL_HEADER_SIZE + nameLength + extraLength));
      for (let q = 0; q + 4 <= extra.byteLength; ) {
        const id = extra.getUint16(q, true);
        const len = extra.getUint16(q + 2, true);
        if (q + 4 + len > extra.byteLength) fail(`'${name}': malformed extra field`);
        if (id === ZIP64_EXTRA) {
          let r = q + 4;
          const next = (): number => {
            if (r + 8 > q + 4 + len) fail(`'${name}': the ZIP64 extra field is too short`);
            const v = u64(extra, r);
            r += 8;
            return v;
          };
          if (size === U32_MAX) size = next();
          if (compressedSize === U32_MAX) compressedSize = next();
          if (localOffset === U32_MAX) localOffset = next();
        }
        q += 4 + len;
      }
      if (flags & FLAG_ENCRYPTED) fail(`'${name}' is encrypted`);
      if (method !== STORED && method !== DEFLATED) fail(`'${name}' uses compression method ${method}; only stored and deflated records are supported`);
      if (method === STORED && compressedSize !== size) fail(`'${name}' is stored but its sizes differ (${compressedSize} and ${size})`);
      if (method === DEFLATED && size > compressedSize * MAX_DEFLATE_RATIO + 64) fail(`'${name}' claims ${size} bytes from ${compressedSize} compressed bytes, more than deflate can produce`);
      if (entries.has(name)) fail(`the archive holds '${name}' twice`);
      // The local header repeats the name and may carry a different extra field (torch puts its padding
      // there); the data follows it.
      if (localOffset + LOCAL_HEADER_SIZE > cdOffset) fail(`'${name}': its local header lies outside the archive`);
      const local = viewOf(file.read(localOffset, LOCAL_HEADER_SIZE, `the local header of '${name}'`));
      if (local.getUint32(0, true) !== LOCAL_HEADER) fail(`'${name}': bad local header signature`);
      const localName = file.read(localOffset + LOCAL_HEADER_SIZE, local.getUint16(26, true), `the local name of '${name}'`);
      if (!sameBytes(localName, nameBytes)) fail(`'${name}': the local header names a different record`);
      const dataOffset = localOffset + LOCAL_HEADER_SIZE + local.getUint16(26, true) + local.getUint16(28, true);
      if (dataOffset + compressedSize > cdOffset) fail(`'${name}': its data (${compressedSize} bytes at offset ${dataOffset}) lies outside the archive: it is truncated or corrupt`);
      entries.set(name, { name, method, crc, compressedSize, size, dataOffset });
      spans.push([localOffset, dataOffset + compressedSize, name]);
      p = end;
    }
    // Records that share bytes would let a small file expand into many large reads.
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i][0] < spans[i - 1][1]) fail(`records '${spans[i - 1][2]}' and '${spans[i][2]}' overlap`);
    }
    return new ZipReader(file, entries);
  }

  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (e === undefined) throw this.file.error(`the archive has no record '${name}'`);
    const raw = this.file.read(e.dataOffset, e.compressedSize, `record '${name}'`);
    let data = raw;
    if (e.method === DEFLATED) {
      try {
        data = new Uint8Array(inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) }));
      } catch (err) {
        throw this.file.error(`record '${name}' does not inflate: ${(err as Error).message}`);
      }
      if (data.length !== e.size) throw this.file.error(`record '${name}' inflates to ${data.length} bytes, not the ${e.size} its header says`);
      // inflateRawSync returns a Buffer that may sit inside a shared pool; copy so typed arrays can view it.
      if (data.byteOffset !== 0) data = data.slice();
    }
    if (crc32(data) !== e.crc) throw this.file.error(`record '${name}' fails its checksum: the file is corrupt`);
    return data;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => '0x' + b.toString(16).padStart(2, '0')).join(' ');
}

export interface ZipWriterOptions {
  // Data of each record starts at a multiple of this (torch uses 64, which lets loaders map tensors).
  alignment?: number;
  // Write ZIP64 fields even where 32-bit ones would do (other readers' ZIP64 handling can be checked
  // without writing 4 GiB).
  forceZip64?: boolean;
}

interface WrittenEntry {
  name: Uint8Array;
  crc: number;
  size: number;
  offset: number;
}

// Writes stored records one after the other into a sink, then the central directory.
export class ZipWriter {
  private readonly written: WrittenEntry[] = [];
  private readonly alignment: number;
  private readonly forceZip64: boolean;
  private finished = false;

  constructor(private readonly sink: ByteSink, opts: ZipWriterOptions = {}) {
    this.alignment = opts.alignment ?? 64;
    this.forceZip64 = opts.forceZip64 ?? false;
    if (!Number.isInteger(this.alignment) || this.alignment < 1 || this.alignment > 0x8000) throw new RangeError(`alignment must be an integer in [1, 32768], got ${this.alignment}`);
  }

  add(name: string, data: Uint8Array): void {
    if (this.finished) throw new Error('the zip archive is already finished');
    const nameBytes = encoder.encode(name);
    if (nameBytes.length > U16_MAX) throw new RangeError(`record name too long: ${name.slice(0, 80)}...`);
    const offset = this.sink.position;
    const zip64 = this.forceZip64 || data.length >= U32_MAX;
    const zip64Extra = zip64 ? 20 : 0;
    const unpadded = offset + LOCAL_HEADER_SIZE + nameBytes.length + zip64Extra + 4;
    const pad = (this.alignment - (unpadded % this.alignment)) % this.alignment;
    const crc = crc32(data);

    const header = new Uint8Array(LOCAL_HEADER_SIZE + nameBytes.length + zip64Extra + 4 + pad);
    const h = viewOf(header);
    h.setUint32(0, LOCAL_HEADER, true);
    h.setUint16(4, zip64 ? 45 : 20, true);
    h.setUint16(6, FLAG_UTF8, true);
    h.setUint16(8, STORED, true);
    h.setUint32(14, crc, true);
    h.setUint32(18, zip64 ? U32_MAX : data.length, true);
    h.setUint32(22, zip64 ? U32_MAX : data.length, true);
    h.setUint16(26, nameBytes.length, true);
    h.setUint16(28, zip64Extra + 4 + pad, true);
    header.set(nameBytes, LOCAL_HEADER_SIZE);
    let q = LOCAL_HEADER_SIZE + nameBytes.length;
    if (zip64) {
      h.setUint16(q, ZIP64_EXTRA, true);
      h.setUint16(q + 2, 16, true);
      setU64(h, q + 4, data.length);
      setU64(h, q + 12, data.length);
      q += 20;
    }
    h.setUint16(q, PADDING_EXTRA, true);
    h.setUint16(q + 2, pad, true);
    header.fill(0x5a, q + 4);
    this.sink.write(header);
    this.sink.write(data);
    this.written.push({ name: nameBytes, crc, size: data.length, offset });
  }

  finish(): void {
    if (this.finished) throw new Error('the zip archive is already finished');
    this.finished = true;
    const cdOffset = this.sink.position;
    let cdSize = 0;
    for (const e of this.written) {
      const bigSize = this.forceZip64 || e.size >= U32_MAX;
      const bigOffset = this.forceZip64 || e.offset >= U32_MAX;
      const extraLength = bigSize || bigOffset ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
      const rec = new Uint8Array(CENTRAL_HEADER_SIZE + e.name.length + extraLength);
      const v = viewOf(rec);
      v.setUint32(0, CENTRAL_HEADER, true);
      v.setUint16(4, bigSize || bigOffset ? 45 : 20, true);
      v.setUint16(6, bigSize || bigOffset ? 45 : 20, true);
      v.setUint16(8, FLAG_UTF8, true);
      v.setUint16(10, STORED, true);
      v.setUint32(16, e.crc, true);
      v.setUint32(20, bigSize ? U32_MAX : e.size, true);
      v.setUint32(24, bigSize ? U32_MAX : e.size, true);
      v.setUint16(28, e.name.length, true);
      v.setUint16(30, extraLength, true);
      v.setUint32(42, bigOffset ? U32_MAX : e.offset, true);
      rec.set(e.name, CENTRAL_HEADER_SIZE);
      if (extraLength > 0) {
        let q = CENTRAL_HEADER_SIZE + e.name.length;
        v.setUint16(q, ZIP64_EXTRA, true);
        v.setUint16(q + 2, extraLength - 4, true);
        q += 4;
        if (bigSize) {
          setU64(v, q, e.size);
          setU64(v, q + 8, e.size);
          q += 16;
        }
        if (bigOffset) setU64(v, q, e.offset);
      }
      this.sink.write(rec);
      cdSize += rec.length;
    }
    const count = this.written.length;
    const zip64 = this.forceZip64 || count >= U16_MAX || cdSize >= U32_MAX || cdOffset >= U32_MAX;
    if (zip64) {
      const recordOffset = this.sink.position;
      const rec = new Uint8Array(ZIP64_END_SIZE + ZIP64_LOCATOR_SIZE);
      const v = viewOf(rec);
      v.setUint32(0, ZIP64_END, true);
      setU64(v, 4, ZIP64_END_SIZE - 12);
      v.setUint16(12, 45, true);
      v.setUint16(14, 45, true);
      setU64(v, 24, count);
      setU64(v, 32, count);
      setU64(v, 40, cdSize);
      setU64(v, 48, cdOffset);
      v.setUint32(ZIP64_END_SIZE, ZIP64_LOCATOR, true);
      setU64(v, ZIP64_END_SIZE + 8, recordOffset);
      v.setUint32(ZIP64_END_SIZE + 16, 1, true);
      this.sink.write(rec);
    }
    const end = new Uint8Array(EOCD_SIZE);
    const v = viewOf(end);
    v.setUint32(0, END_OF_CENTRAL_DIRECTORY, true);
    v.setUint16(8, zip64 ? U16_MAX : count, true);
    v.setUint16(10, zip64 ? U16_MAX : count, true);
    v.setUint32(12, zip64 ? U32_MAX : cdSize, true);
    v.setUint32(16, zip64 ? U32_MAX : cdOffset, true);
    this.sink.write(end);
  }
}

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 2 ** 32, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}
