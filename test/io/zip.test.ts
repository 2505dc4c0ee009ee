// The zip layer: our archives read back (with and without ZIP64) and open in Python's zipfile, data is
// 64-byte aligned as torch writes it, deflated records inflate, and damaged or hostile archives are
// clear errors.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withFile, writeFileAtomic } from '../../lib/io/file.ts';
import { ZipReader, ZipWriter, type ZipWriterOptions } from '../../lib/io/zip.ts';
import { pythonMissing, runPython } from './python.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'pth');
const dir = mkdtempSync(join(tmpdir(), 'zip-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

const records: [string, Uint8Array][] = [
  ['archive/data.pkl', Uint8Array.from({ length: 100 }, (_, i) => i)],
  ['archive/empty', new Uint8Array(0)],
  ['archive/data/0', Uint8Array.from({ length: 4099 }, (_, i) => (i * 7) & 0xff)],
  ['archive/ünïcødé', new TextEncoder().encode('name in UTF-8')],
];

function writeZip(entries: [string, Uint8Array][], opts: ZipWriterOptions = {}): string {
  const p = join(dir, `z${counter++}.zip`);
  writeFileAtomic(p, (sink) => {
    const zip = new ZipWriter(sink, opts);
    for (const [name, data] of entries) zip.add(name, data);
    zip.finish();
  });
  return p;
}

function readAll(p: string): Map<string, Uint8Array> {
  return withFile(p, (f) => {
    const zip = ZipReader.open(f);
    return new Map([...zip.entries.keys()].map((n) => [n, zip.read(n)]));
  });
}

function patched(p: string, edit: (b: Buffer) => void): string {
  const b = Buffer.from(readFileSync(p));
  edit(b);
  const q = join(dir, `p${counter++}.zip`);
  writeFileSync(q, b);
  return q;
}

for (const zip64 of [false, true]) {
  t.test(`round trip${zip64 ? ' with forced ZIP64 records' : ''}: names, bytes, 64-byte alignment`, async (t) => {
    const p = writeZip(records, { forceZip64: zip64 });
    t.same(readAll(p), new Map(records));
    withFile(p, (f) => {
      for (const e of ZipReader.open(f).entries.values()) t.equal(e.dataOffset % 64, 0, `${e.name} data at a multiple of 64`);
    });
    await t.test("Python's zipfile reads the same records (and checks their CRCs)", { skip: pythonMissing('zipfile') }, async (t) => {
      const r = runPython('import sys, json, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps({i.filename: list(z.read(i.filename)) for i in z.infolist()}))', [p]);
      t.same(r, Object.fromEntries(records.map(([n, d]) => [n, [...d]])));
    });
  });
}

t.test('deflated records (an archive repacked by a zip tool) inflate to the stored ones', async (t) => {
  const stored = readAll(join(fixtures, 'backbone.pth'));
  const deflated = readAll(join(fixtures, 'deflated.pth'));
  t.same([...deflated.keys()], [...stored.keys()]);
  for (const [name, data] of stored) t.same(deflated.get(name), data, name);
  const inflated = withFile(join(fixtures, 'deflated.pth'), (f) => [...ZipReader.open(f).entries.values()].filter((e) => e.method === 8).length);
  t.ok(inflated > 0, `${inflated} records were deflated`);
});

t.test('damaged and hostile archives: a clear error each', async (t) => {
  const good = writeZip(records);
  const bytes = readFileSync(good);
  const cut = (n: number): string => {
    const q = join(dir, `cut${counter++}.zip`);
    writeFileSync(q, bytes.subarray(0, n));
    return q;
  };
  const empty = join(dir, 'empty.zip');
  writeFileSync(empty, '');
  const png = join(dir, 'image.zip');
  writeFileSync(png, Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(100)]));
  const cdOffset = bytes.readUInt32LE(bytes.length - 6);
  // The central directory entry of 'archive/data/0' (found by its name after the fixed 46 bytes).
  const cdEntry = bytes.indexOf(Buffer.from('archive/data/0'), cdOffset) - 46;
  const dataAt = withFile(good, (f) => ZipReader.open(f).entries.get('archive/data/0')!.dataOffset);

  const cases: [string, string, RegExp][] = [
    ['an empty file', empty, /the file is empty/],
    ['a file too short for a zip', cut(10), /10 bytes is too short for a zip archive/],
    ['not a zip (wrong magic)', png, /not a zip archive \(it starts with 0x89 0x50 0x4e 0x47\)/],
    ['cut in the middle', cut(Math.floor(bytes.length / 2)), /no end-of-central-directory record: the archive is truncated/],
    ['cut one byte short', cut(bytes.length - 1), /no end-of-central-directory record/],
    ['a corrupt data byte', patched(good, (b) => (b[dataAt + 10] ^= 1)), /record 'archive\/data\/0' fails its checksum/],
    ['a central directory pointing past the end', patched(good, (b) => b.writeUInt32LE(bytes.length, bytes.length - 6)), /central directory lies outside the archive/],
    ['a record pointing past the end', patched(good, (b) => { b.writeUInt32LE(0x7fffffff, cdEntry + 20); b.writeUInt32LE(0x7fffffff, cdEntry + 24); }), /'archive\/data\/0': its data \(2147483647 bytes at offset \d+\) lies outside the archive/],
    ['an unsupported compression method', patched(good, (b) => b.writeUInt16LE(12, cdEntry + 10)), /'archive\/data\/0' uses compression method 12/],
    ['an encrypted record', patched(good, (b) => b.writeUInt16LE(0x801, cdEntry + 8)), /'archive\/data\/0' is encrypted/],
    ['a local header naming another record', patched(good, (b) => b.writeUInt32LE(0, cdEntry + 42)), /'archive\/data\/0': the local header names a different record/],
    ['a deflate bomb (impossible size ratio)', patched(good, (b) => { b.writeUInt16LE(8, cdEntry + 10); b.writeUInt32LE(0xfffffff0, cdEntry + 24); }), /claims 4294967280 bytes from 4099 compressed bytes/],
    ['a multi-disk archive', patched(good, (b) => b.writeUInt16LE(1, bytes.length - 18)), /multi-disk zip archives are not supported/],
  ];
  for (const [what, p, message] of cases) {
    t.throws(() => withFile(p, (f) => {
      const zip = ZipReader.open(f);
      for (const n of zip.entries.keys()) zip.read(n);
    }), { code: 'ERR_DINO_BAD_FILE', message }, what);
  }
});

t.test('records that share bytes are refused (overlap zip bombs)', async (t) => {
  // Record 'b' is embedded, local header and all, inside record 'a'; then the central directory entry
  // of a second copy of 'b' is pointed at the embedded one. Every record checks out on its own.
  const inner = writeZip([['b', new TextEncoder().encode('payload')]], { alignment: 1 });
  const innerBytes = readFileSync(inner);
  const innerLocal = innerBytes.subarray(0, innerBytes.readUInt32LE(innerBytes.length - 6));
  const outer = writeZip([['a', innerLocal], ['b', new TextEncoder().encode('payload')]], { alignment: 1 });
  const aData = withFile(outer, (f) => ZipReader.open(f).entries.get('a')!.dataOffset);
  const bomb = patched(outer, (b) => {
    const secondEntry = b.indexOf(Buffer.from('PK\x01\x02', 'latin1'), b.readUInt32LE(b.length - 6) + 1);
    b.writeUInt32LE(aData, secondEntry + 42);
  });
  t.throws(() => withFile(bomb, (f) => ZipReader.open(f)), { message: /records 'a' and 'b' overlap/ });
});

t.test('the writer refuses to go on after finish', async (t) => {
  const p = join(dir, 'finished.zip');
  writeFileAtomic(p, (sink) => {
    const zip = new ZipWriter(sink);
    zip.finish();
    t.throws(() => zip.add('x', new Uint8Array(1)), /already finished/);
    t.throws(() => zip.finish(), /already finished/);
  });
  t.same(readAll(p), new Map(), 'an empty archive reads back empty');
  t.throws(() => new ZipWriter({ write() {}, position: 0 }, { alignment: 0 }), /alignment must be an integer/);
});
