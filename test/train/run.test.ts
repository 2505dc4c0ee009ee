// `dino train` as a process: exact resume (2 epochs straight = 1 epoch + resume 1, bit for bit), a
// run killed with SIGKILL mid-epoch and resumed (valid checkpoint, unbroken log, the same losses as
// an uninterrupted run), SIGINT (a checkpoint, exit 0), a damaged newest checkpoint passed over for the
// one before it, refusing to overwrite a run, and the outputs (log.jsonl records, loss.png).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readTrainingLog, type EpochRecord, type StepRecord } from '../../lib/train/log.ts';
import { CHECKPOINT, PREVIOUS_CHECKPOINT, loadLatestCheckpoint } from '../../lib/train/run.ts';
import { writeImageFolder } from '../data/images.ts';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'train-run-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// 40 images, batch 8: 5 iterations per epoch.
const data = join(dir, 'images');
await writeImageFolder(data, 40);
const ITERS_PER_EPOCH = 5;

const TINY: Record<string, string> = {
  'data-path': data, 'batch-size': '8', 'num-workers': '1',
  'embed-dim': '16', depth: '1', 'num-heads': '2', 'patch-size': '4',
  'global-crops-size': '16', 'local-crops-size': '8', 'local-crops-number': '2',
  'out-dim': '32', 'head-hidden-dim': '32', 'head-bottleneck-dim': '8',
  'warmup-epochs': '1', lr: '0.01', 'saveckp-freq': '1', epochs: '3',
};

// `dino train` with the tiny settings, some of them replaced or added (a value of '' is a bare flag).
function args(out: string, changes: Record<string, string> = {}): string[] {
  return ['--import', 'tsx', 'scripts/dino.ts', 'train', ...Object.entries({ ...TINY, 'output-dir': out, ...changes }).flatMap(([k, v]) => (v === '' ? [`--${k}`] : [`--${k}`, v]))];
}

function train(out: string, changes: Record<string, string> = {}) {
  return spawnSync(process.execPath, args(out, changes), { cwd: root, encoding: 'utf8', timeout: 240_000 });
}

const steps = (out: string) => readTrainingLog(join(out, 'log.jsonl')).filter((r): r is StepRecord => r.type === 'step');
const epochs = (out: string) => readTrainingLog(join(out, 'log.jsonl')).filter((r): r is EpochRecord => r.type === 'epoch');
const losses = (out: string) => steps(out).map((s) => s.loss);

const straight = join(dir, 'straight');
t.test('an uninterrupted run: outputs, log records, loss plot', async (t) => {
  const r = train(straight);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /finished: iteration 15 of 15/);
  t.match(r.stdout, /epoch 3\/3 done in .*teacher entropy .* KL /);
  for (const f of [CHECKPOINT, PREVIOUS_CHECKPOINT, 'checkpoint0000.safetensors', 'checkpoint0002.safetensors', 'log.jsonl', 'loss.png']) t.ok(existsSync(join(straight, f)), f);
  t.same(steps(straight).map((s) => s.iteration), [...Array(15).keys()], 'one step record per iteration, in order');
  const e = epochs(straight);
  t.same(e.map((x) => x.epoch), [0, 1, 2]);
  for (const x of e) {
    t.ok(Math.abs(x.kl - (x.loss - x.teacher_entropy)) < 1e-12 && x.teacher_entropy > 0 && x.teacher_entropy <= x.max_entropy + 1e-6, `epoch ${x.epoch}: KL = loss - H, 0 < H <= ln(out_dim)`);
    t.equal(x.max_entropy, Math.log(32));
  }
  const meta = await sharp(join(straight, 'loss.png')).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', 800, 450]);
});

t.test('resume is exact: 1 epoch + resume 1 gives the losses of 2 straight epochs, bit for bit', async (t) => {
  const out = join(dir, 'split');
  // --resume with nothing to resume starts a new run with the same settings as without it.
  const first = train(out, { resume: '', 'max-iterations': String(ITERS_PER_EPOCH) });
  t.equal(first.status, 0, first.stderr);
  t.match(first.stdout, /nothing to resume in .*: starting a new run/);
  t.equal(steps(out).length, ITERS_PER_EPOCH);
  t.same(losses(out), losses(straight).slice(0, ITERS_PER_EPOCH), 'the first epoch of the straight run');
  const r = train(out, { resume: '', 'max-iterations': String(ITERS_PER_EPOCH) });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /resuming from .*checkpoint\.safetensors at epoch 1, iteration 5/);
  t.same(losses(out), losses(straight).slice(0, 2 * ITERS_PER_EPOCH));
});

t.test('SIGKILL mid-epoch, then --resume: a valid checkpoint, an unbroken log, the same losses', async (t) => {
  const out = join(dir, 'killed');
  // Only the rolling checkpoints (and checkpoint0000): the damaged-checkpoint test below uses this run.
  const child = spawn(process.execPath, args(out, { 'saveckp-freq': '100' }), { cwd: root, stdio: 'ignore' });
  // Kill it once it is two steps into epoch 2 (epoch 1's checkpoint written, epoch 2 half done).
  const killedAt = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const done = existsSync(join(out, 'log.jsonl')) ? steps(out).length : 0;
      if (done >= ITERS_PER_EPOCH + 2) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve(done);
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(timer);
      reject(new Error('the run ended before it could be killed'));
    });
  });
  await new Promise((r) => child.on('exit', r));
  t.ok(killedAt > ITERS_PER_EPOCH && killedAt < 3 * ITERS_PER_EPOCH, `killed after ${killedAt} logged steps`);
  const r = train(out, { resume: '', 'saveckp-freq': '100' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /resuming from .* at epoch [12], iteration (5|10)/);
  t.match(r.stdout, /finished: iteration 15 of 15/);
  t.same(steps(out).map((s) => s.iteration), [...Array(15).keys()], 'every iteration logged once, in order');
  t.same(epochs(out).map((e) => e.epoch), [0, 1, 2], 'every epoch summarised once');
  t.same(losses(out), losses(straight), 'the losses of the uninterrupted run');
  const latest = loadLatestCheckpoint(out)!;
  t.equal(latest.trainer.iteration, 15);
  latest.trainer.dispose();
});

t.test('SIGINT writes a checkpoint mid-epoch and exits cleanly; the run resumes from it', async (t) => {
  const out = join(dir, 'interrupted');
  const child = spawn(process.execPath, args(out), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const timer = setInterval(() => {
    if (existsSync(join(out, 'log.jsonl')) && steps(out).length >= 3) {
      clearInterval(timer);
      child.kill('SIGINT');
    }
  }, 20);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearInterval(timer);
  t.equal(code, 0, 'exit code 0');
  t.match(stdout, /SIGINT: stopped at iteration (\d+); checkpoint written to .*checkpoint\.safetensors; continue with --resume/);
  const at = Number(/stopped at iteration (\d+)/.exec(stdout)![1]);
  t.ok(at >= 3 && at < 15, `stopped at ${at}`);
  const latest = loadLatestCheckpoint(out)!;
  t.equal(latest.trainer.iteration, at, 'the checkpoint holds the state at the stop');
  latest.trainer.dispose();
  t.equal(train(out, { resume: '' }).status, 0);
  t.same(losses(out), losses(straight));
});

t.test('a damaged newest checkpoint is detected and the previous good one used', async (t) => {
  const out = join(dir, 'killed');
  const path = join(out, CHECKPOINT);
  const bytes = readFileSync(path);
  bytes[bytes.length - 100] ^= 0xff;
  writeFileSync(path, bytes);
  const latest = loadLatestCheckpoint(out)!;
  t.match(latest.skipped, [/^[^\n]*checkpoint\.safetensors: the tensor data does not match its checksum: the file is corrupted/]);
  t.equal(latest.path, join(out, PREVIOUS_CHECKPOINT));
  t.equal(latest.trainer.iteration, 10, 'the state at the end of epoch 2');
  latest.trainer.dispose();
  const r = train(out, { resume: '', 'saveckp-freq': '100' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /warning: passed over a damaged checkpoint: .*checkpoint\.safetensors/);
  t.match(r.stdout, /resuming from .*checkpoint\.previous\.safetensors at epoch 2, iteration 10/);
  t.same(losses(out), losses(straight), 'and the rest of the run is redone exactly');
});

t.test('user mistakes: clear messages, exit codes 1 or 2, no stack trace', async (t) => {
  const x = join(dir, 'x');
  const cases: [string, Record<string, string>, number, RegExp][] = [
    ['a run already there', {}, 1, /already holds a training run: pass --resume/],
    ['other options on resume', { resume: '', epochs: '4' }, 1, /cannot resume with other training options .*epochs 4 \(the checkpoint has 3\)/],
    ['missing data', { 'output-dir': x, 'data-path': join(dir, 'missing') }, 1, /missing: no such file or directory/],
    ['a bad number', { 'output-dir': x, lr: 'fast' }, 2, /--lr expects a number, got 'fast'/],
    ['an unknown option', { 'output-dir': x, frobnicate: '' }, 2, /unknown option --frobnicate/],
    ['no CUDA', { 'output-dir': x, device: 'cuda' }, 1, /--device cuda: /],
    ['a batch larger than the data', { 'output-dir': x, 'batch-size': '64' }, 1, /40 images, fewer than one batch of 64/],
  ];
  for (const [what, changes, code, message] of cases) {
    const r = spawnSync(process.execPath, args(straight, changes), { cwd: root, encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, code, `${what}: exit ${code}`);
    t.match(r.stderr, message, what);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
