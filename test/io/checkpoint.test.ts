// Our checkpoint: tensors and JSON metadata round-trip exactly; saving is atomic (a failure during the
// write leaves the old checkpoint intact and no temporary file; a writer killed mid-write never leaves
// a truncated checkpoint under the final name); bad metadata and foreign files are clear errors.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { addon, Generator, tensor, type Tensor } from '../../lib/index.ts';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../../lib/io/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'checkpoint-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function disposeAll(m: Iterable<[string, Tensor]>): void {
  for (const [, x] of m) x.dispose();
}

const gen = new Generator(7);
// A training run's generator, mid-sequence (with a spare Box-Muller value in its state).
const run = new Generator(11);
run.normal();
const meta: CheckpointMeta = {
  epoch: 3,
  iteration: 7506,
  args: { arch: 'vit_small', lr: 0.0005, global_crops_scale: [0.4, 1], use_fp16: true, output_dir: 'runs/ünï', seed: 0, note: null },
  optimizer: {
    param_groups: [{ lr: 8.9e-5, weight_decay: 0.040071, betas: [0.9, 0.999], eps: 1e-8, params: ['backbone.cls_token'] }],
    state: { 'backbone.cls_token': { step: 7506 } },
  },
  rng: { generator: run.getState() as unknown as CheckpointMeta },
};

t.test('save -> load: tensors in order, dtypes and bits, metadata exactly', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const tensors: [string, Tensor][] = [
    ['student.backbone.cls_token', tensor(gen.normalArray(6), [1, 1, 6])],
    ['teacher.backbone.cls_token', tensor(gen.normalArray(6), [1, 1, 6])],
    ['optimizer.backbone.cls_token.exp_avg', tensor(gen.normalArray(6), [1, 1, 6])],
    ['optimizer.backbone.cls_token.exp_avg_sq', tensor(gen.uniformArray(6, 0, 1), [1, 1, 6])],
    ['loss.center', tensor(gen.normalArray(4), [1, 4])],
    ['half', tensor(new Uint16Array([0x3c00, 0x7bff]), [2], { dtype: 'float16' })],
  ];
  const p = join(dir, 'ckpt.safetensors');
  saveCheckpoint(p, { tensors, meta });
  const back = loadCheckpoint(p);
  t.same([...back.tensors.keys()], tensors.map(([n]) => n), 'names in the saved order');
  for (const [name, x] of tensors) {
    const y = back.tensors.get(name)!;
    t.equal(y.dtype, x.dtype, `${name}: dtype`);
    t.same(y.shape, x.shape, `${name}: shape`);
    t.same([...y.rawData()], [...x.rawData()], `${name}: bit-identical`);
  }
  t.same(back.meta, meta, 'metadata equal (numbers exact, nested objects, unicode, null)');
  const restored = new Generator(0);
  restored.setState(back.meta.rng && (back.meta.rng as any).generator);
  t.same([restored.normal(), restored.normal()], [run.normal(), run.normal()], 'a generator restored from the metadata continues the same sequence');
  const raw = readSafetensors(p);
  t.equal(raw.metadata.format, CHECKPOINT_FORMAT, 'the format marker');
  t.equal(raw.metadata.format_version, '1');
  t.equal(raw.metadata.epoch, '3', 'each top-level key is its own JSON entry');
  disposeAll(raw.tensors);
  disposeAll(back.tensors);
  disposeAll(tensors);
  t.equal(addon.memoryStats('cpu').inUse, before, 'no tensor leaked');
});

t.test('a failure during the write leaves the old checkpoint intact and no temporary file', async (t) => {
  const p = join(dir, 'atomic.safetensors');
  const old = tensor([1, 2, 3], [3]);
  saveCheckpoint(p, { tensors: [['w', old]], meta: { epoch: 1 } });
  const oldBytes = readFileSync(p);
  // The second tensor is disposed: reading its values fails after the header and the first tensor's
  // data have been written.
  const first = tensor(new Float32Array(1 << 16).fill(5), [1 << 16]);
  const broken = tensor([4], [1]);
  broken.dispose();
  t.throws(() => saveCheckpoint(p, { tensors: [['first', first], ['w', broken]], meta: { epoch: 2 } }), { code: 'ERR_DINO_DISPOSED' });
  t.same(readFileSync(p), oldBytes, 'the old file is byte-for-byte intact');
  t.same(readdirSync(dir).filter((f) => f.startsWith('atomic')), ['atomic.safetensors'], 'no temporary file is left');
  const back = loadCheckpoint(p);
  t.same(back.meta, { epoch: 1 });
  disposeAll(back.tensors);
  old.dispose();
  first.dispose();
});

t.test('a writer killed mid-write never leaves a truncated checkpoint under the final name', async (t) => {
  const p = join(dir, 'killed.safetensors');
  const child = join(dir, 'writer.ts');
  const lib = (f: string) => pathToFileURL(join(root, 'lib', f)).href;
  writeFileSync(child, `
import { tensor } from '${lib('index.ts')}';
import { saveCheckpoint } from '${lib('io/checkpoint.ts')}';
const values = tensor(new Float32Array(4 << 20).fill(1), [4 << 20]);
for (let i = 0; ; i++) {
  saveCheckpoint(process.argv[2], { tensors: [['w', values]], meta: { version: i } });
  process.stdout.write(i + '\\n');
}`);
  for (const delay of [0, 37, 111]) {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, p], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let saved = -1;
    await new Promise<void>((done) => {
      proc.stdout.on('data', (d: Buffer) => {
        saved = Number(d.toString().trim().split('\n').pop());
        // After the first complete save, kill it at some point of a later write.
        if (saved >= 1 && !proc.killed) setTimeout(() => proc.kill('SIGKILL'), delay);
      });
      proc.on('exit', () => done());
    });
    const back = loadCheckpoint(p);
    const w = back.tensors.get('w')!;
    t.equal(w.size, 4 << 20, `killed after ${delay} ms: the checkpoint under the final name is complete (version ${(back.meta as any).version})`);
    t.ok((back.meta.version as number) >= saved, 'and at least as new as the last save reported');
    t.ok(w.data().every((v) => v === 1), 'with all its values');
    disposeAll(back.tensors);
    const leftovers = readdirSync(dir).filter((f) => f.startsWith('killed.safetensors.tmp-'));
    if (leftovers.length > 0) t.comment(`the killed writer left ${leftovers.join(', ')} (expected after a crash; safe to delete)`);
    for (const f of leftovers) rmSync(join(dir, f));
  }
});

t.test('metadata that JSON cannot hold exactly is refused before anything is written', async (t) => {
  const x = tensor([1], [1]);
  const p = join(dir, 'refused.safetensors');
  const bad: [string, CheckpointMeta, RegExp][] = [
    ['NaN', { loss: NaN }, /meta\.loss: NaN cannot be stored as JSON/],
    ['Infinity deep inside', { args: { clip: [1, Infinity] } }, /meta\.args\.clip\[1\]: Infinity/],
    ['undefined', { epoch: undefined as unknown as number }, /meta\.epoch: undefined cannot be stored/],
    ['a bigint', { step: 3n as unknown as number }, /meta\.step: bigint cannot be stored/],
    ['a tensor', { center: x as unknown as number }, /meta\.center: Tensor cannot be stored as JSON/],
    ['a Map', { m: new Map() as unknown as number }, /meta\.m: Map cannot be stored/],
    ['the reserved format key', { format: 'x' }, /reserved key 'format'/],
    ['the reserved version key', { format_version: 2 }, /reserved key 'format_version'/],
  ];
  for (const [what, m, message] of bad) t.throws(() => saveCheckpoint(p, { tensors: [['x', x]], meta: m }), { message }, what);
  const deep: CheckpointMeta = {};
  let at = deep;
  for (let i = 0; i < 40; i++) at = (at.next = {}) as CheckpointMeta;
  t.throws(() => saveCheckpoint(p, { tensors: [], meta: deep }), /nested deeper than 32 levels/);
  t.same(readdirSync(dir).filter((f) => f.startsWith('refused')), [], 'nothing written');
  x.dispose();
});

t.test('foreign and damaged files are clear errors, with no tensor leaked', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const x = tensor([1, 2], [2]);
  const file = (name: string, metadata: Record<string, string>) => {
    const p = join(dir, name);
    writeSafetensors(p, [['x', x]], metadata);
    return p;
  };
  t.throws(() => loadCheckpoint(file('plain.safetensors', {})), /not a dino-ts checkpoint .*plain safetensors state dict/);
  t.throws(() => loadCheckpoint(file('hf.safetensors', { format: 'pt' })), /not a dino-ts checkpoint/);
  t.throws(() => loadCheckpoint(file('newer.safetensors', { format: CHECKPOINT_FORMAT, format_version: '2' })), /format 2 was written by a newer dino-ts; this one reads format 1/);
  t.throws(() => loadCheckpoint(file('noversion.safetensors', { format: CHECKPOINT_FORMAT })), /invalid checkpoint format_version/);
  t.throws(() => loadCheckpoint(file('badjson.safetensors', { format: CHECKPOINT_FORMAT, format_version: '1', epoch: '{3' })), /metadata 'epoch' is not valid JSON/);
  t.throws(() => loadCheckpoint(file('deep.safetensors', { format: CHECKPOINT_FORMAT, format_version: '1', a: '['.repeat(1000) + ']'.repeat(1000) })), /metadata 'a'(\[0\])+: nested deeper than 32 levels/);
  x.dispose();
  t.equal(addon.memoryStats('cpu').inUse, before, 'the tensors read before each error were freed');
});
