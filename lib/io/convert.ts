// Conversion between the official DINO .pth files and our safetensors files (docs/CHECKPOINTS.md).
//
// An official training checkpoint ({student, teacher, optimizer, epoch, args, dino_loss, fp16_scaler})
// becomes our checkpoint: the student's state dict (without DistributedDataParallel's `module.`) under
// student.*, the teacher's under teacher.*, dino_loss.center as loss.center, the optimizer's per-parameter
// tensors under optimizer.<parameter>.<key>, and everything else as JSON metadata. The optimizer's
// parameters are numbered in the pickle; they are named here by rebuilding the official parameter
// groups (utils.get_params_groups) from the student's state dict. A plain state dict (the released
// backbone-only weights) becomes a plain safetensors file with the same keys, and back.
import { basename, extname } from 'node:path';
import { Tensor, scalar } from '../engine/tensor.ts';
import { dispose } from '../engine/scope.ts';
import { FileFormatError } from './file.ts';
import { describe, type PyKey } from './pickle.ts';
import { readPth, stateDictEntries, writePth, type PthValue, type StateDict } from './pth.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import { decodeCheckpointMeta, saveCheckpoint, type CheckpointMeta, type JsonValue } from './checkpoint.ts';

// Top-level entries of an official checkpoint that hold tensors; the rest is metadata.
const STATE_KEYS = new Set(['student', 'teacher', 'optimizer', 'dino_loss']);
const BUFFER_SUFFIXES = ['.running_mean', '.running_var', '.num_batches_tracked'];

export interface OurCheckpoint {
  tensors: [string, Tensor][];
  meta: CheckpointMeta;
}

// A .pth tree that is a DINO training checkpoint (as opposed to a bare state dict).
export function isTrainingCheckpoint(tree: PthValue): tree is Map<PyKey, PthValue> {
  return tree instanceof Map && (tree.has('student') || tree.has('teacher'));
}

function stripModule(name: string): string {
  return name.startsWith('module.') ? name.slice('module.'.length) : name;
}

function isBuffer(name: string): boolean {
  return BUFFER_SUFFIXES.some((s) => name.endsWith(s));
}

// Python data (no tensors) as JSON: dicts and Namespaces become objects, tuples arrays.
function toJson(v: PthValue, where: string): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new FileFormatError(`${where} is ${v}, which JSON cannot hold`);
    return v;
  }
  if (typeof v === 'bigint') throw new FileFormatError(`${where} is the integer ${v}, beyond what JSON numbers hold exactly`);
  if (v instanceof Tensor) throw new FileFormatError(`${where} is a tensor where plain data was expected`);
  if (Array.isArray(v)) return v.map((x, i) => toJson(x, `${where}[${i}]`));
  const out: { [key: string]: JsonValue } = {};
  const entries: [PyKey, PthValue][] = v instanceof Map ? [...v] : Object.entries(v);
  for (const [k, x] of entries) {
    const key = String(k);
    if (Object.hasOwn(out, key)) throw new FileFormatError(`${where} has two keys that read '${key}'`);
    Object.defineProperty(out, key, { value: toJson(x, `${where}[${JSON.stringify(key)}]`), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function mapOf(v: PthValue | undefined, what: string): Map<PyKey, PthValue> {
  if (!(v instanceof Map)) throw new FileFormatError(`${what} should be a dict, but is ${describe(v)}`);
  return v;
}

// The names of the optimizer's parameters, group by group, as main_dino.py's get_params_groups orders
// them: the student's trainable parameters in registration order, those to regularise (not biases, not
// 1-d) first, then the rest. A norm_last_layer head's frozen last_layer.weight_g is not trained.
function officialGroupNames(student: StateDict, groupSizes: number[]): string[][] {
  const params = student.filter(([k]) => !isBuffer(k));
  const total = groupSizes.reduce((a, b) => a + b, 0);
  const trainable = params.length === total ? params : params.filter(([k]) => !k.endsWith('last_layer.weight_g'));
  const regularized = trainable.filter(([k, t]) => !(k.endsWith('.bias') || t.rank === 1)).map(([k]) => k);
  const plain = trainable.filter(([k, t]) => k.endsWith('.bias') || t.rank === 1).map(([k]) => k);
  const groups = groupSizes.length === 2 ? [regularized, plain] : [[...regularized, ...plain]];
  if (trainable.length !== total || groups.some((g, i) => g.length !== groupSizes[i])) {
    throw new FileFormatError(`the optimizer's parameter groups (${groupSizes.join(' + ')} parameters) do not match the student's parameters (${regularized.length} regularised + ${plain.length} not)`);
  }
  return groups;
}

function optimizerToOurs(value: PthValue | undefined, student: StateDict): { tensors: [string, Tensor][]; meta: JsonValue } {
  const opt = mapOf(value, "'optimizer'");
  const groupsValue = opt.get('param_groups');
  if (!Array.isArray(groupsValue) || groupsValue.length === 0) throw new FileFormatError("'optimizer'.param_groups should be a non-empty list");
  const groups = groupsValue.map((g, i) => mapOf(g, `'optimizer'.param_groups[${i}]`));
  const indices = groups.map((g, i) => {
    const p = g.get('params');
    if (!Array.isArray(p) || !p.every((x) => typeof x === 'number')) throw new FileFormatError(`'optimizer'.param_groups[${i}].params should be a list of integers`);
    return p as number[];
  });
  const names = officialGroupNames(student, indices.map((p) => p.length));
  const nameOf = new Map<number, string>();
  indices.forEach((group, g) => group.forEach((index, j) => nameOf.set(index, names[g][j])));
  const shapes = new Map(student.map(([k, t]) => [k, t.shape]));

  const tensors: [string, Tensor][] = [];
  const state: { [name: string]: JsonValue } = {};
  for (const [index, entry] of mapOf(opt.get('state') ?? new Map(), "'optimizer'.state")) {
    const name = typeof index === 'number' ? nameOf.get(index) : undefined;
    if (name === undefined) throw new FileFormatError(`'optimizer'.state has an entry for parameter ${String(index)}, which no parameter group lists`);
    const scalars: { [key: string]: JsonValue } = {};
    for (const [key, v] of mapOf(entry, `'optimizer'.state[${index}]`)) {
      const where = `'optimizer'.state[${index}][${JSON.stringify(key)}] (${name})`;
      if (typeof key !== 'string') throw new FileFormatError(`${where}: keys should be strings`);
      // Since PyTorch 1.12 the step count is a 0-d tensor; it is a number in our metadata.
      if (key === 'step' && v instanceof Tensor) scalars[key] = v.item();
      else if (v instanceof Tensor) {
        const want = shapes.get(name)!;
        if (v.shape.length !== want.length || v.shape.some((d, i) => d !== want[i])) throw new FileFormatError(`${where} has shape [${v.shape}], the parameter [${want}]`);
        tensors.push([`optimizer.${name}.${key}`, v]);
      } else scalars[key] = toJson(v, where);
    }
    state[name] = scalars;
  }
  const paramGroups = groups.map((g, i) => {
    const hyper = toJson(new Map([...g].filter(([k]) => k !== 'params')), `'optimizer'.param_groups[${i}]`) as { [key: string]: JsonValue };
    return { ...hyper, params: names[i] };
  });
  return { tensors, meta: { param_groups: paramGroups, state } };
}

// An official DINO training checkpoint (as read by readPth) in our layout. The tensors are the tree's own.
export function officialToOurs(tree: Map<PyKey, PthValue>): OurCheckpoint {
  const student = tree.has('student') ? stateDictEntries(tree.get('student'), "'student'").map(([k, t]): [string, Tensor] => [stripModule(k), t]) : [];
  const tensors: [string, Tensor][] = student.map(([k, t]) => [`student.${k}`, t]);
  if (tree.has('teacher')) for (const [k, t] of stateDictEntries(tree.get('teacher'), "'teacher'")) tensors.push([`teacher.${stripModule(k)}`, t]);
  const meta: CheckpointMeta = {};
  if (tree.has('optimizer')) {
    const opt = optimizerToOurs(tree.get('optimizer'), student);
    tensors.push(...opt.tensors);
    meta.optimizer = opt.meta;
  }
  if (tree.has('dino_loss')) for (const [k, t] of stateDictEntries(tree.get('dino_loss'), "'dino_loss'")) tensors.push([`loss.${k}`, t]);
  for (const [key, value] of tree) {
    if (typeof key !== 'string') throw new FileFormatError(`the checkpoint has a non-string key ${String(key)}`);
    if (STATE_KEYS.has(key)) continue;
    Object.defineProperty(meta, key, { value: toJson(value, `'${key}'`), enumerable: true, writable: true, configurable: true });
  }
  return { tensors, meta };
}

interface OptimizerMeta {
  param_groups: ({ params: string[] } & { [key: string]: JsonValue })[];
  state: { [name: string]: { [key: string]: JsonValue } };
}

function checkOptimizerMeta(v: JsonValue | undefined): OptimizerMeta {
  const o = v as Partial<OptimizerMeta> | null;
  const ok =
    o !== null && typeof o === 'object' && Array.isArray(o.param_groups) &&
    o.param_groups.every((g) => g !== null && typeof g === 'object' && Array.isArray(g.params) && g.params.every((p) => typeof p === 'string')) &&
    (o.state === undefined || (o.state !== null && typeof o.state === 'object' && !Array.isArray(o.state)));
  if (!ok) throw new FileFormatError("metadata 'optimizer' should be {param_groups: [{..., params: [names]}], state: {name: {...}}}");
  return { param_groups: o!.param_groups!, state: o!.state ?? {} };
}

// Our checkpoint in the official layout, loadable by main_dino.py's restart_from_checkpoint (and by
// torch.load with weights_only=True: args is written as a dict, not an argparse.Namespace). Returns the
// tree and the tensors made for it (step counts), which the caller frees after writing.
export function oursToOfficial(tensors: Map<string, Tensor>, meta: CheckpointMeta): { tree: Map<string, PthValue | StateDict>; made: Tensor[] } {
  const parts = new Map<string, StateDict>([['student', []], ['teacher', []], ['loss', []], ['optimizer', []]]);
  for (const [name, t] of tensors) {
    const dot = name.indexOf('.');
    const part = parts.get(name.slice(0, dot));
    if (dot < 0 || part === undefined) throw new FileFormatError(`tensor '${name}' is outside student.*, teacher.*, loss.* and optimizer.*`);
    part.push([name.slice(dot + 1), t]);
  }
  const tree = new Map<string, PthValue | StateDict>();
  const made: Tensor[] = [];
  const teacher = parts.get('teacher')!;
  // The official code wraps the teacher in DistributedDataParallel (keys with `module.`) only when it has batch norms.
  const teacherPrefix = teacher.some(([k]) => isBuffer(k)) ? 'module.' : '';
  if (parts.get('student')!.length > 0) tree.set('student', parts.get('student')!.map(([k, t]) => [`module.${k}`, t]));
  if (teacher.length > 0) tree.set('teacher', teacher.map(([k, t]) => [teacherPrefix + k, t]));
  if (meta.optimizer !== undefined) {
    const opt = checkOptimizerMeta(meta.optimizer);
    const index = new Map<string, number>();
    for (const g of opt.param_groups) for (const p of g.params) index.set(p, index.size);
    const state = new Map<number, Map<string, PthValue>>();
    const entry = (name: string): Map<string, PthValue> => {
      const i = index.get(name);
      if (i === undefined) throw new FileFormatError(`optimizer state for '${name}', which no parameter group lists`);
      if (!state.has(i)) state.set(i, new Map());
      return state.get(i)!;
    };
    for (const [name, scalars] of Object.entries(opt.state)) {
      for (const [key, v] of Object.entries(scalars)) {
        if (key === 'step' && typeof v === 'number') {
          const step = scalar(v);
          made.push(step);
          entry(name).set(key, step);
        } else entry(name).set(key, v);
      }
    }
    for (const [rest, t] of parts.get('optimizer')!) {
      const dot = rest.lastIndexOf('.');
      entry(rest.slice(0, dot)).set(rest.slice(dot + 1), t);
    }
    tree.set('optimizer', new Map<string, PthValue>([
      ['state', state],
      ['param_groups', opt.param_groups.map((g) => new Map<string, PthValue>([...Object.entries(g).filter(([k]) => k !== 'params'), ['params', g.params.map((p) => index.get(p)!)]]))],
    ]));
  } else if (parts.get('optimizer')!.length > 0) {
    throw new FileFormatError("optimizer tensors without the 'optimizer' metadata that names their groups");
  }
  if (parts.get('loss')!.length > 0) tree.set('dino_loss', parts.get('loss')!);
  for (const [key, value] of Object.entries(meta)) if (key !== 'optimizer') tree.set(key, value);
  return { tree, made };
}

function kindOf(path: string): 'pth' | 'safetensors' {
  const ext = extname(path).toLowerCase();
  if (ext === '.pth' || ext === '.pt') return 'pth';
  if (ext === '.safetensors') return 'safetensors';
  throw new FileFormatError(`${basename(path)}: unknown extension '${ext}' (use .pth, .pt or .safetensors)`);
}

// Converts between .pth and .safetensors by extension; returns a one-line description of what was written.
export function convert(input: string, output: string): string {
  const from = kindOf(input);
  const to = kindOf(output);
  if (from === to) throw new FileFormatError(`both files are ${from}; convert goes from .pth to .safetensors or back`);
  if (from === 'pth') {
    const tree = readPth(input);
    try {
      if (isTrainingCheckpoint(tree)) {
        const ours = officialToOurs(tree);
        saveCheckpoint(output, ours);
        return `${output}: DINO training checkpoint, ${ours.tensors.length} tensors, metadata ${Object.keys(ours.meta).join(', ') || 'none'}`;
      }
      const entries = stateDictEntries(tree, `${input}: the file (neither a DINO training checkpoint nor a state dict)`);
      writeSafetensors(output, entries);
      return `${output}: state dict of ${entries.length} tensors`;
    } finally {
      dispose(tree);
    }
  }
  const { tensors, metadata } = readSafetensors(input);
  const made: Tensor[] = [];
  try {
    const meta = decodeCheckpointMeta(metadata, input);
    if (meta !== null) {
      const official = oursToOfficial(new Map(tensors), meta);
      made.push(...official.made);
      writePth(output, official.tree);
      return `${output}: DINO training checkpoint with ${[...official.tree.keys()].join(', ')}`;
    }
    writePth(output, tensors.length > 0 ? tensors : new Map());
    return `${output}: state dict of ${tensors.length} tensors`;
  } finally {
    dispose([...tensors.map(([, t]) => t), ...made]);
  }
}
