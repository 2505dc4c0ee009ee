import t from 'tap';
import { ops, runOp, tensor, tidy, valueAndGrads, type Tensor } from '../../lib/index.ts';
import { loadFixtures, fromFixture } from '../helpers/fixtures.ts';
import { checkParity } from '../helpers/parity.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

const cases = loadFixtures('attention');

// float32 end to end: scores are sums of hd products, the softmax uses an exp accurate to ~2 ulp, and
// outputs are sums of T products of probabilities and values (|values| up to ~3-6), so errors are a
// few ulp of the largest terms; observed up to 1.1e-6 on outputs and 1.6e-6 on gradients (which add
// two more length-T / length-hd products). Probabilities are in [0, 1]: observed 2.4e-7.
const outTol = { atol: 5e-6, rtol: 2e-5 };
const gradTol = { atol: 1e-5, rtol: 1e-4 };
const probTol = { atol: 1e-6, rtol: 1e-5 };

t.test('parity with the official ViT attention in PyTorch', async (t) => {
  for (const [name, c] of Object.entries(cases)) {
    const heads = c.attrs.heads as number;
    const opts = { scale: c.attrs.scale as number | undefined };
    checkParity(t, name, c, ['qkv'], (qkv) => ops.attention(qkv, heads, opts), outTol, gradTol);
    tidy(() => {
      const qkv = fromFixture(c, 'qkv');
      const { out, probs } = ops.attentionWithProbs(qkv, heads, opts);
      assertClose(t, out, c.tensors.out.data, outTol, `${name}: output with probs`);
      t.same([...probs.shape], c.tensors.probs.shape, `${name}: probs shape`);
      assertClose(t, probs, c.tensors.probs.data, probTol, `${name}: probs`);
      const [, lse] = runOp('attention', [qkv], { heads, scale: opts.scale });
      assertClose(t, lse, c.tensors.lse.data, outTol, `${name}: log-sum-exp`);
    });
  }
});

// Float64 reference of the forward and backward (the formulas of the official implementation and of
// autograd through it), for sizes too large for committed fixtures.
function reference(qkv: Float32Array, dout: Float32Array, B: number, T: number, H: number, hd: number, scale: number) {
  const D = H * hd;
  const out = new Float64Array(B * T * D);
  const dqkv = new Float64Array(B * T * 3 * D);
  const at = (b: number, i: number, part: number, h: number) => (b * T + i) * 3 * D + part * D + h * hd;
  const p = new Float64Array(T * T);
  const ds = new Float64Array(T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let m = -Infinity;
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let c = 0; c < hd; c++) s += qkv[at(b, i, 0, h) + c] * qkv[at(b, j, 1, h) + c];
          p[i * T + j] = s * scale;
          m = Math.max(m, s * scale);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += p[i * T + j] = Math.exp(p[i * T + j] - m);
        for (let j = 0; j < T; j++) p[i * T + j] /= sum;
        for (let c = 0; c < hd; c++) {
          let o = 0;
          for (let j = 0; j < T; j++) o += p[i * T + j] * qkv[at(b, j, 2, h) + c];
          out[(b * T + i) * D + h * hd + c] = o;
        }
      }
      for (let i = 0; i < T; i++) {
        const go = (b * T + i) * D + h * hd;
        let di = 0;
        for (let j = 0; j < T; j++) {
          let dp = 0;
          for (let c = 0; c < hd; c++) dp += dout[go + c] * qkv[at(b, j, 2, h) + c];
          ds[i * T + j] = dp;
          di += p[i * T + j] * dp;
          for (let c = 0; c < hd; c++) dqkv[at(b, j, 2, h) + c] += p[i * T + j] * dout[go + c];
        }
        for (let j = 0; j < T; j++) ds[i * T + j] = p[i * T + j] * (ds[i * T + j] - di) * scale;
      }
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          for (let c = 0; c < hd; c++) {
            dqkv[at(b, i, 0, h) + c] += ds[i * T + j] * qkv[at(b, j, 1, h) + c];
            dqkv[at(b, j, 1, h) + c] += ds[i * T + j] * qkv[at(b, i, 0, h) + c];
          }
        }
      }
    }
  }
  return { out, dqkv };
}

t.test('sequence lengths around and beyond the chunking, against a float64 reference', async (t) => {
  // T = 197 with B = 8 splits the batch into two chunks of score matrices; 63 / 64 / 65 straddle a
  // power of two; 37 is a local crop at p = 16.
  for (const [B, T, H, hd] of [[2, 37, 3, 64], [2, 63, 2, 32], [1, 64, 2, 32], [2, 65, 2, 16], [8, 197, 2, 16]]) {
    tidy(() => {
      const qkvData = randomValues(B * T * 3 * H * hd, B * 1000 + T, -2, 2);
      const doutData = randomValues(B * T * H * hd, T + 17);
      const ref = reference(qkvData, doutData, B, T, H, hd, 1 / Math.sqrt(hd));
      const qkv = tensor(qkvData, [B, T, 3 * H * hd]);
      const dout = tensor(doutData, [B, T, H * hd]);
      const { grads } = valueAndGrads(() => {
        const out = ops.attention(qkv, H);
        assertClose(t, out, ref.out, outTol, `B${B} T${T} H${H} hd${hd}: output`);
        return ops.sum(ops.mul(out, dout));
      }, [qkv]);
      assertClose(t, grads[0]!, ref.dqkv, gradTol, `B${B} T${T} H${H} hd${hd}: gradient of qkv`);
    });
  }
});

t.test('probabilities are the softmax the output is built from', async (t) => {
  tidy(() => {
    const B = 2, T = 197, H = 6, hd = 8;
    const qkv = tensor(randomValues(B * T * 3 * H * hd, 5, -3, 3), [B, T, 3 * H * hd]);
    const { out, probs } = ops.attentionWithProbs(qkv, H);
    assertClose(t, out, ops.attention(qkv, H).data(), { atol: 0, rtol: 0 }, 'the same output with and without probs');
    const rowSums = ops.sum(probs, [-1]).data();
    assertClose(t, rowSums, new Float32Array(B * H * T).fill(1), { atol: 2e-6, rtol: 0 }, 'rows sum to one');
  });
});

t.test('finite-difference gradients', async (t) => {
  const r = (shape: number[], seed: number) => ({ data: randomValues(shape.reduce((a, b) => a * b, 1), seed), shape });
  gradcheck(t, 'attention T=5 H=2 hd=4', (qkv) => ops.attention(qkv, 2), [r([2, 5, 24], 1)]);
  gradcheck(t, 'attention T=1', (qkv) => ops.attention(qkv, 3), [r([2, 1, 18], 2)]);
  gradcheck(t, 'attention scale 1.3', (qkv) => ops.attention(qkv, 1, { scale: 1.3 }), [r([1, 7, 15], 3)]);
});

t.test('bad input throws a clear error and leaves the engine usable', async (t) => {
  tidy(() => {
    const qkv = tensor(randomValues(2 * 5 * 24, 9), [2, 5, 24]);
    t.throws(() => ops.attention(tensor([1, 2, 3], [3]), 1), /qkv must be \(B, T, 3\*D\)/, 'rank');
    t.throws(() => ops.attention(qkv, 5), /3 \* heads \* head_dim with heads = 5/, 'width not a multiple of 3*heads');
    t.throws(() => ops.attention(qkv, 0), /heads must be at least 1/, 'heads 0');
    t.throws(() => ops.attention(qkv, 1.5), /heads/, 'fractional heads');
    t.throws(() => runOp('attention', [qkv], {}), /heads/, 'heads missing');
    t.throws(() => ops.attention(qkv, 2, { scale: Infinity }), /scale must be finite/, 'infinite scale');
    const [out, lse] = runOp('attention', [qkv], { heads: 2 });
    t.throws(() => runOp('attention_backward', [out, qkv, out, lse], { heads: 5 }), /3 \* heads/, 'backward heads');
    t.throws(() => runOp('attention_backward', [lse, qkv, out, lse], { heads: 2 }), /dout must have shape \[2, 5, 8\]/, 'backward dout');
    t.throws(() => runOp('attention_backward', [out, qkv, out, out], { heads: 2 }), /lse must have shape \[2, 2, 5\]/, 'backward lse');
    t.throws(() => {
      valueAndGrads(() => ops.sum(ops.attentionWithProbs(qkv, 2).probs), [qkv]);
    }, /only through the output/, 'no gradient through probs');
    const y: Tensor = ops.attention(qkv, 2);
    t.same([...y.shape], [2, 5, 8], 'still works afterwards');
  });
});
