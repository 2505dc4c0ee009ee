// The restricted unpickler and the pickler: values round-trip, Python reads what we write and we read
// what Python writes (when python3 is installed), and every kind of hostile or malformed pickle is a
// PickleError naming what was refused, never code execution or a crash.
import t from 'tap';
import { GlobalRef, PyCall, PyGlobal, pickle, unpickle, type GlobalHandler, type UnpickleOptions } from '../../lib/io/pickle.ts';
import { pythonMissing, runPython } from './python.ts';

const globals = new Map<string, GlobalHandler>([
  ['collections.OrderedDict', { call: () => new Map() }],
  ['argparse.Namespace', { construct: () => ({}) }],
]);
const opts: UnpickleOptions = { globals, persistentLoad: (pid) => ({ pid }), source: 'test.pkl' };

// Bytes from strings (each char one byte) and byte arrays.
function bytes(...parts: (string | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

// level 0 is [], level k the pair (level k-1, level k-1), memoised: 2^levels values once expanded.
function laughs(levels: number): Uint8Array {
  const parts: (string | number[])[] = [[0x80, 2], ']', 'q', [0]];
  for (let k = 1; k <= levels; k++) parts.push('h', [k - 1], [0x86], 'q', [k]);
  parts.push('.');
  return bytes(...parts);
}

const load = (b: Uint8Array, o: Partial<UnpickleOptions> = {}): unknown => unpickle(b, { ...opts, ...o });

const sample = new Map<string | number, unknown>([
  ['ints', [0, 1, 255, 256, 65535, 65536, -1, -256, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1)]],
  ['bigints', [2n ** 64n, -(2n ** 64n), 2n ** 63n - 1n, 2n ** 200n]],
  ['floats', [0.5, -1e-300, 1e300, 3.4e38, 0.1, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity]],
  ['text', ['', 'ascii', 'ünïcødé ✓ 𝄞', 'line\nbreak']],
  ['flags', [true, false, null]],
  [7, new Map<string, unknown>([['nested', [[1, [2, [3]]], new Map([['deep', 'er']])]]])],
  ['empty', [[], new Map()]],
]);

t.test('values survive pickle -> unpickle', async (t) => {
  const back = load(pickle(sample));
  t.same(back, sample);
  const nan = load(pickle([NaN])) as number[];
  t.ok(Number.isNaN(nan[0]), 'NaN');
  t.equal(load(pickle(2 ** 53 + 2)), 2 ** 53 + 2, 'an integer past 2^53 is written as a float, and reads back equal');
});

t.test('opcodes torch does not write but the format allows: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, SETITEM, APPEND', async (t) => {
  const p = bytes(
    [0x80, 4, 0x95, 40, 0, 0, 0, 0, 0, 0, 0],
    '}', [0x94],
    [0x8c, 1], 'k]', [0x94], 'K', [5], 'as',
    [0x8c, 1], 'eh', [1], 's',
    [0x8c, 1], 'd', [0x8c, 11], 'collections', [0x8c, 11], 'OrderedDict', [0x93], ')Rs',
    '.',
  );
  const v = load(p) as Map<string, unknown>;
  t.same(v, new Map<string, unknown>([['k', [5]], ['e', [5]], ['d', new Map()]]));
  t.equal(v.get('k'), v.get('e'), 'a memo reference gives the same (shared) list');
});

t.test('objects: NEWOBJ + BUILD gives a plain object of attributes; BUILD on an OrderedDict keeps only its items', async (t) => {
  const ns = bytes([0x80, 2], 'cargparse\nNamespace\n)', [0x81], '}(X', [2, 0, 0, 0], 'lrG', [0x3f, 0x50, 0x62, 0x4d, 0xd2, 0xf1, 0xa9, 0xfc], 'X', [9, 0, 0, 0], '__proto__K', [1], 'ub.');
  const v = load(ns) as Record<string, unknown>;
  t.equal(v.lr, 0.001);
  t.ok(Object.hasOwn(v, '__proto__'), "an attribute called '__proto__' is an ordinary attribute");
  t.equal(Object.getPrototypeOf(v), Object.prototype, 'and does not change the prototype');
  const od = bytes([0x80, 2], 'ccollections\nOrderedDict\n)R(X', [1, 0, 0, 0], 'aK', [1], 'u}(X', [9, 0, 0, 0], '_metadata}ub.');
  t.same(load(od), new Map([['a', 1]]));
});

t.test('Python reads what we write and we read what Python writes', { skip: pythonMissing('pickle') }, async (t) => {
  const script = `
import pickle, sys, json, math
data = bytes.fromhex(sys.argv[1])
v = pickle.loads(data)
def plain(x):
    if isinstance(x, dict): return [[plain(k), plain(v)] for k, v in x.items()]
    if isinstance(x, (list, tuple)): return [plain(i) for i in x]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**53: return {'big': str(x)}
    if isinstance(x, float) and math.isinf(x): return {'inf': x > 0}
    return x
theirs = {'s': 'ünïcødé', 'i': [1, -2, 2**40, -(2**70)], 'f': 0.1, 'l': [None, True, False, (1, 2)], 5: {'x': {}}}
print(json.dumps({'ours': plain(v), 'theirs': pickle.dumps(theirs, protocol=2).hex()}))
`;
  const hex = Buffer.from(pickle(sample)).toString('hex');
  const r = runPython(script, [hex]);
  const plain = (x: unknown): unknown => {
    if (x instanceof Map) return [...x].map(([k, v]) => [plain(k), plain(v)]);
    if (Array.isArray(x)) return x.map(plain);
    if (typeof x === 'bigint') return { big: String(x) };
    if (x === Infinity || x === -Infinity) return { inf: x > 0 };
    return x;
  };
  t.same(r.ours, plain(sample), 'pickle.loads gives the same values');
  const theirs = load(Uint8Array.from(Buffer.from(r.theirs, 'hex')));
  t.same(theirs, new Map<unknown, unknown>([['s', 'ünïcødé'], ['i', [1, -2, 2 ** 40, -(2n ** 70n)]], ['f', 0.1], ['l', [null, true, false, [1, 2]]], [5, new Map([['x', new Map()]])]]));
});

t.test('hostile pickles are refused with a clear error and nothing runs', async (t) => {
  const refused: [string, Uint8Array, RegExp][] = [
    ['os.system via GLOBAL', bytes([0x80, 2], 'cos\nsystem\nX', [4, 0, 0, 0], 'echo', [0x85], 'R.'), /refused global 'os\.system'/],
    ['posix.system (what pickling os.system writes on Linux)', bytes([0x80, 2], 'cposix\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.'), /refused global 'posix\.system'/],
    ['builtins.eval', bytes([0x80, 2], 'cbuiltins\neval\nX', [1, 0, 0, 0], '1', [0x85], 'R.'), /refused global 'builtins\.eval'/],
    ['builtins.getattr via STACK_GLOBAL', bytes([0x80, 4, 0x8c, 8], 'builtins', [0x8c, 7], 'getattr', [0x93], '.'), /refused global 'builtins\.getattr'/],
    ['subprocess.Popen', bytes([0x80, 2], 'csubprocess\nPopen\n.'), /refused global 'subprocess\.Popen'/],
    ['a global whose name never ends', bytes([0x80, 2], 'cos\n', 'x'.repeat(300)), /not terminated/],
    ['INST (protocol 0 object creation)', bytes('(ios\nsystem\n.'), /unsupported pickle opcode 0x69 \('i'\)/],
    ['OBJ', bytes('(o.'), /unsupported pickle opcode 0x6f/],
    ['an opcode that does not exist', bytes([0x80, 2, 0xff]), /unsupported pickle opcode 0xff/],
    ['protocol 6', bytes([0x80, 6], 'N.'), /protocol 6 is not supported/],
    ['truncated (no STOP)', bytes([0x80, 2], ']K', [1]), /truncated/],
    ['truncated inside an argument', bytes([0x80, 2], 'X', [10, 0, 0, 0], 'abc'), /truncated/],
    ['empty input', new Uint8Array(0), /truncated/],
    ['stack underflow', bytes([0x80, 2], 'a.'), /stack underflow/],
    ['popping below a MARK', bytes([0x80, 2], ']', '(', 'a.'), /stack underflow/],
    ['TUPLE without MARK', bytes([0x80, 2], 't.'), /no MARK/],
    ['memo read before write', bytes([0x80, 2], 'h', [3], '.'), /memo entry 3/],
    ['a cycle', bytes([0x80, 2], ']q', [0], 'h', [0], 'a.'), /cyclic/],
    ['nesting 1000 lists deep', bytes([0x80, 2], ']'.repeat(1000), 'a'.repeat(999), '.'), /nested deeper than 100/],
    ['a billion laughs: each level refers to the previous twice', laughs(60), /shared references expand the result to more than 10000000 values/],
    ['invalid UTF-8', bytes([0x80, 2], 'X', [2, 0, 0, 0], [0xc3, 0x28], '.'), /not valid UTF-8/],
    ['SETITEM on a list', bytes([0x80, 2], ']K', [1], 'K', [2], 's.'), /SETITEM on a list or tuple/],
    ['a list as a dict key', bytes([0x80, 2], '}]K', [1], 's.'), /dict key of type a list or tuple/],
    ['REDUCE on data', bytes([0x80, 2], 'K', [1], ')R.'), /REDUCE applies to a number/],
    ['calling a class that is only constructible', bytes([0x80, 2], 'cargparse\nNamespace\n)R.'), /'argparse\.Namespace' cannot be called/],
    ['BUILD on a list', bytes([0x80, 2], ']}b.'), /BUILD with a dict on a list or tuple/],
    ['a bare global as a value', bytes([0x80, 2], 'ccollections\nOrderedDict\n.'), /'collections\.OrderedDict' appears as a value/],
    ['two values at STOP', bytes([0x80, 2], 'NN.'), /STOP with 2 values/],
  ];
  for (const [what, p, message] of refused) {
    t.throws(() => load(p), { name: 'PickleError', message }, what);
    t.throws(() => load(p), { message: /^test\.pkl: / }, `${what}: the message names the pickle`);
  }
});

t.test('handler errors are reported with the global and position', async (t) => {
  const failing = new Map<string, GlobalHandler>([['m.f', { call: () => { throw new Error('boom'); } }]]);
  t.throws(() => load(bytes([0x80, 2], 'cm\nf\n)R.'), { globals: failing }), /test\.pkl: m\.f: boom \(at byte 8\)/);
});

t.test('the pickler refuses what it cannot write', async (t) => {
  t.throws(() => pickle(new Set([1])), /cannot pickle a Set/);
  t.throws(() => pickle(new Map([[[1], 2]])), /dict key/);
  const loop: unknown[] = [];
  loop.push(loop);
  t.throws(() => pickle(loop), /nested deeper than 100 levels \(or cyclic\)/);
  t.throws(() => pickle(undefined), /cannot pickle nothing/);
  // The writer's building blocks name globals only when asked to; reading them back needs them allowed.
  const call = pickle(new PyCall(new PyGlobal('collections', 'OrderedDict'), [], [['a', 1]]));
  t.same(load(call), new Map([['a', 1]]));
  t.ok(GlobalRef, 'GlobalRef is exported for handlers that receive globals as arguments');
});
