// safetensors: round trips (float32 bit-exact, float16/bfloat16 raw bits, metadata), the byte layout,
// the reference Python implementation reading our files and writing files we read (when installed),
// the integer rule, and a clear error for every kind of malformed file, with no leaked tensors.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addon, tensor, type Tensor } from '../../lib/index.ts';
import { readSafetensors, writeSafetensors, MAX_HEADER_BYTES } from '../../lib/io/safetensors.ts';
import { pythonMissing, runPython } from './python.ts';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const path = (name = 'f') => join(dir, `${name}-${counter++}.safetensors`);

// A file from a header (object or raw JSON text) and data bytes; lengthField overrides the header length.
function rawFile(header: object | string, data: ArrayLike<number> = [], lengthField?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthField ?? BigInt(json.length));
  const p = path('raw');
  writeFileSync(p, Buffer.concat([len, json, Buffer.from(Uint8Array.from(data))]));
  return p;
}

function bits(x: Tensor): number[] {
  const a = x.dtype === 'float32' ? new Uint32Array(x.data().buffer) : x.rawData();
  return [...a];
}

function disposeAll(entries: [string, Tensor][]): void {
  for (const [, x] of entries) x.dispose();
}

t.test('write -> read round trip: dtypes, shapes, order, metadata, bit patterns', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const special = new Float32Array([NaN, Infinity, -Infinity, -0, 1e-45, 3.4028234663852886e38, 0.1]);
  const tensors: [string, Tensor][] = [
    ['z.weight', tensor(special, [7])],
    ['a.matrix', tensor(Float32Array.from({ length: 12 }, (_, i) => i / 7), [3, 4])],
    ['scalar', tensor([42], [])],
    ['empty', tensor(new Float32Array(0), [0, 5])],
    ['half', tensor(new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001]), [2, 2], { dtype: 'float16' })],
    ['brain', tensor(new Uint16Array([0x3f80, 0xbf80, 0x7fc0]), [3], { dtype: 'bfloat16' })],
    ['ünï.cødé', tensor([1, 2], [2])],
  ];
  const metadata = { format: 'pt', note: 'ünïcødé "quoted"', empty: '' };
  const p = path();
  writeSafetensors(p, tensors, metadata);

  const raw = readFileSync(p);
  const headerLength = Number(raw.readBigUInt64LE(0));
  t.equal(headerLength % 8, 0, 'the header is padded to a multiple of 8 bytes');
  t.match(raw.subarray(8, 8 + headerLength).toString(), /^\{.*\} *$/, 'with spaces after the JSON');
  const header = JSON.parse(raw.subarray(8, 8 + headerLength).toString());
  t.same(header.__metadata__, metadata);
  t.same(header['half'], { dtype: 'F16', shape: [2, 2], data_offsets: [7 * 4 + 12 * 4 + 4, 7 * 4 + 12 * 4 + 4 + 8] });

  const back = readSafetensors(p);
  t.same(back.metadata, metadata);
  t.same(back.tensors.map(([n]) => n), tensors.map(([n]) => n), 'names in the order written');
  for (const [i, [name, x]] of back.tensors.entries()) {
    t.equal(x.dtype, tensors[i][1].dtype, `${name}: dtype`);
    t.same(x.shape, tensors[i][1].shape, `${name}: shape`);
    t.same(bits(x), bits(tensors[i][1]), `${name}: bit-identical`);
  }
  disposeAll(back.tensors);
  disposeAll(tensors);
  t.equal(addon.memoryStats('cpu').inUse, before, 'no tensor leaked');
});

t.test('no metadata: no __metadata__ entry', async (t) => {
  const p = path();
  const x = tensor([1], [1]);
  writeSafetensors(p, [['x', x]]);
  t.notOk(readFileSync(p).toString().includes('__metadata__'));
  const back = readSafetensors(p);
  t.same(back.metadata, {});
  disposeAll(back.tensors);
  x.dispose();
});

// The reference package is optional (pip install safetensors); without it this check is skipped.
t.test('the reference implementation reads our files and writes files we read', { skip: pythonMissing('safetensors', 'torch') }, async (t) => {
  const ours = path('ours');
  const a = tensor(Float32Array.from({ length: 6 }, (_, i) => Math.fround(Math.sin(i))), [2, 3]);
  const h = tensor(new Uint16Array([0x3f80, 0x4000]), [2], { dtype: 'bfloat16' });
  writeSafetensors(ours, [['a', a], ['h', h]], { k: 'v' });
  const theirs = path('theirs');
  const r = runPython(`
import sys, json, torch
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], 'pt') as f:
    out = {'meta': f.metadata(), 'tensors': {k: {'dtype': str(f.get_tensor(k).dtype), 'shape': list(f.get_tensor(k).shape),
           'values': f.get_tensor(k).float().flatten().tolist()} for k in f.keys()}}
save_file({'w': torch.arange(6, dtype=torch.float32).reshape(3, 2) / 3, 'b': torch.tensor([1.5, -2.0], dtype=torch.float16),
           'steps': torch.tensor([3, -4], dtype=torch.int64), 'i': torch.tensor(5, dtype=torch.int32)}, sys.argv[2], metadata={'m': 'x'})
print(json.dumps(out))`, [ours, theirs]);
  t.same(r.meta, { k: 'v' });
  t.same(r.tensors.a, { dtype: 'torch.float32', shape: [2, 3], values: [...a.data()] }, 'float32 values equal');
  t.same(r.tensors.h, { dtype: 'torch.bfloat16', shape: [2], values: [1, 2] });
  const back = readSafetensors(theirs);
  const got = Object.fromEntries(back.tensors);
  t.same(back.metadata, { m: 'x' });
  t.same([...got.w.data()], [0, 1, 2, 3, 4, 5].map((v) => Math.fround(v / 3)));
  t.equal(got.b.dtype, 'float16');
  t.same([...got.b.rawData()], [0x3e00, 0xc000]);
  t.same([...got.steps.data()], [3, -4], 'int64 read as float32 (exact)');
  t.same([got.i.shape, got.i.item()], [[], 5], 'a 0-d int32');
  disposeAll(back.tensors);
  a.dispose();
  h.dispose();
});

t.test('integer tensors: float32 when exact, an error otherwise', async (t) => {
  const i64 = (values: bigint[]): Uint8Array => new Uint8Array(BigInt64Array.from(values).buffer);
  const ok = rawFile({ n: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, i64([2n ** 24n, -(2n ** 24n), 2n ** 40n]));
  const back = readSafetensors(ok);
  t.same([...back.tensors[0][1].data()], [2 ** 24, -(2 ** 24), 2 ** 40], 'large powers of two are exact in float32');
  disposeAll(back.tensors);
  const bad = rawFile({ n: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, i64([1n, 2n ** 24n + 1n]));
  t.throws(() => readSafetensors(bad), /tensor 'n': int64 value 16777217 \(element 1\) has no exact float32 equal/);
  const huge = rawFile({ n: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, i64([2n ** 62n + 1n]));
  t.throws(() => readSafetensors(huge), /has no exact float32 equal/);
});

t.test('malformed files: a clear error each, no tensor leaked, the process healthy', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
  const entry = (shape: number[], begin: number, end: number, dtype = 'F32') => ({ dtype, shape, data_offsets: [begin, end] });
  const empty = path('empty');
  writeFileSync(empty, '');
  const short = path('short');
  writeFileSync(short, Buffer.from([1, 0, 0]));
  const cases: [string, string, RegExp][] = [
    ['an empty file', empty, /the file is empty/],
    ['a 3-byte file', short, /3 bytes is too short/],
    ['a header length larger than the file', rawFile({ a: entry([1], 0, 4) }, f32(1), 1000n), /header length 1000 runs past the end of the file/],
    ['a JSON bomb: a huge header length', rawFile('{}', [], 2n ** 40n), /header length 1099511627776 is above the 100000000-byte limit/],
    ['a header length just above the limit', rawFile('{}', [], BigInt(MAX_HEADER_BYTES + 1)), /above the 100000000-byte limit/],
    ['invalid JSON', rawFile('{"a": {"dtype": "F32",', f32(1)), /the header is not valid JSON/],
    ['a JSON array', rawFile('[1, 2]'), /not a JSON object/],
    ['a deeply nested header', rawFile('{"a": ' + '['.repeat(100000) + ']'.repeat(100000) + '}'), /tensor 'a': its entry is not an object/],
    ['invalid UTF-8', rawFile(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), /not (UTF-8|valid JSON)/],
    ['a duplicate name', rawFile('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "\\u0061": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', f32(2)), /names 'a' twice/],
    ['a duplicate metadata key', rawFile('{"__metadata__": {"k": "1", "k": "2"}}'), /names 'k' twice/],
    ['overlapping offsets', rawFile({ a: entry([2], 0, 8), b: entry([2], 4, 12) }, f32(3)), /tensors 'a' and 'b' overlap/],
    ['a gap', rawFile({ a: entry([1], 0, 4), b: entry([1], 8, 12) }, f32(3)), /4 unused bytes before 'b'/],
    ['trailing bytes', rawFile({ a: entry([1], 0, 4) }, f32(2)), /the tensors end at byte 4 of a 8-byte data section/],
    ['offsets outside the data', rawFile({ a: entry([4], 0, 16) }, f32(2)), /data_offsets \[0, 16\] lie outside the data section \(8 bytes\)/],
    ['reversed offsets', rawFile({ a: entry([0], 4, 0) }, f32(1)), /lie outside/],
    ['a size that does not match the shape', rawFile({ a: entry([3], 0, 8) }, f32(4)), /shape \[3\] of F32 needs 12 bytes, data_offsets give 8/],
    ['a shape that overflows', rawFile({ a: entry([2 ** 40, 2 ** 40, 2 ** 40], 0, 8) }, f32(2)), /needs more bytes than the file holds/],
    ['a negative dimension', rawFile({ a: entry([-1], 0, 4) }, f32(1)), /shape must be a list of non-negative integers/],
    ['an unsupported dtype', rawFile({ a: entry([1], 0, 8, 'F64') }, f32(2)), /dtype "F64" is not supported/],
    ['a dtype named like an object method', rawFile({ a: entry([1], 0, 4, 'toString') }, f32(1)), /dtype "toString" is not supported/],
    ['non-string metadata', rawFile({ __metadata__: { epoch: 3 } }), /__metadata__\['epoch'\] is not a string/],
    ['an unknown field', rawFile({ a: { ...entry([1], 0, 4), extra: 1 } }, f32(1)), /unknown fields extra/],
  ];
  for (const [what, p, message] of cases) t.throws(() => readSafetensors(p), { code: 'ERR_DINO_BAD_FILE', message }, what);
  t.throws(() => readSafetensors(join(dir, 'missing.safetensors')), /ENOENT/, 'a missing file');
  t.equal(addon.memoryStats('cpu').inUse, before, 'no tensor leaked');
  const good = rawFile({ a: entry([2], 0, 8) }, new Uint8Array(new Float32Array([1, 2]).buffer));
  const back = readSafetensors(good);
  t.same([...back.tensors[0][1].data()], [1, 2], 'a good file still reads afterwards');
  disposeAll(back.tensors);
});

t.test('the writer refuses bad input before touching the file', async (t) => {
  const x = tensor([1], [1]);
  const p = path('refused');
  t.throws(() => writeSafetensors(p, [['x', x], ['x', x]]), /'x' is given twice/);
  t.throws(() => writeSafetensors(p, [['__metadata__', x]]), /invalid tensor name/);
  t.throws(() => writeSafetensors(p, [['', x]]), /invalid tensor name/);
  t.throws(() => writeSafetensors(p, [['x', x]], { n: 3 as unknown as string }), /metadata values must be strings/);
  t.same(readdirSync(dir).filter((f) => f.startsWith('refused')), [], 'nothing written');
  x.dispose();
});

t.test('checksum: written on request, verified on reading, a flipped bit found', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const a = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([5, 6], [2]);
  const p = path('checksum');
  writeSafetensors(p, [['a', a], ['b', b]], { note: 'x' }, { checksum: true });
  const bytes = readFileSync(p);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
  const { createHash } = await import('node:crypto');
  t.equal(header.__metadata__.data_sha256, createHash('sha256').update(bytes.subarray(8 + headerLength)).digest('hex'), 'the SHA-256 of the data section, computed independently');
  const back = readSafetensors(p);
  t.same([...back.tensors[1][1].data()], [5, 6]);
  disposeAll(back.tensors);
  for (const offset of [0, 13, 23]) {
    const flipped = Buffer.from(bytes);
    flipped[8 + headerLength + offset] ^= 0x10;
    const q = path('flipped');
    writeFileSync(q, flipped);
    t.throws(() => readSafetensors(q), { code: 'ERR_DINO_BAD_FILE', message: /does not match its checksum: the file is corrupted/ }, `a bit flipped in data byte ${offset}`);
  }
  t.throws(() => writeSafetensors(p, [['a', a]], { data_sha256: 'x' }), /reserved key 'data_sha256'/);
  a.dispose();
  b.dispose();
  t.equal(addon.memoryStats('cpu').inUse, before, 'no tensor leaked');
});
