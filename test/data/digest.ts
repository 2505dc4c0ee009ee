// A compact, comparable record of an epoch's batches (the same under Node and Deno).
import { createHash } from 'node:crypto';
import type { DataLoader } from '../../lib/data/loader.ts';

export async function epochDigest(loader: DataLoader, epoch: number): Promise<string[]> {
  const out: string[] = [];
  for await (const b of loader.epoch(epoch)) {
    const hash = createHash('sha256');
    for (const c of b.crops) hash.update(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    out.push(`${b.step} ${[...b.indices]} ${[...b.labels]} ${hash.digest('hex')}`);
  }
  return out;
}
