// Our ops composed as the official ViT composes them (scripts/fixtures/vit.py writes the PyTorch side):
// a pre-norm transformer block, and the model's token preparation with the position-embedding resampling.
import t from 'tap';
import { grads, ops, prepareTokens, tensor, tidy, type Tensor } from '../../lib/index.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { onOneAndSeveralThreads } from '../helpers/threads.ts';

const cases = loadFixtures('vit');

function block(heads: number) {
  return (x: Tensor, n1w: Tensor, n1b: Tensor, qkvW: Tensor, qkvB: Tensor, projW: Tensor, projB: Tensor,
    n2w: Tensor, n2b: Tensor, fc1W: Tensor, fc1B: Tensor, fc2W: Tensor, fc2B: Tensor): Tensor => {
    const qkv = ops.linear(ops.layerNorm(x, n1w, n1b), qkvW, qkvB);
    const h = ops.add(x, ops.linear(ops.attention(qkv, heads), projW, projB));
    const mlp = ops.linear(ops.gelu(ops.linear(ops.layerNorm(h, n2w, n2b), fc1W, fc1B)), fc2W, fc2B);
    return ops.add(h, mlp);
  };
}

const blockInputs = ['x', 'norm1_w', 'norm1_b', 'qkv_w', 'qkv_b', 'proj_w', 'proj_b', 'norm2_w', 'norm2_b', 'fc1_w', 'fc1_b', 'fc2_w', 'fc2_b'];
const tokenInputs = ['img', 'conv_w', 'conv_b', 'cls_token', 'pos_embed'];

// Several float32 ops in a row, each within a few ulps of PyTorch: a little more room than one op.
const tol = { atol: 2e-5, rtol: 1e-4 };

t.test('a transformer block matches the official formulation in PyTorch', async (t) => {
  const c = cases.block;
  checkParity(t, 'block', c, blockInputs, block(c.attrs.heads), tol);
});

t.test('token preparation and position-embedding resampling match PyTorch', async (t) => {
  for (const name of ['tokens_resampled', 'tokens_same_grid']) {
    const c = cases[name];
    // The model's own token preparation (lib/model/vit.ts); the patch size comes from the weight's shape.
    t.equal(c.tensors.conv_w.shape[3], c.attrs.patch, `${name}: patch ${c.attrs.patch}`);
    checkParity(t, name, c, tokenInputs, prepareTokens, tol);
  }
});

t.test('the block\'s gradients do not depend on the thread count (bitwise)', async (t) => {
  // Large enough (B=8, T=65, C=128, MLP 512) that every op takes its parallel path.
  const [B, T, C, heads, hidden] = [8, 65, 128, 2, 512];
  const shapes = [[B, T, C], [C], [C], [3 * C, C], [3 * C], [C, C], [C], [C], [C], [hidden, C], [hidden], [C, hidden], [C]];
  const values = shapes.map((s, i) => randomValues(s.reduce((a, b) => a * b, 1), 100 + i, -0.5, 0.5));
  const w = randomValues(B * T * C, 99);
  const run = (): Float32Array[] =>
    tidy(() => {
      const xs = shapes.map((s, i) => tensor(values[i], s));
      const f = block(heads) as (...xs: Tensor[]) => Tensor;
      const gs = grads(() => ops.sum(ops.mul(f(...xs), tensor(w, [B, T, C]))), xs);
      return gs.map((g) => g!.data());
    });
  const [one, several] = onOneAndSeveralThreads(run);
  one.forEach((g, i) => t.ok(Buffer.from(several[i].buffer).equals(Buffer.from(g.buffer)), `gradient of ${blockInputs[i]} is bitwise equal`));
});
