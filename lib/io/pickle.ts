// Python pickles without Python: a restricted unpickler and a small pickler, enough for the pickles
// torch.save writes for state dicts and training checkpoints (protocol 2).
//
// The unpickler never runs anything. A pickle can only name a global ("module.name") that the caller
// allows, and each allowed global is a plain TypeScript handler that builds a value from already
// validated arguments; any other global, any opcode outside the set below, and any malformed structure
// (stack underflow, a missing MARK, a dangling memo reference, a cycle, absurd nesting) is an error
// naming what was refused and where. Every opcode consumes at least one byte, so the work and memory
// spent are bounded by the pickle's size.

// Dict keys: what a state dict or an optimizer state uses (strings, integers), plus the other hashable
// scalars.
export type PyKey = string | number | bigint | boolean | null;
// A Python value: None/bool/int/float/str; a list or tuple (both as arrays); a dict (a Map, which keeps
// key order and key types); an object's attributes (argparse.Namespace) as a plain object; or a leaf
// built by a handler (a tensor).
export type PyValue<Leaf = never> = PyKey | PyValue<Leaf>[] | Map<PyKey, PyValue<Leaf>> | { [attribute: string]: PyValue<Leaf> } | Leaf;

// A global allowed in a pickle. call: what REDUCE does with it (a function applied to a tuple);
// construct: what NEWOBJ does (cls.__new__(cls, *args)); attributes then arrive through BUILD.
export interface GlobalHandler {
  call?(args: unknown[]): unknown;
  construct?(args: unknown[]): unknown;
}

export interface UnpickleOptions {
  // "module.name" -> handler.
  globals: ReadonlyMap<string, GlobalHandler>;
  // BINPERSID: the object a persistent id stands for (torch: a storage in another zip record).
  persistentLoad(pid: unknown): unknown;
  // Names the pickle in error messages.
  source: string;
  // Deepest allowed nesting of containers.
  maxDepth?: number;
}

export class PickleError extends Error {
  readonly code = 'ERR_DINO_BAD_FILE';
  override name = 'PickleError';
}

// A global as it sits on the unpickler's stack until REDUCE or NEWOBJ uses it. It never ends up in the
// result: a bare class or function is not data.
export class GlobalRef {
  constructor(readonly qualifiedName: string, readonly handler: GlobalHandler) {}
}

const OP = {
  PROTO: 0x80,
  FRAME: 0x95,
  STOP: 0x2e, // .
  MARK: 0x28, // (
  EMPTY_DICT: 0x7d, // }
  EMPTY_LIST: 0x5d, // ]
  EMPTY_TUPLE: 0x29, // )
  BINUNICODE: 0x58, // X
  SHORT_BINUNICODE: 0x8c,
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  LONG1: 0x8a,
  BINFLOAT: 0x47, // G
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  NONE: 0x4e, // N
  TUPLE: 0x74, // t
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  SETITEM: 0x73, // s
  SETITEMS: 0x75, // u
  APPEND: 0x61, // a
  APPENDS: 0x65, // e
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  MEMOIZE: 0x94,
  BINGET: 0x68, // h
  LONG_BINGET: 0x6a, // j
  GLOBAL: 0x63, // c
  STACK_GLOBAL: 0x93,
  REDUCE: 0x52, // R
  BUILD: 0x62, // b
  NEWOBJ: 0x81,
  BINPERSID: 0x51, // Q
} as const;

const HIGHEST_PROTOCOL = 5;
// Module and attribute names in GLOBAL are lines; real ones are short.
const MAX_GLOBAL_LINE = 256;
const DEFAULT_MAX_DEPTH = 100;
// Values in the result counting shared subtrees once per appearance (or one per pickle byte, if more):
// without sharing a result holds at most one value per byte, so only memo references reach this.
const MAX_EXPANDED_VALUES = 10_000_000;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  // Stack heights at each open MARK.
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let opAt = 0;

  const fail = (message: string): never => {
    throw new PickleError(`${opts.source}: ${message} (at byte ${opAt})`);
  };
  const need = (n: number): number => {
    if (pos + n > bytes.length) fail('the pickle is truncated');
    const at = pos;
    pos += n;
    return at;
  };
  const frameStart = (): number => (marks.length > 0 ? marks[marks.length - 1] : 0);
  const pop = (): unknown => {
    if (stack.length <= frameStart()) fail('stack underflow: the pickle is malformed');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length <= frameStart()) fail('stack underflow: the pickle is malformed');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const at = marks.pop();
    if (at === undefined) fail('no MARK to close: the pickle is malformed');
    return stack.splice(at!);
  };
  const text = (n: number): string => {
    const at = need(n);
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > MAX_GLOBAL_LINE) fail('a GLOBAL name is not terminated');
    return text(end - pos + 1).slice(0, -1);
  };
  const resolve = (module: string, name: string): GlobalRef => {
    const qualified = `${module}.${name}`;
    const handler = opts.globals.get(qualified);
    if (handler === undefined) fail(`refused global '${qualified}': only ${[...opts.globals.keys()].join(', ')} may appear here`);
    return new GlobalRef(qualified, handler!);
  };
  const asArray = (v: unknown, what: string): unknown[] => {
    if (!Array.isArray(v)) fail(`${what} must be a tuple, got ${describe(v)}`);
    return v as unknown[];
  };
  const asGlobal = (v: unknown, what: string): GlobalRef => {
    if (!(v instanceof GlobalRef)) fail(`${what} applies to ${describe(v)}, which is not an allowed global`);
    return v as GlobalRef;
  };
  // Handlers throw plain errors about their arguments; this adds where in which pickle.
  const guard = (what: string, fn: () => unknown): unknown => {
    try {
      return fn();
    } catch (e) {
      return fail(`${what}: ${(e as Error).message}`);
    }
  };
  const setItem = (dict: unknown, key: unknown, value: unknown): void => {
    if (!(dict instanceof Map)) fail(`SETITEM on ${describe(dict)}, not a dict`);
    if (!isKey(key)) fail(`a dict key of type ${describe(key)} is not supported`);
    (dict as Map<PyKey, unknown>).set(key as PyKey, value);
  };
  const appendTo = (list: unknown, items: unknown[]): void => {
    if (!Array.isArray(list)) fail(`APPEND on ${describe(list)}, not a list`);
    for (const v of items) (list as unknown[]).push(v);
  };

  for (;;) {
    opAt = pos;
    const op = bytes[need(1)];
    switch (op) {
      case OP.PROTO: {
        const v = bytes[need(1)];
        if (v > HIGHEST_PROTOCOL) fail(`pickle protocol ${v} is not supported`);
        break;
      }
      case OP.FRAME:
        need(8);
        break;
      case OP.STOP: {
        if (marks.length > 0 || stack.length !== 1) fail(`STOP with ${stack.length} values on the stack and ${marks.length} open MARKs: the pickle is malformed`);
        const result = stack[0];
        checkTree(result, opts.maxDepth ?? DEFAULT_MAX_DEPTH, Math.max(MAX_EXPANDED_VALUES, bytes.length), fail);
        return result;
      }
      case OP.MARK:
        marks.push(stack.length);
        break;
      case OP.EMPTY_DICT:
        stack.push(new Map());
        break;
      case OP.EMPTY_LIST:
      case OP.EMPTY_TUPLE:
        stack.push([]);
        break;
      case OP.BINUNICODE:
        stack.push(text(view.getUint32(need(4), true)));
        break;
      case OP.SHORT_BINUNICODE:
        stack.push(text(bytes[need(1)]));
        break;
      case OP.BININT:
        stack.push(view.getInt32(need(4), true));
        break;
      case OP.BININT1:
        stack.push(bytes[need(1)]);
        break;
      case OP.BININT2:
        stack.push(view.getUint16(need(2), true));
        break;
      case OP.LONG1: {
        const n = bytes[need(1)];
        stack.push(decodeLong(bytes.subarray(need(n), pos)));
        break;
      }
      case OP.BINFLOAT:
        stack.push(view.getFloat64(need(8), false));
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.NONE:
        stack.push(null);
        break;
      case OP.TUPLE:
        stack.push(popMark());
        break;
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const items: unknown[] = [];
        for (let n = op - OP.TUPLE1 + 1; n > 0; n--) items.unshift(pop());
        stack.push(items);
        break;
      }
      case OP.SETITEM: {
        const value = pop();
        const key = pop();
        setItem(top(), key, value);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        if (items.length % 2 !== 0) fail('SETITEMS with an odd number of values');
        const dict = top();
        for (let i = 0; i < items.length; i += 2) setItem(dict, items[i], items[i + 1]);
        break;
      }
      case OP.APPEND: {
        const value = pop();
        appendTo(top(), [value]);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        appendTo(top(), items);
        break;
      }
      case OP.BINPUT:
        memo.set(bytes[need(1)], top());
        break;
      case OP.LONG_BINPUT:
        memo.set(view.getUint32(need(4), true), top());
        break;
      case OP.MEMOIZE:
        memo.set(memo.size, top());
        break;
      case OP.BINGET:
      case OP.LONG_BINGET: {
        const i = op === OP.BINGET ? bytes[need(1)] : view.getUint32(need(4), true);
        if (!memo.has(i)) fail(`memo entry ${i} is read before it is written`);
        stack.push(memo.get(i));
        break;
      }
      case OP.GLOBAL: {
        const module = line();
        stack.push(resolve(module, line()));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolve(module as string, name as string));
        break;
      }
      case OP.REDUCE: {
        const args = asArray(pop(), 'REDUCE arguments');
        const g = asGlobal(pop(), 'REDUCE');
        if (g.handler.call === undefined) fail(`'${g.qualifiedName}' cannot be called`);
        stack.push(guard(g.qualifiedName, () => g.handler.call!(args)));
        break;
      }
      case OP.NEWOBJ: {
        const args = asArray(pop(), 'NEWOBJ arguments');
        const g = asGlobal(pop(), 'NEWOBJ');
        if (g.handler.construct === undefined) fail(`'${g.qualifiedName}' cannot be instantiated`);
        stack.push(guard(g.qualifiedName, () => g.handler.construct!(args)));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        build(top(), state, fail);
        break;
      }
      case OP.BINPERSID: {
        const pid = pop();
        stack.push(guard('persistent id', () => opts.persistentLoad(pid)));
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}${op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : ''}`);
    }
  }
}

function isKey(v: unknown): v is PyKey {
  return v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v);
}

function isAttributes(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;
}

// An object's attributes are set as own properties (defineProperty: a key such as '__proto__' stays an
// ordinary attribute). A dict's state (an OrderedDict's `_metadata`, the module versions of a state
// dict) is dropped: the items are the data.
function build(target: unknown, state: unknown, fail: (m: string) => never): void {
  if (target instanceof Map && (state === null || state instanceof Map)) return;
  if (isAttributes(target) && state instanceof Map) {
    for (const [k, v] of state) {
      if (typeof k !== 'string') fail(`an attribute name must be a string, got ${describe(k)}`);
      Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    return;
  }
  fail(`BUILD with ${describe(state)} on ${describe(target)} is not supported`);
}

// Python's LONG1: little-endian two's complement.
function decodeLong(b: Uint8Array): number | bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
  if (typeof v === 'string') return 'a str';
  if (Array.isArray(v)) return 'a list or tuple';
  if (v instanceof Map) return 'a dict';
  if (v instanceof GlobalRef) return `the global '${v.qualifiedName}'`;
  if (isAttributes(v)) return 'an object';
  return `a ${(v as object).constructor?.name ?? 'value'}`;
}

function childrenOf(v: object): unknown[] {
  if (Array.isArray(v)) return v;
  if (v instanceof Map) return [...v.values()];
  return Object.values(v);
}

// The result must be a tree (shared subtrees are fine, cycles are not) of bounded depth holding no bare
// globals, whose size, counting a shared subtree at each place it appears, stays bounded (memo
// references can double it at every level: "billion laughs"), so that later walks over it, recursive
// or not, are safe. Iterative, so hostile nesting cannot overflow the call stack here.
function checkTree(root: unknown, maxDepth: number, maxValues: number, fail: (m: string) => never): void {
  const size = new Map<object, number>();
  const onPath = new Set<object>();
  const frames: { node: object; children: unknown[]; next: number; size: number }[] = [];
  // A leaf or an already measured container adds its size to the parent; a new container is entered.
  const visit = (v: unknown): void => {
    if (v instanceof GlobalRef) fail(`the global '${v.qualifiedName}' appears as a value; only data can be loaded`);
    const known = v !== null && typeof v === 'object' ? size.get(v) : undefined;
    if (!(Array.isArray(v) || v instanceof Map || isAttributes(v)) || known !== undefined) {
      if (frames.length > 0) frames[frames.length - 1].size += known ?? 1;
      return;
    }
    if (onPath.has(v)) fail('the pickle builds a cyclic structure');
    if (frames.length >= maxDepth) fail(`containers are nested deeper than ${maxDepth} levels`);
    onPath.add(v);
    frames.push({ node: v, children: childrenOf(v), next: 0, size: 1 });
  };
  visit(root);
  while (frames.length > 0) {
    const f = frames[frames.length - 1];
    if (f.next < f.children.length) visit(f.children[f.next++]);
    else {
      if (f.size > maxValues) fail(`shared references expand the result to more than ${maxValues} values`);
      frames.pop();
      onPath.delete(f.node);
      size.set(f.node, f.size);
      if (frames.length > 0) frames[frames.length - 1].size += f.size;
    }
  }
}

// ---- Writing ----

// GLOBAL module.name (a class or function the loader imports).
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
}

// func(*args), then optional dict items set on the result (how an OrderedDict is pickled).
export class PyCall {
  constructor(readonly func: PyGlobal, readonly args: Picklable[], readonly items: [PyKey, Picklable][] = []) {}
}

// An object the loader fetches by persistent id (torch: a storage in its own zip record).
export class PyPersistent {
  constructor(readonly pid: Picklable) {}
}

export class PyTuple {
  constructor(readonly items: Picklable[]) {}
}

// What the pickler writes. Numbers that are safe integers become Python ints, other numbers floats;
// arrays become lists; Maps and plain objects become dicts.
export type Picklable = PyKey | Picklable[] | Map<PyKey, Picklable> | { [key: string]: Picklable } | PyGlobal | PyCall | PyPersistent | PyTuple;

class ByteBuilder {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // reserve() may replace the buffer, so it runs before the buffer is read.
  byte(...b: number[]): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }

  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }

  u16(v: number): void {
    const at = this.reserve(2);
    this.view.setUint16(at, v, true);
  }

  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }

  i32(v: number): void {
    const at = this.reserve(4);
    this.view.setInt32(at, v, true);
  }

  f64be(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, false);
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const encoder = new TextEncoder();

// A protocol-2 pickle of `value`, using only opcodes that torch.load(weights_only=True) accepts.
// `reduce` may replace an object (a tensor, a state dict) with what to write in its place.
export function pickle(value: unknown, reduce: (v: object) => Picklable | undefined = () => undefined, maxDepth = DEFAULT_MAX_DEPTH): Uint8Array {
  const out = new ByteBuilder();
  const str = (s: string): void => {
    const b = encoder.encode(s);
    out.byte(OP.BINUNICODE);
    out.u32(b.length);
    out.bytes(b);
  };
  const int = (v: bigint): void => {
    if (v >= 0n && v < 256n) out.byte(OP.BININT1, Number(v));
    else if (v >= 0n && v < 65536n) {
      out.byte(OP.BININT2);
      out.u16(Number(v));
    } else if (v >= -(2n ** 31n) && v < 2n ** 31n) {
      out.byte(OP.BININT);
      out.i32(Number(v));
    } else {
      const b = encodeLong(v);
      out.byte(OP.LONG1, b.length);
      out.bytes(b);
    }
  };
  const emit = (v: unknown, depth: number): void => {
    if (depth > maxDepth) throw new RangeError(`cannot pickle: nested deeper than ${maxDepth} levels (or cyclic)`);
    if (v !== null && typeof v === 'object') {
      const replaced = reduce(v);
      if (replaced !== undefined) return emit(replaced, depth);
    }
    if (v === null) out.byte(OP.NONE);
    else if (typeof v === 'boolean') out.byte(v ? OP.NEWTRUE : OP.NEWFALSE);
    else if (typeof v === 'bigint') int(v);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) int(BigInt(v));
      else {
        out.byte(OP.BINFLOAT);
        out.f64be(v);
      }
    } else if (typeof v === 'string') str(v);
    else if (v instanceof PyGlobal) {
      out.byte(OP.GLOBAL);
      out.bytes(encoder.encode(`${v.module}\n${v.name}\n`));
    } else if (v instanceof PyTuple) {
      const n = v.items.length;
      if (n === 0) return out.byte(OP.EMPTY_TUPLE);
      if (n > 3) out.byte(OP.MARK);
      for (const item of v.items) emit(item, depth + 1);
      out.byte(n > 3 ? OP.TUPLE : OP.TUPLE1 + n - 1);
    } else if (v instanceof PyCall) {
      emit(v.func, depth + 1);
      emit(new PyTuple(v.args), depth + 1);
      out.byte(OP.REDUCE);
      items(v.items, depth);
    } else if (v instanceof PyPersistent) {
      emit(v.pid, depth + 1);
      out.byte(OP.BINPERSID);
    } else if (Array.isArray(v)) {
      out.byte(OP.EMPTY_LIST);
      if (v.length === 0) return;
      out.byte(OP.MARK);
      for (const item of v) emit(item, depth + 1);
      out.byte(OP.APPENDS);
    } else if (v instanceof Map) {
      out.byte(OP.EMPTY_DICT);
      items([...v.entries()], depth);
    } else if (isAttributes(v)) {
      out.byte(OP.EMPTY_DICT);
      items(Object.entries(v), depth);
    } else {
      throw new TypeError(`cannot pickle ${describe(v)}`);
    }
  };
  const items = (entries: [unknown, unknown][], depth: number): void => {
    if (entries.length === 0) return;
    out.byte(OP.MARK);
    for (const [k, val] of entries) {
      if (!isKey(k)) throw new TypeError(`cannot pickle a dict key that is ${describe(k)}`);
      emit(k, depth + 1);
      emit(val, depth + 1);
    }
    out.byte(OP.SETITEMS);
  };
  out.byte(OP.PROTO, 2);
  emit(value, 0);
  out.byte(OP.STOP);
  return out.result();
}

// Minimal little-endian two's complement (the inverse of decodeLong).
function encodeLong(v: bigint): Uint8Array {
  const b: number[] = [];
  for (;;) {
    const byte = Number(v & 0xffn);
    b.push(byte);
    v >>= 8n;
    if ((v === 0n && !(byte & 0x80)) || (v === -1n && byte & 0x80)) break;
  }
  return Uint8Array.from(b);
}
