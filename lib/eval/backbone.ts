// The ViT backbone that the evaluation commands (k-NN, linear probe, embed, attention) run, from any
// of the weights a user has: our training checkpoint (its teacher or student), an official .pth (a full
// training checkpoint or the released backbone-only weights), a plain safetensors state dict (what
// `dino convert` makes of the released weights), or a fresh random initialisation (the baseline).
//
// The architecture comes from the weights themselves: width from cls_token, depth from the blocks,
// patch size from the patch projection, image size from the position embeddings. The number of heads
// cannot be read from weight shapes: it comes from our checkpoint's arguments, from --arch, or from the
// official rule of 64 channels per head. When --arch or --patch-size are given and the weights say
// otherwise, that is an error, not a silent reinterpretation.
import { extname } from 'node:path';
import { dispose } from '../engine/scope.ts';
import { Generator } from '../engine/random.ts';
import type { Tensor } from '../engine/tensor.ts';
import { FileFormatError } from '../io/file.ts';
import { decodeCheckpointMeta, type CheckpointMeta } from '../io/checkpoint.ts';
import { backboneStateDict, readBackbone, type StateDict } from '../io/pth.ts';
import { readSafetensors } from '../io/safetensors.ts';
import { VisionTransformer } from '../model/vit.ts';
import { ARCHITECTURES, argsToConfig, type Architecture } from '../train/trainer.ts';

export type CheckpointKey = 'teacher' | 'student';

export interface BackboneSpec {
  embedDim: number;
  depth: number;
  numHeads: number;
  patchSize: number;
  imgSize: number;
}

export interface LoadBackboneOptions {
  // Which network of a training checkpoint (default: the teacher, as the official evaluations).
  checkpointKey?: CheckpointKey;
  // Expected architecture and patch size; checked against the weights.
  arch?: Architecture;
  patchSize?: number;
}

export interface LoadedBackbone {
  model: VisionTransformer;
  spec: BackboneSpec;
  // Where the weights came from, for reports ("teacher of run/checkpoint.safetensors", "random init").
  source: string;
}

const ARCH_NAMES = Object.keys(ARCHITECTURES) as Architecture[];

function archOf(spec: BackboneSpec): Architecture | undefined {
  return ARCH_NAMES.find((a) => ARCHITECTURES[a].embedDim === spec.embedDim && ARCHITECTURES[a].depth === spec.depth);
}

// A backbone with fresh official initial values: the floor any learned features must beat.
export function randomBackbone(arch: Architecture, patchSize: number, { seed = 0, imgSize = 224 } = {}): LoadedBackbone {
  const spec = { ...ARCHITECTURES[arch], patchSize, imgSize };
  const model = new VisionTransformer({ ...spec, generator: new Generator(seed) });
  return { model, spec, source: `random init (${arch}/${patchSize}, seed ${seed})` };
}

// The architecture implied by a bare ViT state dict; numHeads from `heads` when known.
export function inferBackboneSpec(state: StateDict, heads?: number): BackboneSpec {
  const get = (name: string): Tensor => {
    const t = state.find(([k]) => k === name)?.[1];
    if (t === undefined) throw new FileFormatError(`the weights have no '${name}': not a ViT backbone`);
    return t;
  };
  const embedDim = get('cls_token').shape.at(-1)!;
  const proj = get('patch_embed.proj.weight');
  if (proj.rank !== 4 || proj.shape[2] !== proj.shape[3]) throw new FileFormatError(`patch_embed.proj.weight has shape [${proj.shape}], expected (D, 3, p, p)`);
  const patchSize = proj.shape[2];
  const tokens = get('pos_embed').shape[1] - 1;
  const grid = Math.round(Math.sqrt(tokens));
  if (grid * grid !== tokens) throw new FileFormatError(`pos_embed holds ${tokens} patch positions, not a square grid`);
  let depth = 0;
  while (state.some(([k]) => k.startsWith(`blocks.${depth}.`))) depth++;
  if (depth === 0) throw new FileFormatError('the weights have no transformer blocks');
  const numHeads = heads ?? (embedDim % 64 === 0 ? embedDim / 64 : 0);
  if (numHeads === 0) throw new FileFormatError(`cannot tell the number of heads of a ${embedDim}-wide ViT from its weights; give --arch`);
  return { embedDim, depth, numHeads, patchSize, imgSize: grid * patchSize };
}

function checkExpected(spec: BackboneSpec, opts: LoadBackboneOptions, path: string): void {
  if (opts.arch !== undefined) {
    const want = ARCHITECTURES[opts.arch];
    if (want.embedDim !== spec.embedDim || want.depth !== spec.depth) {
      const found = archOf(spec) ?? `a ViT of width ${spec.embedDim} and depth ${spec.depth}`;
      throw new FileFormatError(`${path} holds ${found}, not ${opts.arch} (--arch)`);
    }
  }
  if (opts.patchSize !== undefined && opts.patchSize !== spec.patchSize) {
    throw new FileFormatError(`${path} has patch size ${spec.patchSize}, not ${opts.patchSize} (--patch-size)`);
  }
}

// The bare backbone state dict of a file and the heads its metadata gives, if any. The caller frees
// the tensors.
function readBackboneWeights(path: string, key: CheckpointKey): { state: StateDict; heads?: number } {
  const ext = extname(path).toLowerCase();
  if (ext === '.pth' || ext === '.pt') return { state: readBackbone(path, key) };
  if (ext !== '.safetensors') throw new FileFormatError(`${path}: unknown extension '${ext}' (expected .safetensors, .pth or .pt)`);
  const { tensors, metadata } = readSafetensors(path);
  let meta: CheckpointMeta | null;
  try {
    meta = decodeCheckpointMeta(metadata, path);
  } catch (e) {
    dispose(tensors.map(([, t]) => t));
    throw e;
  }
  // A training checkpoint holds both networks under prefixes; a plain state dict is one network.
  const picked: StateDict = [];
  try {
    if (meta === null) picked.push(...backboneStateDict(new Map(tensors), key));
    else {
      const prefix = `${key}.backbone.`;
      for (const [k, t] of tensors) if (k.startsWith(prefix)) picked.push([k.slice(prefix.length), t]);
      if (picked.length === 0) throw new Error(`the checkpoint has no ${key} backbone`);
    }
  } catch (e) {
    dispose(tensors.map(([, t]) => t));
    throw new FileFormatError(`${path}: ${(e as Error).message}`);
  }
  const kept = new Set(picked.map(([, t]) => t));
  dispose(tensors.filter(([, t]) => !kept.has(t)).map(([, t]) => t));
  if (meta === null) return { state: picked };
  let heads: number | undefined;
  try {
    const config = argsToConfig(meta.args);
    heads = config.numHeads ?? (config.arch !== undefined ? ARCHITECTURES[config.arch]?.numHeads : undefined);
  } catch {
    // Arguments this version does not know: fall back to the weights alone.
  }
  return { state: picked, heads };
}

export function loadBackbone(path: string, opts: LoadBackboneOptions = {}): LoadedBackbone {
  const key = opts.checkpointKey ?? 'teacher';
  const { state, heads } = readBackboneWeights(path, key);
  try {
    const archHeads = opts.arch !== undefined ? ARCHITECTURES[opts.arch].numHeads : undefined;
    const spec = inferBackboneSpec(state, heads ?? archHeads);
    checkExpected(spec, opts, path);
    const model = new VisionTransformer(spec);
    try {
      model.loadStateDict(state);
    } catch (e) {
      model.dispose();
      throw new FileFormatError(`${path}: ${(e as Error).message}`);
    }
    return { model, spec, source: `${key} of ${path}` };
  } finally {
    dispose(state.map(([, t]) => t));
  }
}
