// Running `dino` commands in tests: the command line through main() with what it prints collected, a
// tiny training checkpoint to evaluate, and the PyTorch reference backbone's features of the same
// images as the outside oracle.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DinoTrainer, saveTrainerCheckpoint, tensor, tidy } from '../../lib/index.ts';
import { Generator } from '../../lib/engine/random.ts';
import { main } from '../../scripts/dino.ts';
import { runPython } from '../io/python.ts';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

// Runs `dino <args>` in this process and collects stdout (console.log) and stderr (console.error, warn).
export async function runCli(args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = console.warn = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    Object.assign(console, { log, error, warn });
  }
}

// The backbone of TINY_CHECKPOINT: 28x28 images (Fashion-MNIST) in 7x7 patches of 4.
export const TINY_SPEC = { embedDim: 32, depth: 2, numHeads: 2, patchSize: 4, imgSize: 28 };

// A training checkpoint of a tiny DINO after one step on random crops, so that its teacher and student
// differ.
export function writeTinyCheckpoint(path: string): void {
  const trainer = new DinoTrainer({ ...TINY_SPEC, outDim: 64, headHiddenDim: 32, headBottleneckDim: 16, localCropsNumber: 0, batchSize: 2, epochs: 1, warmupEpochs: 0, lr: 0.05 }, 1);
  try {
    const gen = new Generator(7);
    tidy(() => trainer.step([0, 1].map(() => tensor(gen.normalArray(2 * 3 * 28 * 28), [2, 3, 28, 28]))));
    saveTrainerCheckpoint(path, trainer);
  } finally {
    trainer.dispose();
  }
}

export interface ReferenceFeatures {
  cls: number[][];
  patch: number[][][];
}

export interface ReferenceRequest {
  // The backbone of the checkpoint: 'teacher' or 'student'.
  key: string;
  // Image files, or the Fashion-MNIST subset's images spread over a split as --max-train/--max-val pick them.
  images: string[] | { split: 'train' | 't10k'; count: number };
  resize: number;
  crop: number;
}

// PyTorch's reference ViT (scripts/reference/dino_model.py) with a backbone of a checkpoint of
// TINY_SPEC, on images through the official evaluation transform (scripts/fixtures/augment.py); one
// Python run answers every request.
export function referenceFeatures(checkpoint: string, requests: ReferenceRequest[]): ReferenceFeatures[] {
  const code = `
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from PIL import Image
from safetensors.torch import load_file
from reference.dino_model import VisionTransformer
from fixtures.augment import eval_transform, normalize
from fixtures.knn import fashion_mnist_pixels
weights, spec, requests = load_file(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
answers = []
for r in requests:
    prefix = r["key"] + ".backbone."
    model = VisionTransformer(img_size=spec["imgSize"], patch_size=spec["patchSize"], embed_dim=spec["embedDim"], depth=spec["depth"], num_heads=spec["numHeads"])
    model.load_state_dict({k[len(prefix):]: v.float() for k, v in weights.items() if k.startswith(prefix)})
    model.eval()
    images, resize, crop = r["images"], r["resize"], r["crop"]
    if isinstance(images, list):
        x = torch.stack([normalize(eval_transform(Image.open(p).convert("RGB"), resize, crop)) for p in images])
    else:
        x = fashion_mnist_pixels(images["split"], images["count"], resize, crop)[0].reshape(-1, 3, crop, crop)
    with torch.no_grad():
        tokens = model.get_intermediate_layers(x, 1)[0]
        answers.append({"cls": model(x).tolist(), "patch": tokens[:, 1:].tolist()})
print(json.dumps(answers))
`;
  return runPython(code, [join(root, 'scripts'), checkpoint, JSON.stringify(TINY_SPEC), JSON.stringify(requests)]);
}
