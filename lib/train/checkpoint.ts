// A trainer's checkpoint: DinoTrainer.state() in our checkpoint format (lib/io/checkpoint.ts,
// docs/CHECKPOINTS.md), and back. DinoTrainer.restore checks the file's metadata field by field.
import { dispose } from '../engine/scope.ts';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { DinoTrainer, type TrainerOptions } from './trainer.ts';

export function saveTrainerCheckpoint(path: string, trainer: DinoTrainer): void {
  saveCheckpoint(path, trainer.state());
}

export function loadTrainerCheckpoint(path: string, opts: TrainerOptions = {}): DinoTrainer {
  const { tensors, meta } = loadCheckpoint(path);
  try {
    return DinoTrainer.restore(tensors, meta, opts);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    dispose([...tensors.values()]);
  }
}
