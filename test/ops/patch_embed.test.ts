import t from 'tap';
import { ops, runOp, tensor, tidy, valueAndGrads } from '../../lib/index.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('patch_embed');

// Each output is a dot product of length C*p*p (up to 768 here) of unit-scale values, each weight
// gradient a sum over B*N patches: float32 rounding of sums of that length stays below ~1e-5 of the
// magnitudes involved (a few units to tens).
const outTol = { atol: 1e-5, rtol: 1e-5 };
const gradTol = { atol: 2e-5, rtol: 1e-5 };

t.test('parity with Conv2d(kernel=p, stride=p) in PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    checkParity(t, name, c, ['x', 'weight', 'bias'], ops.patchEmbed, outTol, gradTol);
  }
});

t.test('patch order and the pixels no patch covers', async (t) => {
  tidy(() => {
    // 1 channel, p = 2, a 5x5 image: 2x2 patches, the last row and column are unused. With a weight
    // that picks the top-left pixel of a patch, the output lists those pixels in row-major order.
    const x = tensor(Float32Array.from({ length: 25 }, (_, i) => i), [1, 1, 5, 5]);
    const weight = tensor([1, 0, 0, 0], [1, 1, 2, 2]);
    const bias = tensor([0.5], [1]);
    const y = ops.patchEmbed(x, weight, bias);
    t.same([...y.shape], [1, 4, 1]);
    t.same([...y.data()], [0.5, 2.5, 10.5, 12.5], 'row-major patches, bias added');
    const { grads } = valueAndGrads(() => ops.sum(ops.patchEmbed(x, weight, bias)), [x]);
    const dx = grads[0]!.data();
    t.same([...dx], [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'uncovered pixels get zero');
  });
});

t.test('a ViT-sized patch embedding matches a direct convolution', async (t) => {
  tidy(() => {
    // p = 16, 3 channels, D = 24, a 48x40 image (2.5 patches wide: floor to 2) and a batch of 3.
    const [B, C, H, W, D, p] = [3, 3, 48, 40, 24, 16];
    const xd = randomValues(B * C * H * W, 1);
    const wd = randomValues(D * C * p * p, 2, -0.05, 0.05);
    const bd = randomValues(D, 3);
    const Hp = Math.floor(H / p), Wp = Math.floor(W / p);
    const ref = new Float64Array(B * Hp * Wp * D);
    for (let b = 0; b < B; b++)
      for (let py = 0; py < Hp; py++)
        for (let px = 0; px < Wp; px++)
          for (let d = 0; d < D; d++) {
            let s = bd[d];
            for (let c = 0; c < C; c++)
              for (let ky = 0; ky < p; ky++)
                for (let kx = 0; kx < p; kx++) s += wd[((d * C + c) * p + ky) * p + kx] * xd[((b * C + c) * H + py * p + ky) * W + px * p + kx];
            ref[((b * Hp + py) * Wp + px) * D + d] = s;
          }
    const y = ops.patchEmbed(tensor(xd, [B, C, H, W]), tensor(wd, [D, C, p, p]), tensor(bd, [D]));
    t.same([...y.shape], [B, Hp * Wp, D]);
    assertClose(t, y, ref, outTol, 'output');
  });
});

t.test('finite-difference gradients', async (t) => {
  const r = (shape: number[], seed: number) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed), shape });
  gradcheck(t, 'patch_embed p=2', ops.patchEmbed, [r([2, 2, 4, 6], 1), r([3, 2, 2, 2], 2), r([3], 3)]);
  gradcheck(t, 'patch_embed p=3, 7x8 (floor)', ops.patchEmbed, [r([1, 1, 7, 8], 4), r([2, 1, 3, 3], 5), r([2], 6)]);
  // With the image not watched (the training case) the backward skips dx: the weight path alone.
  gradcheck(t, 'patch_embed, weight and bias only', ops.patchEmbed, [r([2, 2, 4, 6], 7), r([3, 2, 2, 2], 8), r([3], 9)], { check: [1, 2] });
});

t.test('bad input throws a clear error and leaves the engine usable', async (t) => {
  tidy(() => {
    const x = tensor(randomValues(2 * 3 * 8 * 8, 1), [2, 3, 8, 8]);
    const w = tensor(randomValues(5 * 3 * 4 * 4, 2), [5, 3, 4, 4]);
    const b = tensor(randomValues(5, 3), [5]);
    t.throws(() => ops.patchEmbed(tensor(randomValues(3 * 8 * 8, 1), [3, 8, 8]), w, b), /x must be an image batch \(B, C, H, W\)/, 'x rank');
    t.throws(() => ops.patchEmbed(x, tensor(randomValues(5 * 3 * 4 * 2, 2), [5, 3, 4, 2]), b), /square/, 'non-square kernel');
    t.throws(() => ops.patchEmbed(x, tensor(randomValues(5 * 2 * 16, 2), [5, 2, 4, 4]), b), /weight has 2 input channels, x has 3/, 'channels');
    t.throws(() => ops.patchEmbed(x, w, tensor([1, 2], [2])), /bias must have shape \[5\]/, 'bias');
    t.throws(() => ops.patchEmbed(x, tensor(randomValues(5 * 3 * 100, 2), [5, 3, 10, 10]), b), /smaller than one 10x10 patch/, 'image smaller than a patch');
    t.throws(() => runOp('patch_embed_backward', [x, x, w]), /dy must have shape \[2, 4, 5\]/, 'backward dy');
    t.same([...ops.patchEmbed(x, w, b).shape], [2, 4, 5], 'still works afterwards');
  });
});
