// A trainer's checkpoint: DinoTrainer.state() in our checkpoint format (lib/io/checkpoint.ts), and back.
// The metadata of a file is untrusted: it is checked field by field before a trainer is built from it.
import { dispose } from '../engine/scope.ts';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta, type JsonValue } from '../io/checkpoint.ts';
import { DEFAULT_CONFIG, DinoTrainer, type DinoConfig, type TrainerState } from './trainer.ts';

export function saveTrainerCheckpoint(path: string, trainer: DinoTrainer): void {
  const { tensors, meta } = trainer.state();
  saveCheckpoint(path, { tensors, meta: meta as unknown as CheckpointMeta });
}

export function loadTrainerCheckpoint(path: string): DinoTrainer {
  const { tensors, meta } = loadCheckpoint(path);
  try {
    return DinoTrainer.restore(tensors, trainerMeta(meta, path));
  } finally {
    dispose([...tensors.values()]);
  }
}

function trainerMeta(meta: CheckpointMeta, path: string): TrainerState['meta'] {
  const fail = (what: string): never => {
    throw new Error(`${path}: not a training checkpoint of this version (${what})`);
  };
  const isObject = (v: JsonValue | undefined): v is { [k: string]: JsonValue } => v !== null && typeof v === 'object' && !Array.isArray(v);
  const isInt = (v: JsonValue | undefined): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const { config, itersPerEpoch, iteration, generator, optimizer } = meta;
  if (!isObject(config)) fail('no config');
  const c = config as { [k: string]: JsonValue };
  for (const [key, value] of Object.entries(c)) {
    const expected = key in DEFAULT_CONFIG ? typeof DEFAULT_CONFIG[key as keyof DinoConfig] : ['embedDim', 'depth', 'numHeads'].includes(key) ? 'number' : null;
    if (expected === null) fail(`unknown config key '${key}'`);
    if (typeof value !== expected) fail(`config.${key} is not a ${expected}`);
  }
  if (!isInt(itersPerEpoch) || !isInt(iteration)) fail('no iteration counts');
  if (!isObject(generator)) fail('no generator state');
  if (!isObject(optimizer) || !Array.isArray(optimizer.steps) || !Array.isArray(optimizer.hyper)) fail('no optimizer state');
  const steps = (optimizer as { steps: JsonValue[] }).steps;
  if (!steps.every((s) => Array.isArray(s) && s.length === 2 && typeof s[0] === 'string' && isInt(s[1]))) fail('malformed optimizer steps');
  return meta as unknown as TrainerState['meta'];
}
