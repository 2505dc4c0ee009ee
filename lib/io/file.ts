// File plumbing shared by the readers and writers: positioned reads that refuse to run past the end of
// the file (so a size field in an untrusted file can never make us allocate more than the file holds),
// and atomic replacement of a file.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import process from 'node:process';

// Every format here is little-endian and typed arrays use the host's byte order.
if (endianness() !== 'LE') throw new Error('dino-ts reads and writes tensor files only on little-endian hosts');

// A file that is not what it claims to be (truncated, malformed, refused content). The message names
// the file and what is wrong; the process stays healthy.
export class FileFormatError extends Error {
  readonly code = 'ERR_DINO_BAD_FILE';
  override name = 'FileFormatError';
}

// node:fs moves at most 2 GiB per call.
const CHUNK = 1 << 30;

export class RandomAccessFile {
  readonly size: number;
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      const st = fstatSync(this.fd);
      if (!st.isFile()) throw new FileFormatError(`${path}: not a regular file`);
      this.size = st.size;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  // Exactly `length` bytes from `position`, in a fresh buffer (offset 0, so any typed array can view it).
  read(position: number, length: number, what: string): Uint8Array {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > this.size) {
      throw new FileFormatError(`${this.path}: ${what} (${length} bytes at offset ${position}) lies outside the file (${this.size} bytes); it is truncated or corrupt`);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd, out, done, Math.min(CHUNK, length - done), position + done);
      if (n === 0) throw new FileFormatError(`${this.path}: ${what}: the file ended early (it changed while being read?)`);
      done += n;
    }
    return out;
  }

  error(message: string): FileFormatError {
    return new FileFormatError(`${this.path}: ${message}`);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

// Opens a file, runs fn on it and closes it whatever happens.
export function withFile<T>(path: string, fn: (file: RandomAccessFile) => T): T {
  const file = new RandomAccessFile(path);
  try {
    return fn(file);
  } finally {
    file.close();
  }
}

export interface ByteSink {
  write(bytes: Uint8Array): void;
  // Bytes written so far.
  readonly position: number;
}

// Writes `path` through `fill` so that the name only ever refers to a complete file: the bytes go to a
// temporary file in the same directory, which is flushed to disk and then renamed over the target
// (rename within one directory is atomic), and the directory is flushed so that the rename itself
// survives a power cut. If fill throws, the temporary file is removed and the old file is untouched. A
// process killed mid-write can leave a `<name>.tmp-*` file behind, never a truncated `<name>`.
export function writeFileAtomic(path: string, fill: (sink: ByteSink) => void): void {
  const dir = dirname(path);
  const tmp = join(dir, `${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx', 0o644);
  let closed = false;
  try {
    let position = 0;
    fill({
      write(bytes: Uint8Array) {
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(CHUNK, bytes.length - done));
        position += bytes.length;
      },
      get position() {
        return position;
      },
    });
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    renameSync(tmp, path);
  } catch (e) {
    if (!closed) closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  syncDirectory(dir);
}

function syncDirectory(dir: string): void {
  // Windows cannot open a directory for flushing; there the rename is as durable as it gets.
  if (process.platform === 'win32') return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
