// The `dino` command line under Deno: a few training iterations on the bundled Fashion-MNIST through
// the worker-thread loader and the native augmentation, a checkpoint, then a resume from it.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../scripts/dino.ts';
import { loadLatestCheckpoint } from '../../lib/train/run.ts';

declare const Deno: { test(name: string, fn: () => Promise<void>): void };

function assert(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

const TINY = ['--embed-dim', '16', '--depth', '1', '--num-heads', '2', '--patch-size', '7', '--global-crops-size', '28', '--local-crops-size', '14',
  '--local-crops-number', '2', '--out-dim', '32', '--head-hidden-dim', '32', '--head-bottleneck-dim', '8', '--batch-size', '16', '--num-workers', '1'];

Deno.test('dino train runs, stops with a checkpoint, and resumes under Deno', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deno-cli-'));
  try {
    assert((await main(['train', ...TINY, '--output-dir', dir, '--max-iterations', '2'])) === 0, 'the first run exits with 0');
    assert(existsSync(join(dir, 'checkpoint.safetensors')) && existsSync(join(dir, 'log.jsonl')), 'a checkpoint and a log');
    assert((await main(['train', ...TINY, '--output-dir', dir, '--resume', '--max-iterations', '1'])) === 0, 'the resumed run exits with 0');
    const latest = loadLatestCheckpoint(dir)!;
    assert(latest.trainer.iteration === 3, `iteration 3 after 2 + 1, got ${latest.trainer.iteration}`);
    latest.trainer.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
