// The seeds of the data pipeline. Each epoch's order comes from (seed, epoch), as the official
// DistributedSampler(shuffle=True) seeds torch.randperm with seed + epoch, and each image's augmentation
// from its own generator seeded by (seed, epoch, index): which worker handles an image, and when, does
// not change what it becomes, and a resumed run sees exactly the images and crops it would have seen.
import { Generator } from '../engine/random.ts';

// A 32-bit hash of non-negative integers (MurmurHash3's block mixing and finaliser over the 32-bit
// halves of each), so that nearby tuples give unrelated seeds.
function mixSeed(...parts: number[]): number {
  let h = 0x9747b28c ^ parts.length;
  const mix = (word: number) => {
    let k = Math.imul(word, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  };
  for (const p of parts) {
    if (!Number.isSafeInteger(p) || p < 0) throw new RangeError(`seed parts must be non-negative integers, got ${p}`);
    mix(p >>> 0);
    mix(Math.floor(p / 2 ** 32));
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// A permutation of 0..n-1 for this epoch (Fisher-Yates).
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const rng = new Generator(mixSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

// The generator that augments dataset image `index` in `epoch` (and picks its replacement if it cannot
// be read).
export function imageGenerator(seed: number, epoch: number, index: number): Generator {
  return new Generator(mixSeed(seed, epoch, index));
}
