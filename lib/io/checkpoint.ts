// Our training checkpoint: one safetensors file. Tensors are stored under prefixes (student.*,
// teacher.*, optimizer.<parameter>.exp_avg, loss.center, ...; see docs/CHECKPOINTS.md) and everything
// else (epoch, iteration, arguments, optimizer steps and hyper-parameters, generator states) is JSON in
// the header's __metadata__, one entry per top-level key, beside a format marker and version. Saving
// is atomic: the file name only ever refers to a complete checkpoint.
import type { Tensor } from '../engine/tensor.ts';
import { dispose } from '../engine/scope.ts';
import type { AdamWStateDict } from '../optim/adamw.ts';
import { FileFormatError } from './file.ts';
import { CHECKSUM_KEY, readSafetensors, writeSafetensors } from './safetensors.ts';

export const CHECKPOINT_FORMAT = 'dino-ts/checkpoint';
export const CHECKPOINT_VERSION = 1;
const FORMAT_KEY = 'format';
const VERSION_KEY = 'format_version';
// Metadata nests a few levels (args, optimizer groups); far deeper is a malformed file.
const MAX_META_DEPTH = 32;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type CheckpointMeta = Record<string, JsonValue>;

export interface CheckpointData {
  tensors: Iterable<readonly [string, Tensor]>;
  meta: CheckpointMeta;
}

export interface LoadedCheckpoint {
  // In the order they were saved.
  tensors: Map<string, Tensor>;
  meta: CheckpointMeta;
}

export function saveCheckpoint(path: string, { tensors, meta }: CheckpointData): void {
  writeSafetensors(path, tensors, encodeCheckpointMeta(meta), { checksum: true });
}

// The caller owns the tensors (dispose() them, or load them into a model and then dispose()).
export function loadCheckpoint(path: string): LoadedCheckpoint {
  const { tensors, metadata } = readSafetensors(path);
  try {
    const meta = decodeCheckpointMeta(metadata, path);
    if (meta === null) throw new FileFormatError(`${path}: not a dino-ts checkpoint (its metadata has no '${FORMAT_KEY}: ${CHECKPOINT_FORMAT}'); it may be a plain safetensors state dict`);
    return { tensors: new Map(tensors), meta };
  } catch (e) {
    dispose(tensors.map(([, t]) => t));
    throw e;
  }
}

function encodeCheckpointMeta(meta: CheckpointMeta): Record<string, string> {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new TypeError('checkpoint meta must be an object');
  const out: Record<string, string> = { [FORMAT_KEY]: CHECKPOINT_FORMAT, [VERSION_KEY]: String(CHECKPOINT_VERSION) };
  for (const [key, value] of Object.entries(meta)) {
    if (key === FORMAT_KEY || key === VERSION_KEY || key === CHECKSUM_KEY) throw new Error(`checkpoint meta cannot use the reserved key '${key}'`);
    checkJson(value, `meta.${key}`, 0, (m) => new TypeError(m));
    Object.defineProperty(out, key, { value: JSON.stringify(value), enumerable: true });
  }
  return out;
}

// The meta of a dino-ts checkpoint, or null when the metadata carries no checkpoint marker (a plain
// safetensors file).
export function decodeCheckpointMeta(metadata: Record<string, string>, source: string): CheckpointMeta | null {
  if (metadata[FORMAT_KEY] !== CHECKPOINT_FORMAT) return null;
  const fail = (m: string): FileFormatError => new FileFormatError(`${source}: ${m}`);
  const version = Number(metadata[VERSION_KEY]);
  if (!Number.isInteger(version) || version < 1) throw fail(`invalid checkpoint ${VERSION_KEY} ${JSON.stringify(metadata[VERSION_KEY])}`);
  if (version > CHECKPOINT_VERSION) throw fail(`checkpoint format ${version} was written by a newer dino-ts; this one reads format ${CHECKPOINT_VERSION}`);
  const meta: CheckpointMeta = {};
  for (const [key, text] of Object.entries(metadata)) {
    if (key === FORMAT_KEY || key === VERSION_KEY || key === CHECKSUM_KEY) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw fail(`metadata '${key}' is not valid JSON: ${(e as Error).message}`);
    }
    checkJson(value, `metadata '${key}'`, 0, fail);
    Object.defineProperty(meta, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return meta;
}

// JSON that survives a round trip unchanged: finite numbers (JSON.stringify would turn NaN into null),
// no undefined, functions, bigints or class instances (a Tensor belongs in the tensors), bounded depth.
function checkJson(v: unknown, where: string, depth: number, error: (m: string) => Error): asserts v is JsonValue {
  if (depth > MAX_META_DEPTH) throw error(`${where}: nested deeper than ${MAX_META_DEPTH} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw error(`${where}: ${v} cannot be stored as JSON`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => checkJson(x, `${where}[${i}]`, depth + 1, error));
    return;
  }
  if (typeof v === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
    for (const [k, x] of Object.entries(v)) checkJson(x, `${where}.${k}`, depth + 1, error);
    return;
  }
  throw error(`${where}: ${typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v} cannot be stored as JSON`);
}

// An AdamW state (lib/optim) in checkpoint form: the moments as optimizer.<parameter>.exp_avg and
// .exp_avg_sq tensors (the optimizer's own tensors, not copies) and the rest as the value for
// meta.optimizer, with torch's key names (weight_decay; step per parameter), which is what convert
// turns into torch's optimizer.state_dict().
export function adamwToCheckpoint(sd: AdamWStateDict): { tensors: [string, Tensor][]; meta: JsonValue } {
  const tensors: [string, Tensor][] = [];
  const state: { [name: string]: JsonValue } = {};
  for (const [name, s] of sd.state) {
    tensors.push([`optimizer.${name}.exp_avg`, s.expAvg], [`optimizer.${name}.exp_avg_sq`, s.expAvgSq]);
    Object.defineProperty(state, name, { value: { step: s.step }, enumerable: true });
  }
  const paramGroups = sd.paramGroups.map((g) => ({ lr: g.lr, betas: [...g.betas], eps: g.eps, weight_decay: g.weightDecay, params: [...g.params] }));
  return { tensors, meta: { param_groups: paramGroups, state } };
}

// The inverse of adamwToCheckpoint, for AdamW.loadStateDict (which copies the values). Also reads
// what convert makes of an official checkpoint's optimizer (its other torch group keys are the
// constants lib/optim's AdamW implements; amsgrad or maximize set are refused).
export function adamwFromCheckpoint(tensors: ReadonlyMap<string, Tensor>, meta: JsonValue | undefined): AdamWStateDict {
  const fail = (m: string): never => {
    throw new FileFormatError(`checkpoint optimizer state: ${m}`);
  };
  const o = meta as { param_groups?: unknown; state?: unknown } | null | undefined;
  if (o === null || typeof o !== 'object' || !Array.isArray(o.param_groups)) return fail("meta.optimizer should be {param_groups: [...], state: {...}}");
  const num = (g: Record<string, unknown>, key: string, i: number): number => {
    if (typeof g[key] !== 'number') fail(`param_groups[${i}].${key} should be a number`);
    return g[key] as number;
  };
  const paramGroups = (o.param_groups as Record<string, unknown>[]).map((g, i) => {
    if (g === null || typeof g !== 'object') fail(`param_groups[${i}] should be an object`);
    const { betas, params } = g;
    if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number')) fail(`param_groups[${i}].betas should be two numbers`);
    if (!Array.isArray(params) || !params.every((p) => typeof p === 'string')) fail(`param_groups[${i}].params should be parameter names`);
    if (g.amsgrad === true || g.maximize === true) fail(`param_groups[${i}] uses amsgrad or maximize, which this AdamW does not implement`);
    const [beta1, beta2] = betas as number[];
    return { lr: num(g, 'lr', i), weightDecay: num(g, 'weight_decay', i), betas: [beta1, beta2] as const, eps: num(g, 'eps', i), params: params as string[] };
  });
  const state = Object.entries((o.state ?? {}) as Record<string, { step?: unknown }>).map(([name, s]): AdamWStateDict['state'][number] => {
    const expAvg = tensors.get(`optimizer.${name}.exp_avg`);
    const expAvgSq = tensors.get(`optimizer.${name}.exp_avg_sq`);
    if (expAvg === undefined || expAvgSq === undefined) fail(`'${name}' has a step count but no optimizer.${name}.exp_avg / .exp_avg_sq tensors`);
    if (typeof s?.step !== 'number') fail(`state['${name}'].step should be a number`);
    return [name, { step: s.step as number, expAvg: expAvg!, expAvgSq: expAvgSq! }];
  });
  return { state, paramGroups };
}
