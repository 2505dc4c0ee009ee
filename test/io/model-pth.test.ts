// Official weights through our model: a .pth written by PyTorch (the released backbone-only layout and
// a full training checkpoint), imported, gives PyTorch's outputs in our model; and our export loads
// strictly (weights_only=True) into the official model and gives our outputs there.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DINOHead, MultiCropWrapper, VisionTransformer, dispose, noGrad, readBackbone, readSafetensors, tidy, writePth } from '../../lib/index.ts';
import { loadCheckpoint } from '../../lib/io/checkpoint.ts';
import { convert } from '../../lib/io/convert.ts';
import { assertClose } from '../helpers/close.ts';
import { pythonMissing } from './python.ts';

const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'reference', 'model_io.py');
const tol = { atol: 1e-5, rtol: 1e-5 };

function python(args: string[]): void {
  const r = spawnSync('python3', [script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`);
}

t.test('official .pth files in our model, and ours in the official model', async (t) => {
  const missing = pythonMissing('torch', 'safetensors');
  if (missing) return t.plan(0, `skipped: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'dino-model-pth-'));
  try {
    python(['make', dir]);
    tidy(() => {
      const reference = readSafetensors(join(dir, 'reference.safetensors'));
      const ref = new Map(reference.tensors);
      const meta = JSON.parse(reference.metadata.config);
      const head = JSON.parse(reference.metadata.head);
      const images = ref.get('images')!;
      const makeBackbone = () => new VisionTransformer({ imgSize: meta.img_size, patchSize: meta.patch_size, embedDim: meta.embed_dim, depth: meta.depth, numHeads: meta.num_heads }).eval();
      const makeWrapper = () =>
        new MultiCropWrapper(makeBackbone(), new DINOHead({ inDim: meta.embed_dim, outDim: head.out_dim, hiddenDim: head.hidden_dim, bottleneckDim: head.bottleneck_dim })).eval();

      // The released layout: a teacher backbone state dict.
      const backbone = makeBackbone();
      const weights = readBackbone(join(dir, 'backbone.pth'));
      backbone.loadStateDict(weights);
      dispose(weights.map(([, w]) => w));
      assertClose(t, noGrad(() => backbone.forward(images)), ref.get('teacher_features')!.data(), tol, 'backbone.pth: CLS features equal PyTorch');

      // A full training checkpoint, converted to ours: student (module. stripped) and teacher with heads.
      convert(join(dir, 'full.pth'), join(dir, 'full.safetensors'));
      const ckpt = loadCheckpoint(join(dir, 'full.safetensors'));
      const under = (p: string) => [...ckpt.tensors].filter(([k]) => k.startsWith(p)).map(([k, v]): [string, (typeof v)] => [k.slice(p.length), v]);
      const student = makeWrapper();
      const teacher = makeWrapper();
      student.loadStateDict(under('student.'));
      teacher.loadStateDict(under('teacher.'));
      t.equal(ckpt.meta.epoch, 3, 'epoch carried over');
      t.same((ckpt.meta.args as Record<string, unknown>).out_dim, head.out_dim, 'args carried over');
      t.ok(ckpt.tensors.has('loss.center'), 'the centre carried over');
      assertClose(t, noGrad(() => student.forward([images])), ref.get('student_output')!.data(), tol, 'full.pth: student head outputs equal PyTorch');
      assertClose(t, noGrad(() => teacher.forward([images])), ref.get('teacher_output')!.data(), tol, 'full.pth: teacher head outputs equal PyTorch');
      dispose([...ckpt.tensors.values()]);

      // Our export, loaded strictly by the official model.
      writePth(join(dir, 'ours.pth'), teacher.backbone.stateDict());
      python(['check', dir, join(dir, 'ours.pth')]);
      const check = readSafetensors(join(dir, 'check.safetensors')).tensors[0][1];
      assertClose(t, check, noGrad(() => teacher.backbone.forward(images)).data(), tol, 'ours.pth loads strictly into the official model and gives our features');
      [backbone, student, teacher].forEach((m) => m.dispose());
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
