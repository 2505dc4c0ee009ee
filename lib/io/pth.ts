// PyTorch .pth files (torch.save since PyTorch 1.6) without Python and without running pickle code.
//
// The file is a zip archive: <name>/data.pkl holds a protocol-2 pickle of the object tree, in which each
// tensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) and each storage a
// persistent id ('storage', torch.FloatStorage, key, location, numel) whose bytes are the record
// <name>/data/<key>; <name>/byteorder says "little". The pickle is read by the restricted unpickler with
// only the globals a state dict or a DINO training checkpoint needs; everything is validated before the
// first tensor is made, and the memory used never exceeds what the file holds (a view may not have
// more elements than its storage).
//
// Tensors come back as float32 engine tensors: float16 and bfloat16 are converted exactly; int64 and
// int32 (BatchNorm's num_batches_tracked, an optimizer's step) become float32 when every value is an
// integer float32 holds exactly (up to 2^24 in magnitude, as such counters are) and are refused
// otherwise. The caller owns them: dispose(tree) frees every tensor of a tree.
import { randomBytes } from 'node:crypto';
import { Tensor } from '../engine/tensor.ts';
import { dispose } from '../engine/scope.ts';
import type { DType } from '../engine/native.ts';
import { FileFormatError, withFile, writeFileAtomic, type RandomAccessFile } from './file.ts';
import { ZipReader, ZipWriter } from './zip.ts';
import { GlobalRef, PyCall, PyGlobal, PyPersistent, PyTuple, describe, pickle, unpickle, type GlobalHandler, type Picklable, type PyValue } from './pickle.ts';
import { tensorFromBytes, type StoredDType } from './safetensors.ts';

// What readPth returns and writePth takes: Python values with engine tensors as leaves (dicts as Maps,
// lists and tuples as arrays, an argparse.Namespace as a plain object of its attributes).
export type PthValue = PyValue<Tensor>;
export type StateDict = [string, Tensor][];

const STORAGE_TYPES: Record<string, StoredDType> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
};
const ITEM_SIZE: Record<StoredDType, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
const STORAGE_FOR: Record<DType, string> = { float32: 'FloatStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage' };
// torch's current archive version record, and the alignment of record data.
const ARCHIVE_VERSION = '3\n';
const ALIGNMENT = 64;
const LEGACY_MAGIC = 0x80;

// A storage named by a persistent id; its bytes are read only after the whole pickle checks out.
class StorageRef {
  constructor(readonly key: string, readonly dtype: StoredDType, readonly numel: number) {}
}

class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function indexList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isIndex)) throw new Error(`${what} must be a tuple of non-negative integers, got ${describe(v)}`);
  return [...v];
}

function checkNoHooks(hooks: unknown): void {
  if (!(hooks instanceof Map) || hooks.size > 0) throw new Error('tensors with backward hooks are not supported');
}

function rebuildTensor(args: unknown[]): TensorRef {
  if (args.length !== 6 && args.length !== 7) throw new Error(`expected 6 or 7 arguments, got ${args.length}`);
  const [storage, offset, sizeArg, strideArg, requiresGrad, hooks, metadata] = args;
  if (!(storage instanceof StorageRef)) throw new Error(`the first argument must be a storage, got ${describe(storage)}`);
  if (!isIndex(offset)) throw new Error('the storage offset must be a non-negative integer');
  const shape = indexList(sizeArg, 'size');
  const stride = indexList(strideArg, 'stride');
  if (stride.length !== shape.length) throw new Error(`size [${shape}] and stride [${stride}] differ in length`);
  if (typeof requiresGrad !== 'boolean') throw new Error('requires_grad must be a bool');
  checkNoHooks(hooks);
  if (metadata !== undefined && metadata !== null && !(metadata instanceof Map && metadata.size === 0)) throw new Error('tensor metadata (conjugate/negative bits, ...) is not supported');
  // Count elements and the furthest element step by step, stopping as soon as either passes the
  // storage, so that a hostile size can neither overflow nor allocate.
  if (!shape.includes(0)) {
    let count = 1;
    let last = offset;
    for (let i = 0; i < shape.length; i++) {
      count *= shape[i];
      last += (shape[i] - 1) * stride[i];
      if (count > storage.numel) throw new Error(`a tensor of size [${shape}] has more elements than its storage '${storage.key}' (${storage.numel}); overlapping (expanded) views are not supported`);
      if (last >= storage.numel) break;
    }
    if (last >= storage.numel) throw new Error(`a tensor of size [${shape}], stride [${stride}] at offset ${offset} reaches past the end of storage '${storage.key}' (${storage.numel} elements)`);
  }
  return new TensorRef(storage, offset, shape, stride);
}

function torchGlobals(storages: Map<string, StorageRef>): { globals: Map<string, GlobalHandler>; persistentLoad(pid: unknown): StorageRef } {
  const globals = new Map<string, GlobalHandler>([
    ['collections.OrderedDict', {
      call(args) {
        if (args.length > 0) throw new Error('only OrderedDict() without arguments is supported');
        return new Map();
      },
    }],
    ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
    ['torch._utils._rebuild_parameter', {
      call(args) {
        if (args.length !== 3 || !(args[0] instanceof TensorRef) || typeof args[1] !== 'boolean') throw new Error('expected (tensor, requires_grad, backward_hooks)');
        checkNoHooks(args[2]);
        return args[0];
      },
    }],
    ['torch.Size', { call: (args) => indexList(args[0], 'torch.Size') }],
    // An argparse.Namespace is its attributes, which BUILD sets.
    ['argparse.Namespace', {
      construct(args) {
        if (args.length > 0) throw new Error('expected no arguments');
        return {};
      },
    }],
    // Storage classes only name a dtype inside a persistent id.
    ...Object.keys(STORAGE_TYPES).map((name): [string, GlobalHandler] => [name, {}]),
  ]);
  const persistentLoad = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new Error(`expected ('storage', type, key, location, numel), got ${describe(pid)}`);
    const [, type, key, location, numel] = pid;
    if (!(type instanceof GlobalRef) || !Object.hasOwn(STORAGE_TYPES, type.qualifiedName)) throw new Error(`${describe(type)} is not a supported storage type`);
    if (typeof key !== 'string' || !/^\w{1,64}$/.test(key)) throw new Error(`invalid storage key ${describe(key)}`);
    if (typeof location !== 'string') throw new Error('the storage location must be a str');
    if (!isIndex(numel)) throw new Error('the storage size must be a non-negative integer');
    const ref = new StorageRef(key, STORAGE_TYPES[type.qualifiedName], numel);
    const seen = storages.get(key);
    if (seen === undefined) storages.set(key, ref);
    else if (seen.dtype !== ref.dtype || seen.numel !== ref.numel) throw new Error(`storage '${key}' is described twice, differently`);
    return seen ?? ref;
  };
  return { globals, persistentLoad };
}

// The contiguous bytes of a (possibly strided) view of a storage. A contiguous view is a subarray, not a copy.
function gather(storage: Uint8Array, itemSize: number, ref: TensorRef): Uint8Array {
  const { shape, stride, offset } = ref;
  const n = shape.reduce((a, b) => a * b, 1);
  let expected = 1;
  let contiguous = true;
  for (let k = shape.length - 1; k >= 0; k--) {
    if (shape[k] !== 1 && stride[k] !== expected) contiguous = false;
    expected *= shape[k];
  }
  if (contiguous || n === 0) return storage.subarray(offset * itemSize, (offset + n) * itemSize);
  // Copy element by element in units of 16 or 32 bits (8-byte elements as two words, so no bit pattern
  // passes through a float).
  const words = itemSize === 2 ? 1 : itemSize / 4;
  const unit = itemSize === 2 ? 2 : 4;
  const view = (b: Uint8Array): Uint16Array | Uint32Array =>
    unit === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const src = view(storage);
  const out = new Uint8Array(n * itemSize);
  const dst = view(out);
  const index = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < words; w++) dst[i * words + w] = src[at * words + w];
    for (let k = shape.length - 1; k >= 0; k--) {
      at += stride[k];
      if (++index[k] < shape[k]) break;
      at -= stride[k] * shape[k];
      index[k] = 0;
    }
  }
  return out;
}

// The archive's record prefix: the folder holding data.pkl (torch names it after the file).
function archivePrefix(zip: ZipReader, file: RandomAccessFile): string {
  const found = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (found.length !== 1) throw file.error(found.length === 0 ? 'no <name>/data.pkl record: a zip archive, but not one written by torch.save' : 'more than one data.pkl record');
  return found[0].slice(0, -'data.pkl'.length);
}

// Reads a .pth file into a tree of Python values with float32 tensors (see the top of this file).
export function readPth(path: string): PthValue {
  return withFile(path, (file) => {
    if (file.size > 0 && file.read(0, 1, 'the signature')[0] === LEGACY_MAGIC) {
      throw file.error('a legacy torch.save file (PyTorch < 1.6, a bare pickle stream) is not supported: load it in PyTorch and save it again');
    }
    const zip = ZipReader.open(file);
    const prefix = archivePrefix(zip, file);
    if (zip.entries.has(prefix + 'byteorder')) {
      const order = new TextDecoder().decode(zip.read(prefix + 'byteorder'));
      if (order !== 'little') throw file.error(`byte order '${order.slice(0, 16)}' is not supported (only little-endian)`);
    }
    const storages = new Map<string, StorageRef>();
    const { globals, persistentLoad } = torchGlobals(storages);
    const tree = unpickle(zip.read(prefix + 'data.pkl'), { globals, persistentLoad, source: `${path}: data.pkl` });

    // Find every tensor (with the first place it appears, for messages) before reading any data.
    const refs = new Map<TensorRef, string>();
    const seen = new Set<unknown>();
    const collect = (v: unknown, where: string): void => {
      if (v === null || typeof v !== 'object' || seen.has(v)) return;
      seen.add(v);
      if (v instanceof TensorRef) refs.set(v, where);
      else if (v instanceof StorageRef) {
        throw file.error(`${where} is a bare storage; only tensors are supported`);
      } else if (Array.isArray(v)) v.forEach((x, i) => collect(x, `${where}[${i}]`));
      else if (v instanceof Map) for (const [k, x] of v) collect(x, `${where}[${JSON.stringify(typeof k === 'bigint' ? String(k) : k)}]`);
      else for (const [k, x] of Object.entries(v)) collect(x, `${where}.${k}`);
    };
    collect(tree, 'the checkpoint');
    for (const s of storages.values()) {
      const record = `${prefix}data/${s.key}`;
      const entry = zip.entries.get(record);
      if (entry === undefined) throw file.error(`storage '${s.key}' has no record ${record}`);
      if (entry.size !== s.numel * ITEM_SIZE[s.dtype]) throw file.error(`storage '${s.key}' should hold ${s.numel} elements of ${ITEM_SIZE[s.dtype]} bytes, but its record has ${entry.size} bytes`);
    }

    // Storage by storage, so that only one storage's bytes are held at a time.
    const viewsOf = new Map<StorageRef, TensorRef[]>();
    for (const r of refs.keys()) {
      if (!viewsOf.has(r.storage)) viewsOf.set(r.storage, []);
      viewsOf.get(r.storage)!.push(r);
    }
    const made = new Map<TensorRef, Tensor>();
    try {
      for (const [s, views] of viewsOf) {
        const bytes = zip.read(`${prefix}data/${s.key}`);
        // The same view pickled twice (a tensor saved under two names) is one tensor, as in PyTorch.
        const byView = new Map<string, Tensor>();
        for (const r of views) {
          const view = `${r.offset}:${r.shape}:${r.stride}`;
          if (!byView.has(view)) byView.set(view, tensorFromBytes(gather(bytes, ITEM_SIZE[s.dtype], r), s.dtype, r.shape, true, `${path}: ${refs.get(r)}`));
          made.set(r, byView.get(view)!);
        }
      }
    } catch (e) {
      dispose([...made.values()]);
      throw e;
    }
    return replaceRefs(tree, made, new Set()) as PthValue;
  });
}

// Puts the tensors in place of their references, in place (containers may be shared: each is done once).
function replaceRefs(v: unknown, made: Map<TensorRef, Tensor>, done: Set<unknown>): unknown {
  if (v instanceof TensorRef) return made.get(v);
  if (v === null || typeof v !== 'object' || done.has(v)) return v;
  done.add(v);
  if (Array.isArray(v)) v.forEach((x, i) => (v[i] = replaceRefs(x, made, done)));
  else if (v instanceof Map) for (const [k, x] of v) v.set(k, replaceRefs(x, made, done));
  else for (const [k, x] of Object.entries(v)) (v as Record<string, unknown>)[k] = replaceRefs(x, made, done);
  return v;
}

function isStateDict(v: unknown): v is StateDict {
  return Array.isArray(v) && v.length > 0 && v.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[1] instanceof Tensor);
}

export interface WritePthOptions {
  // Write ZIP64 records even when the file is small (for checking other readers).
  forceZip64?: boolean;
}

// Writes `value` as torch.save would, loadable with torch.load(path, weights_only=True): tensors
// (float32, float16, bfloat16; each its own storage, written once however often it appears), numbers
// (safe integers as int, others as float), strings, booleans, null (None), arrays (lists), Maps and
// plain objects (dicts), and state dicts given as [name, Tensor][] (OrderedDicts, as state_dict()
// returns). The file is replaced atomically.
export function writePth(path: string, value: PthValue | StateDict, opts: WritePthOptions = {}): void {
  const storages = new Map<Tensor, string>();
  const tensorNode = (t: Tensor): Picklable => {
    let key = storages.get(t);
    if (key === undefined) {
      if (t.isDisposed) throw new Error(`cannot save ${t}: it was disposed`);
      key = String(storages.size);
      storages.set(t, key);
    }
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const storage = new PyPersistent(new PyTuple(['storage', new PyGlobal('torch', STORAGE_FOR[t.dtype]), key, 'cpu', t.size]));
    return new PyCall(new PyGlobal('torch._utils', '_rebuild_tensor_v2'), [storage, 0, new PyTuple([...t.shape]), new PyTuple(stride), false, orderedDict([])]);
  };
  const data = pickle(value, (v) => {
    if (v instanceof Tensor) return tensorNode(v);
    if (isStateDict(v)) return orderedDict(v);
    return undefined;
  });
  const serializationId = Array.from(randomBytes(40), (b) => b % 10).join('');
  writeFileAtomic(path, (sink) => {
    const zip = new ZipWriter(sink, { alignment: ALIGNMENT, forceZip64: opts.forceZip64 });
    const text = (s: string): Uint8Array => new TextEncoder().encode(s);
    zip.add('archive/data.pkl', data);
    zip.add('archive/.format_version', text('1'));
    zip.add('archive/.storage_alignment', text(String(ALIGNMENT)));
    zip.add('archive/byteorder', text('little'));
    for (const [t, key] of storages) {
      const values = t.dtype === 'float32' ? t.data() : t.rawData();
      zip.add(`archive/data/${key}`, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    zip.add('archive/version', text(ARCHIVE_VERSION));
    zip.add('archive/.data/serialization_id', text(serializationId));
    zip.finish();
  });
}

function orderedDict(entries: [string, Picklable | Tensor][]): PyCall {
  return new PyCall(new PyGlobal('collections', 'OrderedDict'), [], entries as [string, Picklable][]);
}

// A Map of tensors keyed by strings (a state dict) as [name, Tensor][]; anything else is an error
// naming `what`.
export function stateDictEntries(v: PthValue | undefined, what: string): StateDict {
  if (!(v instanceof Map)) throw new FileFormatError(`${what} is not a state dict (it is ${describe(v)})`);
  const out: StateDict = [];
  for (const [k, t] of v) {
    if (typeof k !== 'string' || !(t instanceof Tensor)) throw new FileFormatError(`${what} is not a state dict: its entry ${JSON.stringify(String(k))} is ${describe(t)}`);
    out.push([k, t]);
  }
  return out;
}

function stripPrefix(name: string, prefix: string): string {
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

// The backbone's state dict, keyed as a bare ViT's (`cls_token`, `blocks.0.attn.qkv.weight`, ...), from
// either a full DINO training checkpoint (its `teacher` or `student`) or released backbone-only
// weights, the way the official evaluation code loads them: take checkpoint[checkpointKey] when the
// file has that key, strip `module.` and then `backbone.`. (The official code then loads non-strictly,
// ignoring the head; here the head's entries are left out.) The tensors are the tree's own.
export function backboneStateDict(tree: PthValue, checkpointKey: 'teacher' | 'student' = 'teacher'): StateDict {
  const chosen = tree instanceof Map && tree.has(checkpointKey);
  const entries = stateDictEntries(chosen ? (tree as Map<string, PthValue>).get(checkpointKey) : tree, chosen ? `'${checkpointKey}'` : 'the file');
  const unwrapped = entries.map(([k, t]): [string, Tensor] => [stripPrefix(k, 'module.'), t]);
  if (!unwrapped.some(([k]) => k.startsWith('backbone.'))) return unwrapped;
  return unwrapped.filter(([k]) => k.startsWith('backbone.')).map(([k, t]) => [stripPrefix(k, 'backbone.'), t]);
}

// Reads just the backbone from a .pth file (see backboneStateDict); every other tensor is freed.
export function readBackbone(path: string, checkpointKey: 'teacher' | 'student' = 'teacher'): StateDict {
  const tree = readPth(path);
  let picked: StateDict;
  try {
    picked = backboneStateDict(tree, checkpointKey);
  } catch (e) {
    dispose(tree);
    throw new FileFormatError(`${path}: ${(e as Error).message}`);
  }
  const keep = new Set(picked.map(([, t]) => t));
  disposeExcept(tree, keep);
  return picked;
}

// Frees every tensor in a tree except those kept.
function disposeExcept(tree: unknown, keep: Set<Tensor>): void {
  const all: Tensor[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof Tensor) {
      if (!keep.has(v)) all.push(v);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v instanceof Map) v.forEach(walk);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(tree);
  dispose(all);
}
