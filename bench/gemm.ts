// GEMM benchmark: our CPU matmul against PyTorch's (MKL / oneDNN) on the shapes of a ViT-S/16 training
// step, on the same machine and thread count in the same run, as GFLOP/s and ratios.
//
//   npm run bench:gemm -- [--batch 64] [--threads N] [--reps 5] [--rounds 3]
//
// The machine may be shared and noisy: each round times every shape on both sides, and the medians
// over rounds are compared. Only ratios are meaningful across runs.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addon, ops, tensor, tidy } from '../lib/index.ts';
import { randomValues } from '../test/helpers/gradcheck.ts';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '64' },
    threads: { type: 'string' },
    reps: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
  },
});
const B = Number(values.batch);
const threads = Number(values.threads ?? addon.buildInfo().threads);
const reps = Number(values.reps);
const rounds = Number(values.rounds);
addon.setNumThreads(threads);

interface Shape {
  name: string;
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

// ViT-S/16: D = 384, MLP 1536, 6 heads of 64, T = 197 tokens per 224-px crop.
const T = 197;
const M = B * T;
const shapes: Shape[] = [
  { name: 'qkv      x @ W^T   (B*197)x384 @ 384x1152', batch: 1, M, N: 1152, K: 384, transA: false, transB: true },
  { name: 'fc1      x @ W^T   (B*197)x384 @ 384x1536', batch: 1, M, N: 1536, K: 384, transA: false, transB: true },
  { name: 'fc2      x @ W^T   (B*197)x1536 @ 1536x384', batch: 1, M, N: 384, K: 1536, transA: false, transB: true },
  { name: 'proj     x @ W^T   (B*197)x384 @ 384x384', batch: 1, M, N: 384, K: 384, transA: false, transB: true },
  { name: 'fc2 dX   dY @ W    (B*197)x384 @ 384x1536', batch: 1, M, N: 1536, K: 384, transA: false, transB: false },
  { name: 'fc1 dW   dY^T @ X  1536x(B*197) @ (B*197)x384', batch: 1, M: 1536, N: 384, K: M, transA: true, transB: false },
  { name: 'attn     Q @ K^T   (B*6) x 197x64 @ 64x197', batch: B * 6, M: T, N: T, K: 64, transA: false, transB: true },
  { name: 'attn     P @ V     (B*6) x 197x197 @ 197x64', batch: B * 6, M: T, N: 64, K: T, transA: false, transB: false },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeOurs(s: Shape): number {
  return tidy(() => {
    const dims = (rows: number, cols: number, trans: boolean) => [...(s.batch > 1 ? [s.batch] : []), ...(trans ? [cols, rows] : [rows, cols])];
    const aShape = dims(s.M, s.K, s.transA);
    const bShape = dims(s.K, s.N, s.transB);
    const a = tensor(randomValues(aShape.reduce((x, y) => x * y, 1), 1), aShape);
    const b = tensor(randomValues(bShape.reduce((x, y) => x * y, 1), 2), bShape);
    const times: number[] = [];
    for (let i = 0; i < reps + 1; i++) {
      const t0 = process.hrtime.bigint();
      const c = ops.matmul(a, b, { transA: s.transA, transB: s.transB });
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      c.dispose();
      if (i > 0) times.push(dt); // the first call warms the caches and the allocator
    }
    return median(times);
  });
}

function timeTorch(): Record<string, number> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'gemm_torch.py');
  const spec = JSON.stringify({ threads, warmup: 1, reps, shapes });
  return JSON.parse(execFileSync(values.python!, [script, spec], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } }));
}

const ours: Record<string, number[]> = {};
const theirs: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const s of shapes) (ours[s.name] ??= []).push(timeOurs(s));
  const t = timeTorch();
  for (const s of shapes) (theirs[s.name] ??= []).push(t[s.name]);
}

const torchVersion = execFileSync(values.python!, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim();
console.log(`GEMM, float32, ${threads} thread(s), B=${B}; dino-ts kernel: ${addon.buildInfo().gemmKernel}; PyTorch ${torchVersion}`);
console.log(`median of ${rounds} rounds x ${reps} reps\n`);
console.log(`${'shape'.padEnd(50)} ${'dino-ts GFLOP/s'.padStart(16)} ${'PyTorch GFLOP/s'.padStart(16)} ${'ratio'.padStart(7)}`);
const ratios: number[] = [];
for (const s of shapes) {
  const flops = 2 * s.batch * s.M * s.N * s.K;
  const a = flops / median(ours[s.name]) / 1e9;
  const b = flops / median(theirs[s.name]) / 1e9;
  ratios.push(a / b);
  console.log(`${s.name.padEnd(50)} ${a.toFixed(1).padStart(16)} ${b.toFixed(1).padStart(16)} ${(a / b).toFixed(2).padStart(7)}`);
}
const geo = Math.exp(ratios.reduce((x, r) => x + Math.log(r), 0) / ratios.length);
console.log(`\ngeometric mean ratio (dino-ts / PyTorch): ${geo.toFixed(2)}; lowest ${Math.min(...ratios).toFixed(2)}`);
