// .pth files: what torch.save wrote (test/fixtures/pth, made by scripts/fixtures/pth.py) reads back
// bit-exactly against the values PyTorch recorded (test/fixtures/ops/pth.json); what writePth writes
// loads in PyTorch with weights_only=True with the same keys, dtypes and bits; the official checkpoint
// key handling; and hostile files are clear errors that leave the process healthy.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, dispose, Tensor, tensor } from '../../lib/index.ts';
import { backboneStateDict, readBackbone, readPth, writePth, type PthValue, type StateDict } from '../../lib/io/pth.ts';
import { PyCall, PyGlobal, PyPersistent, PyTuple, pickle } from '../../lib/io/pickle.ts';
import { withFile, writeFileAtomic } from '../../lib/io/file.ts';
import { ZipReader, ZipWriter } from '../../lib/io/zip.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { pythonMissing, runPython } from './python.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'pth');
const expected = loadFixtures('pth');
const dir = mkdtempSync(join(tmpdir(), 'pth-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

const bitsOf = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

// Every tensor of a tree by path ('optimizer/state/3/exp_avg'), as the fixture script names them.
function flat(v: unknown, prefix = '', out = new Map<string, Tensor>()): Map<string, Tensor> {
  const at = (k: unknown) => (prefix ? `${prefix}/${String(k)}` : String(k));
  if (v instanceof Tensor) out.set(prefix, v);
  else if (Array.isArray(v)) v.forEach((x, i) => flat(x, at(i), out));
  else if (v instanceof Map) for (const [k, x] of v) flat(x, at(k), out);
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) flat(x, at(k), out);
  return out;
}

// Bit-exact equality with the float32 values PyTorch recorded.
function sameAsFixture(t: Test, actual: Tensor, want: { shape: number[]; data: number[] }, what: string): void {
  t.same(actual.shape, want.shape, `${what}: shape`);
  t.same(bitsOf(actual.data()), bitsOf(Float32Array.from(want.data)), `${what}: bit-identical to PyTorch`);
}

t.test('dtypes.pth: every dtype, view, shared storage and special value as PyTorch has them', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const tree = readPth(join(fixtures, 'dtypes.pth'));
  t.ok(tree instanceof Map, 'an OrderedDict reads as a Map');
  const m = tree as Map<string, Tensor>;
  const { tensors, attrs } = expected.dtypes;
  t.same([...m.keys()], Object.keys(attrs.dtypes), 'all keys, in order');
  for (const [name, x] of m) {
    t.equal(x.dtype, 'float32', `${name} (${attrs.dtypes[name]}) loads as float32`);
    if (name === 'special') t.same(bitsOf(x.data()), attrs.special_bits, 'inf, -inf, NaN, -0, denormal, max, -min normal: bit patterns kept');
    else sameAsFixture(t, x, tensors[name], name);
  }
  dispose(tree);
  t.equal(addon.memoryStats('cpu').inUse, before, 'dispose(tree) frees every tensor');
});

t.test('checkpoint.pth: the official training checkpoint, tensors and plain data', async (t) => {
  const tree = readPth(join(fixtures, 'checkpoint.pth')) as Map<string, PthValue>;
  const { tensors, attrs } = expected.checkpoint;
  t.same([...tree.keys()], ['student', 'teacher', 'optimizer', 'epoch', 'args', 'dino_loss', 'fp16_scaler']);
  const all = flat(tree);
  t.same([...all.keys()].sort(), Object.keys(tensors).sort(), 'every tensor, nothing more');
  for (const [path, x] of all) sameAsFixture(t, x, tensors[path], path);
  t.equal(tree.get('epoch'), 3);
  t.same(tree.get('args'), attrs.args, 'args (an argparse.Namespace) as a plain object of its attributes');
  t.equal(Object.getPrototypeOf(tree.get('args')), Object.prototype);
  t.same(Object.fromEntries(tree.get('fp16_scaler') as Map<string, unknown>), attrs.fp16_scaler);
  const groups = (tree.get('optimizer') as Map<string, PthValue>).get('param_groups') as Map<string, PthValue>[];
  t.same(groups.map((g) => Object.fromEntries(g)), attrs.param_groups, 'optimizer hyper-parameters and parameter indices');
  t.same([...(tree.get('student') as Map<string, Tensor>).keys()], attrs.student_keys);
  dispose(tree);
});

t.test('backbone.pth and deflated.pth (the same records, deflated) read the same', async (t) => {
  for (const file of ['backbone.pth', 'deflated.pth']) {
    const tree = readPth(join(fixtures, file)) as Map<string, Tensor>;
    t.same([...tree.keys()], expected.backbone.attrs.keys, `${file}: keys`);
    for (const [k, x] of tree) sameAsFixture(t, x, expected.backbone.tensors[k], `${file}: ${k}`);
    dispose(tree);
  }
});

t.test('shared.pth: a container the pickle refers to twice is one Map', async (t) => {
  const tree = readPth(join(fixtures, 'shared.pth')) as Map<string, Map<string, Tensor>>;
  t.equal(tree.get('a'), tree.get('b'), 'the same Map under both keys');
  t.same(tree.get('a')!.get('w')!.shape, [2]);
  dispose(tree);
});

t.test('the backbone as the official evaluation code loads it', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const full = readPth(join(fixtures, 'checkpoint.pth'));
  const keys = expected.backbone.attrs.keys as string[];
  const teacher = backboneStateDict(full);
  t.same(teacher.map(([k]) => k), keys, "teacher: 'backbone.' stripped, the head left out");
  for (const [k, x] of teacher) sameAsFixture(t, x, expected.checkpoint.tensors[`teacher/backbone.${k}`], `teacher ${k}`);
  const student = backboneStateDict(full, 'student');
  t.same(student.map(([k]) => k), keys, "student: 'module.' and 'backbone.' stripped");
  t.equal(student[0][1], (full as Map<string, Map<string, Tensor>>).get('student')!.get('module.backbone.cls_token'), 'the tensors are the tree’s own');
  dispose(full);
  const released = readPth(join(fixtures, 'backbone.pth'));
  t.same(backboneStateDict(released).map(([k]) => k), keys, 'backbone-only weights pass through');
  dispose(released);
  const picked = readBackbone(join(fixtures, 'checkpoint.pth'), 'student');
  t.same(picked.map(([k]) => k), keys);
  dispose(picked.map(([, x]) => x));
  t.equal(addon.memoryStats('cpu').inUse, before, 'readBackbone frees everything it does not return');
  const dtypes = readPth(join(fixtures, 'dtypes.pth'));
  t.same(backboneStateDict(dtypes).length, 22, 'a state dict without prefixes is returned whole');
  dispose(dtypes);
  const ckptWithoutSD = join(dir, 'nostate.pth');
  writePth(ckptWithoutSD, new Map([['teacher', 5]]));
  t.throws(() => readBackbone(ckptWithoutSD), /nostate\.pth: 'teacher' is not a state dict \(it is a number\)/);
});

// A tree with every kind of value writePth handles.
function sampleTree(): { tree: Map<string, PthValue | StateDict>; tensors: Tensor[] } {
  const w = tensor(Float32Array.from({ length: 6 }, (_, i) => Math.fround(Math.exp(i) / 3)), [2, 3]);
  const half = tensor(new Uint16Array([0x3c00, 0xbc00, 0x7c00]), [3], { dtype: 'float16' });
  const bf = tensor(new Uint16Array([0x3f80, 0x4049]), [2, 1], { dtype: 'bfloat16' });
  const s = tensor([0.25], []);
  const empty = tensor(new Float32Array(0), [0, 2]);
  const special = tensor(new Float32Array([NaN, -Infinity, -0]), [3]);
  const sd: StateDict = [['w', w], ['ünï.b', half], ['s', s], ['empty', empty], ['tied', w]];
  const tree = new Map<string, PthValue | StateDict>([
    ['state_dict', sd],
    ['bf', bf],
    ['special', special],
    ['epoch', 5],
    ['lr', 0.5],
    ['big', 2n ** 70n],
    ['neg', -(2 ** 40)],
    ['name', 'ünïcødé'],
    ['flags', [true, false, null]],
    ['nested', { a: [1, 2.5, []], b: new Map<number, PthValue>([[1, 'one']]) }],
  ]);
  return { tree, tensors: [w, half, bf, s, empty, special] };
}

const describeInPython = `
import sys, json, torch
v = torch.load(sys.argv[1], weights_only=True)
def d(x):
    if isinstance(x, torch.Tensor):
        bits = x.contiguous().view(torch.int32 if x.dtype == torch.float32 else torch.int16).flatten().tolist()
        return {'tensor': str(x.dtype), 'shape': list(x.shape), 'bits': [b & (0xFFFFFFFF if x.dtype == torch.float32 else 0xFFFF) for b in bits], 'storage': x.untyped_storage().data_ptr() if x.numel() else 0}
    if isinstance(x, dict): return {type(x).__name__: [[d(k), d(i)] for k, i in x.items()]}
    if isinstance(x, (list, tuple)): return {type(x).__name__: [d(i) for i in x]}
    if isinstance(x, bool) or x is None or isinstance(x, str): return x
    if isinstance(x, int): return {'int': str(x)}
    if isinstance(x, float): return {'float': repr(x)}
    raise TypeError(type(x))
print(json.dumps(d(v)))
`;

for (const forceZip64 of [false, true]) {
  t.test(`writePth${forceZip64 ? ' (ZIP64 records)' : ''}: torch.load(weights_only=True) reads keys, types, dtypes and bits`, async (t) => {
    const { tree, tensors } = sampleTree();
    const p = join(dir, `ours${counter++}.pth`);
    writePth(p, tree, { forceZip64 });
    withFile(p, (f) => {
      const zip = ZipReader.open(f);
      t.same([...zip.entries.keys()], ['archive/data.pkl', 'archive/.format_version', 'archive/.storage_alignment', 'archive/byteorder', ...[0, 1, 2, 3, 4, 5].map((i) => `archive/data/${i}`), 'archive/version', 'archive/.data/serialization_id'], "torch's record layout (the tied tensor stored once)");
      t.ok([...zip.entries.values()].every((e) => e.dataOffset % 64 === 0), 'every record 64-byte aligned');
      t.equal(new TextDecoder().decode(zip.read('archive/byteorder')), 'little');
    });
    await t.test('torch.load(weights_only=True) reads them', { skip: pythonMissing('torch') }, async (t) => {
      const r = runPython(describeInPython, [p]);
      const f32 = (x: Tensor) => ({ tensor: 'torch.float32', shape: [...x.shape], bits: bitsOf(x.data()) });
      const raw = (x: Tensor, dtype: string) => ({ tensor: dtype, shape: [...x.shape], bits: [...x.rawData()] });
      const entries = r.dict as [unknown, any][];
      const get = (k: string) => entries.find(([key]) => key === k)![1];
      const sdEntries = get('state_dict').OrderedDict as [string, any][];
      t.same(sdEntries.map(([k]) => k), ['w', 'ünï.b', 's', 'empty', 'tied'], 'a state dict is an OrderedDict with its keys in order');
      const [w, half, bf, s, , special] = tensors;
      t.match(sdEntries[0][1], f32(w), 'float32 bits');
      t.match(sdEntries[1][1], raw(half, 'torch.float16'), 'float16 bits');
      t.match(sdEntries[2][1], f32(s), 'a 0-d tensor');
      t.match(sdEntries[3][1], { tensor: 'torch.float32', shape: [0, 2], bits: [] }, 'an empty tensor');
      t.equal(sdEntries[4][1].storage, sdEntries[0][1].storage, 'the same tensor twice shares one storage');
      t.match(get('bf'), raw(bf, 'torch.bfloat16'), 'bfloat16 bits');
      t.match(get('special'), f32(special), 'NaN, -inf, -0 bits');
      t.same(get('epoch'), { int: '5' });
      t.same(get('lr'), { float: '0.5' });
      t.same(get('big'), { int: String(2n ** 70n) });
      t.same(get('neg'), { int: String(-(2 ** 40)) });
      t.equal(get('name'), 'ünïcødé');
      t.same(get('flags'), { list: [true, false, null] });
      t.same(get('nested'), { dict: [['a', { list: [{ int: '1' }, { float: '2.5' }, { list: [] }] }], ['b', { dict: [[{ int: '1' }, 'one']] }]] });
    });
    const back = readPth(p) as Map<string, PthValue>;
    const sd = back.get('state_dict') as Map<string, Tensor>;
    t.same([...sd.keys()], ['w', 'ünï.b', 's', 'empty', 'tied'], 'and we read our own file back');
    t.equal(sd.get('tied'), sd.get('w'), 'a shared storage gives the same tensor');
    t.same(bitsOf(sd.get('w')!.data()), bitsOf(tensors[0].data()));
    t.same([...sd.get('ünï.b')!.data()], [1, -1, Infinity], 'float16 read as float32');
    t.same(back.get('nested'), new Map<string, unknown>([['a', [1, 2.5, []]], ['b', new Map([[1, 'one']])]]));
    dispose(back);
    dispose(tensors);
  });
}

t.test('writePth refuses what it cannot write, before touching the file', async (t) => {
  const gone = tensor([1], [1]);
  gone.dispose();
  const p = join(dir, 'refused.pth');
  t.throws(() => writePth(p, new Map([['x', gone]])), /was disposed/);
  t.throws(() => writePth(p, new Map([['x', new Set() as unknown as PthValue]])), /cannot pickle a Set/);
  t.notOk(existsSync(p));
});

// A .pth archive around a hand-made pickle and records (by name under archive/).
function pthFile(pkl: Uint8Array, records: Record<string, Uint8Array> = {}, byteorder = 'little'): string {
  const p = join(dir, `hostile${counter++}.pth`);
  writeFileAtomic(p, (sink) => {
    const zip = new ZipWriter(sink);
    zip.add('archive/data.pkl', pkl);
    if (byteorder) zip.add('archive/byteorder', new TextEncoder().encode(byteorder));
    for (const [name, data] of Object.entries(records)) zip.add(`archive/${name}`, data);
    zip.finish();
  });
  return p;
}

const G = (module: string, name: string) => new PyGlobal(module, name);
const storage = (key: string, numel: number, type = 'FloatStorage') => new PyPersistent(new PyTuple(['storage', G('torch', type), key, 'cpu', numel]));
const rebuild = (st: PyPersistent, offset: number, size: number[], stride: number[], hooks = new PyCall(G('collections', 'OrderedDict'), [])) =>
  new PyCall(G('torch._utils', '_rebuild_tensor_v2'), [st, offset, new PyTuple(size), new PyTuple(stride), false, hooks]);
const floats = (n: number) => new Uint8Array(new Float32Array(n).buffer);

t.test('hostile and damaged .pth files: a clear error each, nothing run, nothing leaked', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const marker = join(dir, 'pwned');
  const good = readFileSync(join(fixtures, 'checkpoint.pth'));
  const raw = (name: string, bytes: Uint8Array | string) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const notTorch = join(dir, 'notes.pth');
  writeFileAtomic(notTorch, (sink) => {
    const zip = new ZipWriter(sink);
    zip.add('notes/readme.txt', new TextEncoder().encode('hi'));
    zip.finish();
  });
  const dict = (v: unknown) => pickle(new Map([['x', v]]) as unknown as PthValue);
  const cases: [string, string, RegExp][] = [
    ['a zero-byte file', raw('zero.pth', ''), /the file is empty/],
    ['a truncated checkpoint', raw('half.pth', good.subarray(0, good.length >> 1)), /no end-of-central-directory record: the archive is truncated/],
    ['a checkpoint missing its last byte', raw('short.pth', good.subarray(0, good.length - 1)), /no end-of-central-directory record/],
    ['wrong magic (a text file)', raw('text.pth', 'hello, this is not a checkpoint at all'), /not a zip archive \(it starts with 0x68 0x65 0x6c 0x6c\)/],
    ['a legacy (pre-1.6) torch.save stream', raw('legacy.pth', Buffer.from([0x80, 0x02, 0x8a, 0x0a])), /legacy torch\.save file .* is not supported/],
    ['a zip that is not a torch archive', notTorch, /no <name>\/data\.pkl record/],
    ['os.system', pthFile(pickle(new PyCall(G('os', 'system'), [`touch ${marker}`]))), /data\.pkl: refused global 'os\.system'.*\(at byte 2\)/],
    ['builtins.eval', pthFile(pickle(new PyCall(G('builtins', 'eval'), ['__import__("os")']))), /refused global 'builtins\.eval'/],
    ['a global torch itself allows but a state dict does not need', pthFile(pickle(new PyCall(G('torch._utils', '_rebuild_device_tensor_from_numpy'), []))), /refused global 'torch\._utils\._rebuild_device_tensor_from_numpy'/],
    ['a float64 storage', pthFile(dict(rebuild(storage('0', 1, 'DoubleStorage'), 0, [1], [1])), { 'data/0': new Uint8Array(8) }), /refused global 'torch\.DoubleStorage'/],
    ['an unknown opcode', pthFile(Uint8Array.from([0x80, 2, 0xfe])), /unsupported pickle opcode 0xfe/],
    ['a storage offset + size beyond the storage', pthFile(dict(rebuild(storage('0', 4), 2, [4], [1])), { 'data/0': floats(4) }), /size \[4\], stride \[1\] at offset 2 reaches past the end of storage '0' \(4 elements\)/],
    ['a stride beyond the storage', pthFile(dict(rebuild(storage('0', 4), 0, [2], [2 ** 52])), { 'data/0': floats(4) }), /reaches past the end of storage '0'/],
    ['a shape that overflows', pthFile(dict(rebuild(storage('0', 4), 0, [2 ** 40, 2 ** 40, 2 ** 40], [1, 1, 1])), { 'data/0': floats(4) }), /has more elements than its storage '0' \(4\)/],
    ['an expanded (stride 0) view', pthFile(dict(rebuild(storage('0', 1), 0, [1000], [0])), { 'data/0': floats(1) }), /overlapping \(expanded\) views are not supported/],
    ['a storage larger than its record', pthFile(dict(rebuild(storage('0', 1000), 0, [4], [1])), { 'data/0': floats(4) }), /storage '0' should hold 1000 elements of 4 bytes, but its record has 16 bytes/],
    ['a storage without a record', pthFile(dict(rebuild(storage('7', 4), 0, [4], [1]))), /storage '7' has no record archive\/data\/7/],
    ['a storage described twice differently', pthFile(pickle([rebuild(storage('0', 4), 0, [4], [1]), rebuild(storage('0', 2, 'HalfStorage'), 0, [2], [1])]), { 'data/0': floats(4) }), /storage '0' is described twice, differently/],
    ['a malformed persistent id', pthFile(dict(new PyPersistent(new PyTuple(['storage', 'FloatStorage', '0', 'cpu', 4])))), /a str is not a supported storage type/],
    ['a storage key with a path in it', pthFile(dict(rebuild(storage('../0', 4), 0, [4], [1]))), /invalid storage key/],
    ['a bare storage', pthFile(dict(storage('0', 4)), { 'data/0': floats(4) }), /the checkpoint\["x"\] is a bare storage/],
    ['backward hooks', pthFile(dict(rebuild(storage('0', 4), 0, [4], [1], new PyCall(G('collections', 'OrderedDict'), [], [[0, 1]]))), { 'data/0': floats(4) }), /backward hooks are not supported/],
    ['big-endian data', pthFile(dict(1), {}, 'big'), /byte order 'big' is not supported/],
    ['an int64 counter beyond float32', pthFile(dict(rebuild(storage('0', 1, 'LongStorage'), 0, [], [])), { 'data/0': new Uint8Array(BigInt64Array.from([2n ** 24n + 1n]).buffer) }), /the checkpoint\["x"\]: int64 value 16777217 \(element 0\) has no exact float32 equal/],
  ];
  for (const [what, p, message] of cases) t.throws(() => readPth(p), { message }, what);
  t.notOk(existsSync(marker), 'nothing was executed');
  t.equal(addon.memoryStats('cpu').inUse, before, 'no tensor leaked');
  const tree = readPth(join(fixtures, 'dtypes.pth'));
  t.ok(flat(tree).size > 10, 'a good file still reads afterwards');
  dispose(tree);
});
