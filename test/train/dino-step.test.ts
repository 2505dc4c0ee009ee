// Two DINO training steps against the official modules run in PyTorch (scripts/reference/dino_step.py):
// same initial weights, crops and drop-path masks; the head outputs, loss, every raw gradient, the
// student, teacher and centre after each step must match. The small configuration's fixture is
// committed; the vit_tiny-sized one is generated when PyTorch is installed (as in CI).
//
// Each step is checked in two halves. Forward and backward: our outputs and gradients against
// PyTorch's. Then PyTorch's gradients are put in place of ours, so that clipping, freezing, AdamW, the
// EMA and the centre are checked on identical inputs. Without that, AdamW's first steps (which move
// each element by about lr * sign(g)) would turn rounding noise in gradients that are exactly zero in
// exact arithmetic (the qkv key bias: softmax ignores a shift shared by all scores) into differences of
// a whole learning rate, in both directions, in PyTorch as much as here.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, dispose, ops, tidy, type Tensor } from '../../lib/index.ts';
import { readSafetensors } from '../../lib/io/safetensors.ts';
import { DinoTrainer, type DinoConfig } from '../../lib/train/trainer.ts';
import { assertClose, type Tolerance } from '../helpers/close.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Tolerances {
  forward: Tolerance;
  grad: Tolerance;
  params: Tolerance;
}

function replay(t: Test, file: string, tol: Tolerances): void {
  const { tensors, metadata } = readSafetensors(file);
  const ref = new Map(tensors);
  const meta = { config: JSON.parse(metadata.config), steps: JSON.parse(metadata.steps) };
  const { itersPerEpoch, globalSize: _g, localSize: _l, ...config } = meta.config;
  const trainer = new DinoTrainer(config as Partial<DinoConfig>, itersPerEpoch);
  try {
    const under = (prefix: string): [string, Tensor][] => [...ref].filter(([k]) => k.startsWith(prefix)).map(([k, v]): [string, Tensor] => [k.slice(prefix.length), v]);
    const compareState = (what: string, got: [string, Tensor][], prefix: string) => {
      const want = new Map(under(prefix));
      t.same(got.map(([k]) => k), [...want.keys()], `${what}: the same keys in the same order`);
      for (const [k, v] of got) assertClose(t, v, want.get(k)!.data(), tol.params, `${what} ${k}`);
    };
    trainer.student.loadStateDict(under('init.'));
    trainer.teacher.loadStateDict(under('init.'));
    meta.steps.forEach((s: { loss: number; lr: number; wd: number; momentum: number; masks: number }, step: number) => {
      const p = `step${step}.`;
      const crops = Array.from({ length: config.localCropsNumber + 2 }, (_, i) => ref.get(`${p}crop${i}`)!);
      let drawn = 0;
      const r = trainer.step(crops, {
        dropPathMasks: ({ batch }) => {
          const m = ref.get(`${p}mask${drawn++}`)!.data();
          if (m.length !== batch) throw new Error(`mask ${drawn - 1} has ${m.length} entries, the call ${batch}`);
          return m;
        },
        onOutputs: (teacherOut, studentOut) => {
          assertClose(t, teacherOut, ref.get(`${p}teacher_output`)!.data(), tol.forward, `step ${step}: teacher output`);
          assertClose(t, studentOut, ref.get(`${p}student_output`)!.data(), tol.forward, `step ${step}: student output`);
        },
        onGradients: (grads) => {
          const want = new Map(under(`${p}grad.`));
          t.same([...grads].filter(([, g]) => g !== null).map(([k]) => k), [...want.keys()], `step ${step}: gradients for the same parameters`);
          for (const [k, g] of grads) {
            if (g === null || !want.has(k)) continue;
            assertClose(t, g, want.get(k)!.data(), tol.grad, `step ${step}: gradient of ${k}`);
            ops.assign(g, want.get(k)!);
          }
        },
      });
      t.equal(drawn, s.masks, `step ${step}: ${s.masks} drop-path masks used, as drawn by PyTorch`);
      assertClose(t, [r.loss], [s.loss], tol.forward, `step ${step}: loss`);
      t.same([r.lr, r.weightDecay, r.momentum], [s.lr, s.wd, s.momentum], `step ${step}: schedules`);
      compareState(`step ${step}: student`, trainer.student.stateDict(), `${p}student.`);
      compareState(`step ${step}: teacher`, trainer.teacher.stateDict(), `${p}teacher.`);
      assertClose(t, trainer.loss.center, ref.get(`${p}center`)!.data(), tol.forward, `step ${step}: centre`);
    });
  } finally {
    trainer.dispose();
    dispose(tensors.map(([, v]) => v));
  }
}

// float32 through a dozen layers: forward within 1e-5 relative; gradients within 1e-4 relative. From
// identical gradients the update is a few float32 operations per element: parameters within 1e-6
// (they move by about lr = 1e-3 per step).
const tolerances: Tolerances = {
  forward: { atol: 1e-5, rtol: 1e-5 },
  grad: { atol: 1e-6, rtol: 1e-4 },
  params: { atol: 1e-6, rtol: 1e-6 },
};

t.test('two steps of a small DINO (trainable weight_g) match PyTorch', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  tidy(() => replay(t, join(root, 'test', 'fixtures', 'step', 'tiny.safetensors'), tolerances));
  t.equal(addon.memoryStats('cpu').inUse, before, 'everything freed');
});

t.test('two steps of a vit_tiny-sized DINO match PyTorch', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dino-step-'));
  try {
    const file = join(dir, 'vit_tiny.safetensors');
    const py = spawnSync(process.env.PYTHON ?? 'python3', [join(root, 'scripts', 'reference', 'dino_step.py'), 'vit_tiny', file], { encoding: 'utf8' });
    if (py.error || py.status !== 0) {
      t.plan(0, `skipped: PyTorch reference not available here (${(py.error?.message ?? py.stderr).trim().split('\n').pop()})`);
      return;
    }
    tidy(() => replay(t, file, tolerances));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
