// The ViT against the official modules written in PyTorch (scripts/fixtures/model.py,
// scripts/reference/dino_model.py): state-dict keys, parameter counts, and the eval-mode outputs of a
// small model loaded with PyTorch's weights.
import t from 'tap';
import {
  DINOHead, Generator, MultiCropWrapper, VisionTransformer, interpolatePosEncoding, ops, sampleDropPathMasks, tensor, tidy, vitBase, vitSmall,
  vitTiny, type DropPathRequest,
} from '../../lib/index.ts';
import { assertClose } from '../helpers/close.ts';
import { fromFixture, loadFixtures } from '../helpers/fixtures.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { fixtureBackbone } from './fixture-model.ts';

const cases = loadFixtures('model');
const bb = cases.backbone;

// Two blocks of float32 GEMMs, layer norms, softmax and GELU on values up to ~3: observed 5.9e-6 at
// most (an intermediate layer), 1.6e-6 on CLS features, 1.1e-6 on attention probabilities.
const fwdTol = { atol: 1e-5, rtol: 1e-5 };

t.test('state-dict keys, shapes and trainable parameters are the official ones, in order', async (t) => {
  for (const name of ['keys_no_bn', 'keys_bn']) {
    const a = cases[name].attrs;
    const model = new MultiCropWrapper(vitSmall({ patchSize: 16 }), new DINOHead({ inDim: 384, outDim: a.out_dim, useBn: a.use_bn }));
    const sd = model.stateDict();
    t.same(sd.map(([k]) => k), a.keys, `${name}: ${a.keys.length} keys in PyTorch's order`);
    t.same(sd.map(([, v]) => [...v.shape]), a.shapes, `${name}: shapes`);
    t.same(model.namedTrainableParameters().map(([k]) => k), a.trainable, `${name}: trainable parameters (weight_g is not)`);
    model.dispose();
  }
});

t.test('the factories have the official parameter counts', async (t) => {
  const counts = cases.param_counts.attrs;
  const count = (m: VisionTransformer) => {
    const n = m.parameters().reduce((s, p) => s + p.size, 0);
    m.dispose();
    return n;
  };
  t.equal(count(vitTiny()), counts.vit_tiny_16, 'vit_tiny/16');
  t.equal(count(vitSmall()), counts.vit_small_16, 'vit_small/16 (21.7M)');
  t.equal(count(vitSmall({ patchSize: 8 })), counts.vit_small_8, 'vit_small/8: 785 position embeddings');
  t.equal(count(vitBase()), counts.vit_base_16, 'vit_base/16 (85.8M)');
  const s = vitSmall({ dropPathRate: 0.1 });
  t.same(s.blocks.items.map((b) => b.dropPathRate), Array.from({ length: 12 }, (_, i) => (0.1 * i) / 11), 'drop-path rates are linspace(0, 0.1, 12)');
  s.dispose();
});

t.test('eval-mode outputs match PyTorch: CLS features, intermediate layers, last self-attention', async (t) => {
  tidy(() => {
    const vit = fixtureBackbone(bb).eval();
    // global: the grid pos_embed was made for; local and rect: position embeddings resampled (rect: H != W)
    for (const [name, key] of [['global', 'crop0'], ['local', 'crop2'], ['rect', 'rect']]) {
      const img = fromFixture(bb, key);
      const cls = vit.forward(img);
      t.same([...cls.shape], bb.tensors[`cls_${name}`].shape, `${name}: CLS shape (B, D)`);
      assertClose(t, cls, bb.tensors[`cls_${name}`].data, fwdTol, `${name}: CLS features`);
      const attn = vit.getLastSelfAttention(img);
      t.same([...attn.shape], bb.tensors[`attn_${name}`].shape, `${name}: attention shape (B, H, N + 1, N + 1)`);
      assertClose(t, attn, bb.tensors[`attn_${name}`].data, fwdTol, `${name}: last self-attention`);
      if (bb.tensors[`intermediate0_${name}`] === undefined) continue;
      const layers = vit.getIntermediateLayers(img, 2);
      t.equal(layers.length, 2, `${name}: two intermediate layers`);
      layers.forEach((l, i) => assertClose(t, l, bb.tensors[`intermediate${i}_${name}`].data, fwdTol, `${name}: intermediate layer ${i}`));
      // The CLS feature is the last intermediate layer's token 0.
      assertClose(t, ops.slice(layers[1], 1, 0, 1), cls.data(), { atol: 0, rtol: 0 }, `${name}: forward() is norm(x)[:, 0]`);
    }
    vit.dispose();
  });
});

t.test('position embeddings: unchanged on the grid they were made for, resampled otherwise', async (t) => {
  tidy(() => {
    const pos = tensor(randomValues(17 * 4, 1), [1, 17, 4]);
    t.equal(interpolatePosEncoding(pos, 8, 32, 32), pos, 'a square image with N patches gets pos_embed itself');
    t.same([...interpolatePosEncoding(pos, 8, 16, 24).shape], [1, 1 + 2 * 3, 4], '16 x 24 px: a 2 x 3 grid');
    t.same([...interpolatePosEncoding(pos, 8, 39, 33).shape], [1, 1 + 4 * 4, 4], 'sizes not a multiple of p: floor');
    assertClose(t, ops.slice(interpolatePosEncoding(pos, 8, 16, 24), 1, 0, 1), pos.data().slice(0, 4), { atol: 0, rtol: 0 }, 'the CLS entry stays in front');
    t.throws(() => interpolatePosEncoding(tensor(randomValues(13 * 4, 2), [1, 13, 4]), 8, 16, 16), /12 patch positions, not a square grid/);
  });
});

t.test('stochastic depth', async (t) => {
  const x = () => tensor(randomValues(2 * 3 * 16 * 16, 3), [2, 3, 16, 16]);
  const cfg = { imgSize: 16, patchSize: 8, embedDim: 8, depth: 3, numHeads: 2, dropPathRate: 0.5 };
  const asked: DropPathRequest[] = [];
  const record = (r: DropPathRequest) => {
    asked.push(r);
    return new Array(r.batch).fill(1);
  };
  tidy(() => {
    const vit = new VisionTransformer({ ...cfg, generator: new Generator(1) });
    vit.forward(x(), { dropPathMasks: record });
    t.same(
      asked.map(({ block, branch, batch, keepProb }) => [block, branch, batch, keepProb]),
      [[1, 'attn', 2, 0.75], [1, 'mlp', 2, 0.75], [2, 'attn', 2, 0.5], [2, 'mlp', 2, 0.5]],
      'one mask per branch and sample, block by block; none for block 0 (rate 0)',
    );
    asked.length = 0;
    vit.eval().forward(x(), { dropPathMasks: record });
    t.equal(asked.length, 0, 'eval mode asks for no masks');
    vit.train();
    t.throws(() => vit.forward(x()), /block 1: stochastic depth \(rate 0.25\) in training mode needs a generator or dropPathMasks/);
    t.throws(() => vit.forward(x(), { dropPathMasks: () => [1, 0.5] }), /a drop-path mask must hold 2 values, each 0 or 1; got \[1, 0.5\]/);
    t.throws(() => vit.forward(x(), { dropPathMasks: () => [1] }), /must hold 2 values/);
    // All-ones masks scale each branch by 1 / keep; PyTorch's masks are replayed in the multi-crop test.
    const a = vit.forward(x(), { generator: new Generator(5) }).data();
    const b = vit.forward(x(), { generator: new Generator(5) }).data();
    t.same(a, b, 'the same generator state draws the same masks');
    const noDrop = new VisionTransformer({ ...cfg, dropPathRate: 0 });
    noDrop.loadStateDict(vit.stateDict());
    asked.length = 0;
    assertClose(t, noDrop.forward(x(), { dropPathMasks: record }), vit.eval().forward(x()).data(), { atol: 0, rtol: 0 }, 'rate 0 in training mode: no masks, the eval output');
    t.equal(asked.length, 0, 'rate 0 asks for no masks');
    vit.dispose();
    noDrop.dispose();
  });
  // floor(keep + U) keeps a sample with probability keep: 20000 draws, std of the mean 0.0032.
  const draw = sampleDropPathMasks(new Generator(9));
  const m = draw({ block: 1, branch: 'attn', batch: 20000, keepProb: 0.7 });
  const kept = Array.from(m).reduce((s, v) => s + v, 0) / m.length;
  t.ok(Math.abs(kept - 0.7) < 0.015, `kept fraction ${kept.toFixed(4)} is 0.7 within 0.015`);
  t.ok(Array.from(m).every((v) => v === 0 || v === 1), 'masks are 0 or 1');
});

t.test('bad configurations and inputs throw clear errors', async (t) => {
  const base = { patchSize: 4, embedDim: 8, depth: 1, numHeads: 2, imgSize: 8 };
  t.throws(() => new VisionTransformer({ ...base, numHeads: 3 }), /embedDim 8 is not divisible by numHeads 3/);
  t.throws(() => new VisionTransformer({ ...base, depth: 0 }), /depth must be a positive integer, got 0/);
  t.throws(() => new VisionTransformer({ ...base, patchSize: 16 }), /imgSize 8 is smaller than patchSize 16/);
  t.throws(() => new VisionTransformer({ ...base, dropPathRate: 1 }), /dropPathRate must be in \[0, 1\), got 1/);
  const vit = new VisionTransformer(base);
  tidy(() => {
    t.throws(() => vit.forward(tensor(randomValues(2 * 8 * 8, 1), [2, 8, 8])), /expected images \(B, 3, H, W\) with H, W >= 4, got \[2, 8, 8\]/);
    t.throws(() => vit.forward(tensor(randomValues(2 * 8 * 8, 1), [1, 2, 8, 8])), /expected images \(B, 3, H, W\).*got \[1, 2, 8, 8\]/);
    t.throws(() => vit.forward(tensor(randomValues(3 * 2 * 8, 1), [1, 3, 2, 8])), /H, W >= 4, got \[1, 3, 2, 8\]/);
    t.throws(() => vit.getIntermediateLayers(tensor(randomValues(3 * 64, 1), [1, 3, 8, 8]), 0), /n must be a positive integer, got 0/);
    t.same([...vit.forward(tensor(randomValues(3 * 64, 1), [1, 3, 8, 8])).shape], [1, 8], 'still usable');
  });
  vit.dispose();
});
