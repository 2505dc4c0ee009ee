// The multi-crop forward and backward (backbone in training mode with PyTorch's drop-path masks
// replayed, then the head on every crop's features) against the official modules in PyTorch, for each
// head variant: batch norm or not, last-layer norm fixed or trained.
import t from 'tap';
import { Generator, addon, noGrad, ops, tensor, tidy, valueAndGrads } from '../../lib/index.ts';
import { assertClose } from '../helpers/close.ts';
import { fromFixture, loadFixtures } from '../helpers/fixtures.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { fixtureModel, replayMasks, stateFromFixture } from './fixture-model.ts';

const cases = loadFixtures('model');
const bb = cases.backbone;
const variants = Object.keys(cases).filter((k) => k.startsWith('multicrop_'));
const crops = () => [0, 1, 2, 3].map((i) => fromFixture(bb, `crop${i}`));

// Forward: two blocks and the head in float32 on values up to ~3: observed 1.7e-6 on features, 1.0e-6
// on the head outputs. Gradients: observed 5.7e-6 at most (|grad| up to ~3); the Linear biases before a
// batch norm have an exact gradient of 0, which both sides return as rounding noise of ~2e-7.
const fwdTol = { atol: 1e-5, rtol: 1e-5 };
const gradTol = { atol: 1e-5, rtol: 1e-4 };
// The running statistics: one double-precision update rounded to float32 (observed 2.8e-7 at 1.3).
const statTol = { atol: 1e-7, rtol: 1e-6 };

t.test('forward and all parameter gradients match PyTorch for each head variant', async (t) => {
  for (const name of variants) {
    const c = cases[name];
    const model = fixtureModel(bb, c);
    tidy(() => {
      t.same(model.namedTrainableParameters().map(([k]) => k), c.attrs.trainable, `${name}: trainable parameters`);
      const masks = replayMasks(c);
      const params = model.namedTrainableParameters();
      let features: Float32Array | null = null;
      let out: Float32Array | null = null;
      let outShape: number[] = [];
      const { grads } = valueAndGrads(() => {
        const f = model.backboneFeatures(crops(), { dropPathMasks: masks });
        features = f.data();
        const y = model.head.forward(f);
        [out, outShape] = [y.data(), [...y.shape]];
        return ops.sum(ops.mul(y, fromFixture(c, 'w')));
      }, params.map(([, p]) => p));
      t.equal(masks.left(), 0, `${name}: every mask PyTorch drew was asked for, in order`);
      assertClose(t, features!, c.tensors.features.data, fwdTol, `${name}: backbone features (8 rows, crop-major)`);
      t.same(outShape, c.tensors.out.shape, `${name}: output shape (nCrops * B, outDim)`);
      assertClose(t, out!, c.tensors.out.data, fwdTol, `${name}: head output`);
      let compared = 0;
      params.forEach(([k], i) => {
        const expected = c.tensors[`grad.${k}`];
        if (expected === undefined) return;
        assertClose(t, grads[i]!, expected.data, gradTol, `${name}: gradient of ${k}`);
        compared++;
      });
      t.equal(compared, c.attrs.backbone_grads ? params.length : params.filter(([k]) => k.startsWith('head.')).length, `${name}: ${compared} gradients compared`);
      const state = new Map(model.stateDict());
      for (const k of Object.keys(c.tensors).filter((k) => k.startsWith('after.'))) {
        assertClose(t, state.get(k.slice('after.'.length))!, c.tensors[k].data, statTol, `${name}: ${k.slice('after.'.length)} after the step`);
      }
    });
    // The head alone on PyTorch's features: the gradient reaching the backbone.
    model.head.loadStateDict(stateFromFixture(c, 'head.'));
    tidy(() => {
      const features = fromFixture(c, 'features');
      const { grads } = valueAndGrads(() => ops.sum(ops.mul(model.head.forward(features), fromFixture(c, 'w'))), [features]);
      assertClose(t, grads[0]!, c.tensors.grad_features.data, gradTol, `${name}: gradient of the features`);
    });
    model.dispose();
  }
});

t.test('crops are grouped by consecutive equal width, one backbone call per group', async (t) => {
  const model = fixtureModel(bb, cases.multicrop_no_bn_norm_last).eval();
  const calls: number[][] = [];
  const forward = model.backbone.forward.bind(model.backbone);
  model.backbone.forward = (x, opts) => {
    calls.push([...x.shape]);
    return forward(x, opts);
  };
  tidy(() => {
    const [g0, g1, l0, l1] = crops();
    const all = model.backboneFeatures([g0, g1, l0, l1]);
    t.same(calls, [[4, 3, 12, 12], [4, 3, 8, 8]], '[g, g, l, l]: two calls on the concatenations');
    const each = [g0, g1, l0, l1].map((c) => forward(c).data());
    assertClose(t, all, each.flatMap((f) => Array.from(f)), { atol: 2e-6, rtol: 1e-6 }, 'the same features as one crop at a time, crop-major');
    calls.length = 0;
    model.backboneFeatures([g0, l0, g1]);
    t.same(calls.map((s) => s[0]), [2, 2, 2], '[g, l, g]: three calls (only consecutive crops are grouped, as officially)');
    calls.length = 0;
    t.same([...model.forward([l0]).shape], [2, cases.multicrop_no_bn_norm_last.attrs.out_dim], 'a single crop');
    t.throws(() => model.forward([]), /no crops given/);
    const tall = tensor(randomValues(2 * 3 * 16 * 8, 1), [2, 3, 16, 8]);
    t.throws(() => model.forward([l0, tall]), /crops 0\.\.1 share a width, so they must all be \(B, C, H, W\) with one H; got \[2, 3, 8, 8\], \[2, 3, 16, 8\]/);
  });
  model.dispose();
});

t.test('a teacher under noGrad records nothing; a student step frees everything it made', async (t) => {
  const student = fixtureModel(bb, cases.multicrop_bn_free_last);
  const teacher = fixtureModel(bb, cases.multicrop_bn_free_last, 0);
  teacher.loadStateDict(student.stateDict());
  const gen = new Generator(3);
  const step = () =>
    tidy(() => {
      const images = crops();
      const { value, grads } = valueAndGrads(() => {
        const t = noGrad(() => teacher.forward(images.slice(0, 2)));
        const s = student.forward(images, { generator: gen });
        return ops.mean(ops.mul(ops.slice(s, 0, 0, 4), t));
      }, [...student.parameters(), ...teacher.parameters()]);
      const n = student.parameters().length;
      return { loss: value.item(), studentGrads: grads.slice(0, n).filter((g) => g !== null).length, teacherGrads: grads.slice(n).filter((g) => g !== null).length };
    });
  const first = step();
  t.equal(first.teacherGrads, 0, 'no teacher parameter gets a gradient');
  t.equal(first.studentGrads, student.namedTrainableParameters().length, 'every trainable student parameter gets one (frozen weight_g is not watched here either way)');
  const before = addon.memoryStats('cpu').inUse;
  step();
  step();
  t.equal(addon.memoryStats('cpu').inUse, before, 'two more steps leave no tensor behind');
  t.ok(Number.isFinite(first.loss), 'the loss is finite');
  student.dispose();
  teacher.dispose();
});
