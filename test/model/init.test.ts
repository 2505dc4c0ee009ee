// The official initialisation, checked statistically (our Generator is not PyTorch's random stream):
// truncated normal std 0.02 for Linear weights, cls_token and pos_embed; zero biases; LayerNorm 1 / 0;
// PyTorch's default U(+-1/sqrt(fan_in)) for the patch convolution and the head's weight_v; weight_g 1.
import t, { type Test } from 'tap';
import { DINOHead, Generator, VisionTransformer, tensor, tidy, zeros, type Tensor } from '../../lib/index.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { truncNormal } from '../../lib/model/init.ts';

interface Stats {
  n: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

function stats(xs: readonly Tensor[]): Stats {
  let n = 0;
  let s = 0;
  let s2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    for (const v of x.data()) {
      n++;
      s += v;
      s2 += v * v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  const mean = s / n;
  return { n, mean, std: Math.sqrt(s2 / n - mean * mean), min, max };
}

// For n draws of a distribution with standard deviation sigma: the sample mean is within 5 sigma/sqrt(n)
// of the true mean, and the sample std within 5 standard errors (sigma / sqrt(2n) for a normal;
// a uniform's std has a smaller error, sigma / sqrt(5n / 4)).
function checkNormal(t: Test, what: string, s: Stats, std: number): void {
  t.ok(Math.abs(s.mean) < (5 * std) / Math.sqrt(s.n), `${what}: mean ${s.mean.toExponential(2)} ~ 0 (n = ${s.n})`);
  t.ok(Math.abs(s.std - std) < (5 * std) / Math.sqrt(2 * s.n), `${what}: std ${s.std.toFixed(5)} ~ ${std}`);
  // Truncation at +-2 is 100 sigma away; 6 sigma would be exceeded once in 5e8 draws.
  t.ok(Math.max(-s.min, s.max) < 6 * std, `${what}: within 6 sigma (${Math.max(-s.min, s.max).toFixed(4)})`);
}

function checkUniform(t: Test, what: string, s: Stats, bound: number): void {
  const std = bound / Math.sqrt(3);
  t.ok(s.min >= -bound && s.max <= bound, `${what}: inside +-${bound.toFixed(5)}`);
  t.ok(s.max > 0.95 * bound && s.min < -0.95 * bound, `${what}: reaches both ends of the interval`);
  t.ok(Math.abs(s.mean) < (5 * std) / Math.sqrt(s.n), `${what}: mean ${s.mean.toExponential(2)} ~ 0 (n = ${s.n})`);
  t.ok(Math.abs(s.std - std) < (5 * std) / Math.sqrt((5 * s.n) / 4), `${what}: std ${s.std.toFixed(5)} ~ bound / sqrt(3) = ${std.toFixed(5)}`);
}

const all = (xs: readonly Tensor[], v: number) => xs.every((x) => x.data().every((e) => e === v));

t.test('the ViT', async (t) => {
  const vit = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 64, depth: 2, numHeads: 2, generator: new Generator(0) });
  const named = new Map(vit.namedParameters());
  const linearWeights = [...named].filter(([k]) => /(qkv|proj|fc1|fc2)\.weight$/.test(k) && !k.startsWith('patch_embed')).map(([, v]) => v);
  t.equal(linearWeights.length, 8, 'four Linear weights per block');
  checkNormal(t, 'Linear weights', stats(linearWeights), 0.02);
  checkNormal(t, 'cls_token and pos_embed', stats([vit.clsToken, vit.posEmbed]), 0.02);
  const biases = [...named].filter(([k]) => k.endsWith('.bias') && !k.startsWith('patch_embed') && !/norm/.test(k)).map(([, v]) => v);
  t.ok(all(biases, 0), `${biases.length} Linear biases are 0`);
  const norms = [...named].filter(([k]) => /norm\d?\./.test(k));
  t.ok(all(norms.filter(([k]) => k.endsWith('weight')).map(([, v]) => v), 1), 'LayerNorm weights are 1');
  t.ok(all(norms.filter(([k]) => k.endsWith('bias')).map(([, v]) => v), 0), 'LayerNorm biases are 0');
  // fan_in = 3 * 8 * 8 = 192: the default Conv2d init, for the weight and for the bias.
  const bound = 1 / Math.sqrt(192);
  checkUniform(t, 'patch_embed.proj.weight', stats([vit.patchEmbed.proj.weight]), bound);
  const b = stats([vit.patchEmbed.proj.bias]);
  t.ok(b.min >= -bound && b.max <= bound && b.std > 0, 'patch_embed.proj.bias: inside the same bound, not constant');

  const again = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 64, depth: 2, numHeads: 2, generator: new Generator(0) });
  const other = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 64, depth: 2, numHeads: 2, generator: new Generator(1) });
  const bytes = (p: Tensor) => Buffer.from(p.data().buffer);
  t.ok(again.parameters().every((p, i) => bytes(p).equals(bytes(vit.parameters()[i]))), 'the same seed gives the same weights');
  t.notOk(bytes(other.posEmbed).equals(bytes(vit.posEmbed)), 'another seed gives others');
  const loaded = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 64, depth: 2, numHeads: 2 });
  t.ok(all([loaded.posEmbed, loaded.blocks.items[0].attn.qkv.weight], 0), 'without a generator the weights are zeros, to be loaded');
  for (const m of [vit, again, other, loaded]) m.dispose();
});

t.test('the DINO head', async (t) => {
  for (const useBn of [false, true]) {
    const head = new DINOHead({ inDim: 64, outDim: 2048, hiddenDim: 256, bottleneckDim: 64, useBn, generator: new Generator(2) });
    const named = new Map(head.stateDict());
    const linear = useBn ? [0, 3, 6] : [0, 2, 4];
    checkNormal(t, `useBn ${useBn}: mlp Linear weights`, stats(linear.map((i) => named.get(`mlp.${i}.weight`)!)), 0.02);
    t.ok(all(linear.map((i) => named.get(`mlp.${i}.bias`)!), 0), `useBn ${useBn}: mlp biases are 0`);
    if (useBn) {
      t.ok(all([named.get('mlp.1.weight')!, named.get('mlp.4.weight')!, named.get('mlp.1.running_var')!], 1), 'batch norm weights and running variances are 1');
      t.ok(all([named.get('mlp.1.bias')!, named.get('mlp.4.running_mean')!, named.get('mlp.4.num_batches_tracked')!], 0), 'batch norm biases, running means and counters are 0');
    }
    // weight_v keeps nn.Linear's default init (it is made after _init_weights ran): U(+-1/sqrt(64)).
    checkUniform(t, `useBn ${useBn}: last_layer.weight_v`, stats([head.lastLayer.weightV]), 1 / 8);
    t.ok(all([head.lastLayer.weightG], 1), 'last_layer.weight_g is 1');
    t.same([...head.lastLayer.weightG.shape], [2048, 1], 'weight_g is (out, 1)');
    tidy(() => {
      const logits = head.forward(tensor(randomValues(5 * 64, 3), [5, 64])).data();
      t.ok(logits.every((v) => Math.abs(v) <= 1 + 1e-6), 'with weight_g 1 every logit is a cosine, in [-1, 1]');
    });
    head.dispose();
  }
  const fixed = new DINOHead({ inDim: 8, outDim: 16, hiddenDim: 8, bottleneckDim: 4 });
  const free = new DINOHead({ inDim: 8, outDim: 16, hiddenDim: 8, bottleneckDim: 4, normLastLayer: false });
  t.notOk(fixed.namedTrainableParameters().some(([k]) => k === 'last_layer.weight_g'), 'normLastLayer: weight_g is not trainable');
  t.ok(free.namedTrainableParameters().some(([k]) => k === 'last_layer.weight_g'), 'normLastLayer false: weight_g is trained');
  const one = new DINOHead({ inDim: 8, outDim: 16, nlayers: 1, bottleneckDim: 4 });
  t.same(one.stateDict().map(([k]) => k), ['mlp.weight', 'mlp.bias', 'last_layer.weight_g', 'last_layer.weight_v'], 'nlayers 1: the MLP is a single Linear');
  const two = new DINOHead({ inDim: 8, outDim: 16, nlayers: 2, hiddenDim: 8, bottleneckDim: 4, useBn: true });
  t.same(
    two.stateDict().map(([k]) => k).filter((k) => k.endsWith('.weight')),
    ['mlp.0.weight', 'mlp.1.weight', 'mlp.3.weight'],
    'nlayers 2 with batch norm: Linear 0, BatchNorm 1, GELU 2, Linear 3',
  );
  for (const m of [fixed, free, one, two]) m.dispose();
});

t.test('the truncation bounds are absolute (+-2), not in units of std', async (t) => {
  const p = zeros([20000]).keep();
  truncNormal(p, new Generator(4), 1.5);
  const s = stats([p]);
  t.ok(s.min >= -2 && s.max <= 2, `inside [-2, 2]: [${s.min.toFixed(3)}, ${s.max.toFixed(3)}]`);
  t.ok(s.max > 1.95 && s.min < -1.95, 'and reaching both bounds (1.3 std away)');
  p.dispose();
});
