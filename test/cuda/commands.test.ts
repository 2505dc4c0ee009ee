// The command line on the GPU: `dino train --device cuda` stopped and resumed on the GPU, or started on
// the CPU and resumed on the GPU, follows the same run on the CPU, and the trained teacher's k-NN
// features agree between the devices.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFeatures } from '../../lib/eval/features.ts';
import { readTrainingLog, type StepRecord } from '../../lib/train/log.ts';
import { compare } from '../helpers/close.ts';
import { cudaSkip } from '../helpers/cuda.ts';

const root = new URL('../..', import.meta.url).pathname;
const TINY = ['--data-path', 'fashion-mnist', '--embed-dim', '32', '--depth', '2', '--num-heads', '2', '--patch-size', '7', '--global-crops-size', '28', '--local-crops-size', '14', '--local-crops-number', '2', '--out-dim', '128', '--use-bn-in-head', 'true', '--batch-size', '16', '--epochs', '2', '--warmup-epochs', '1', '--num-workers', '1'];

function dino(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/dino.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

const losses = (dir: string) => readTrainingLog(join(dir, 'log.jsonl')).filter((r): r is StepRecord => r.type === 'step').map((s) => s.loss);

t.test('dino train on cuda, resumed there or from a CPU checkpoint, against the CPU; k-NN features of its teacher on both devices', { skip: cudaSkip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dino-cuda-cli-'));
  try {
    const gpu = join(dir, 'gpu');
    const cpu = join(dir, 'cpu');
    let r = dino(['train', ...TINY, '--output-dir', gpu, '--device', 'cuda', '--max-iterations', '2']);
    t.equal(r.status, 0, 'two iterations on cuda');
    t.match(r.out, /^device: cuda:0 \(/m, 'the device it chose, and why');
    r = dino(['train', ...TINY, '--output-dir', gpu, '--device', 'cuda', '--max-iterations', '2', '--resume']);
    t.equal(r.status, 0, 'resumed on cuda for two more');
    r = dino(['train', ...TINY, '--output-dir', cpu, '--device', 'cpu', '--max-iterations', '4']);
    t.equal(r.status, 0, 'the same four iterations on the cpu');
    const g = losses(gpu);
    const c = losses(cpu);
    t.equal(g.length, 4, 'four logged steps on cuda');
    t.equal(compare(g, c, { atol: 0, rtol: 1e-4 }), null, `losses agree: cuda ${g.map((x) => x.toFixed(6)).join(' ')}, cpu ${c.map((x) => x.toFixed(6)).join(' ')}`);
    const mixed = join(dir, 'mixed');
    t.equal(dino(['train', ...TINY, '--output-dir', mixed, '--device', 'cpu', '--max-iterations', '2']).status, 0, 'two iterations on the cpu');
    t.equal(dino(['train', ...TINY, '--output-dir', mixed, '--device', 'cuda', '--max-iterations', '2', '--resume']).status, 0, 'resumed on cuda');
    t.equal(compare(losses(mixed), c, { atol: 0, rtol: 1e-4 }), null, 'a checkpoint of the cpu resumes on cuda');

    const features = (device: string) => {
      const dump = join(dir, `features-${device}`);
      const k = dino(['eval-knn', '--checkpoint', join(gpu, 'checkpoint.safetensors'), '--device', device, '--max-train', '64', '--max-val', '16', '--num-workers', '1', '--dump-features', dump]);
      t.equal(k.status, 0, `eval-knn on ${device}`);
      return loadFeatures(join(dump, 'trainfeat.safetensors')).features;
    };
    const fg = features('cuda');
    const fc = features('cpu');
    t.equal(fg.length, 64 * 32);
    t.equal(compare(fg, fc, { atol: 1e-5, rtol: 1e-4 }), null, 'the teacher gives the same features on both devices');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
