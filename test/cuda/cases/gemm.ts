// CPU-vs-CUDA parity for the GEMM-based ops: matmul, attention, patch_embed (and their backwards).
//
// Tolerances. Both devices multiply in float32 and sum in float32, in different orders (the CPU's
// packed micro-kernels vs cuBLAS's tiles, maybe split along K), so each output differs by rounding
// that grows with the length K of its dot product: about eps * |c| * sqrt(K) for a result of size
// |c| ~ sqrt(K) * sa * sb / 3 with inputs uniform in [-sa, sa) and [-sb, sb), i.e. ~2e-8 * K * sa * sb.
// gemmTol allows 4e-6 * sqrt(K) * sa * sb absolute (6x that estimate at K = 1152, far more at small K)
// plus rtol 1e-4 for the large entries. TF32 stays off (the default), so this holds.
import { randn, type Input, type ParityCase } from '../../helpers/cuda.ts';

function gemmTol(K: number, scale = 1): { atol: number; rtol: number } {
  return { atol: 4e-6 * Math.sqrt(Math.max(K, 1)) * scale, rtol: 1e-4 };
}

let seed = 7000;
const next = (): number => ++seed;

// ---------------------------------------------------------------------------------------------------
// matmul

function matmulCase(M: number, N: number, K: number, transA: boolean, transB: boolean, batchA: number[], batchB: number[], what?: string): ParityCase {
  const a = randn([...batchA, ...(transA ? [K, M] : [M, K])], next());
  const b = randn([...batchB, ...(transB ? [N, K] : [K, N])], next());
  return { op: 'matmul', inputs: [a, b], attrs: { transA, transB }, tol: gemmTol(K), what };
}

const matmul: ParityCase[] = [];
for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    const tag = `transA=${transA} transB=${transB}`;
    // Both operands batched, odd sizes.
    matmul.push(matmulCase(7, 13, 5, transA, transB, [3], [3], `matmul 7x13x5 batch 3, ${tag}`));
    // Degenerate shapes: single rows or columns, where cuBLAS's leading-dimension rules bite.
    matmul.push(matmulCase(1, 1, 1, transA, transB, [], [], `matmul 1x1x1, ${tag}`));
    matmul.push(matmulCase(1, 1, 9, transA, transB, [2], [2], `matmul 1x1x9 batch 2, ${tag}`));
    matmul.push(matmulCase(1, 13, 7, transA, transB, [2], [2], `matmul 1x13x7 batch 2, ${tag}`));
    matmul.push(matmulCase(7, 1, 13, transA, transB, [2], [2], `matmul 7x1x13 batch 2, ${tag}`));
    matmul.push(matmulCase(5, 6, 1, transA, transB, [], [], `matmul 5x6x1, ${tag}`));
    // A shared 2-D operand under a batch, on either side (stride-0 broadcast; a 2-D b without transA is
    // the folded linear-layer path).
    matmul.push(matmulCase(9, 11, 17, transA, transB, [2, 3], [], `matmul 9x11x17, b shared over batch [2, 3], ${tag}`));
    matmul.push(matmulCase(9, 11, 17, transA, transB, [], [4], `matmul 9x11x17, a shared over batch 4, ${tag}`));
  }
}
// The ViT's shapes: a linear layer (x (B, T, C) @ W^T) and the attention products.
matmul.push(matmulCase(197, 384, 1152, false, true, [2], [], 'matmul linear 197x384x1152, batch 2 folded'));
matmul.push(matmulCase(197, 1152, 384, false, true, [1], [], 'matmul linear 197x1152x384'));
matmul.push(matmulCase(37, 37, 64, false, true, [6], [6], 'matmul scores 37x37x64 batch 6'));
matmul.push(matmulCase(37, 64, 37, false, false, [6], [6], 'matmul probs @ v 37x64x37 batch 6'));
matmul.push(matmulCase(384, 1152, 197, true, false, [], [], 'matmul weight gradient 384x1152x197'));
// Empty: K = 0 gives zeros; M = 0 and an empty batch give empty outputs.
matmul.push(matmulCase(3, 4, 0, false, false, [], [], 'matmul K=0 (zeros)'));
matmul.push(matmulCase(3, 4, 0, true, true, [2], [2], 'matmul K=0 batch 2, transposed (zeros)'));
matmul.push(matmulCase(0, 5, 4, false, false, [], [], 'matmul M=0'));
matmul.push(matmulCase(3, 5, 4, false, false, [0], [0], 'matmul empty batch'));

// ---------------------------------------------------------------------------------------------------
// attention
//
// out = P V with P a probability row: errors come from the scores (K = hd, then scaled by hd^-0.5,
// relative error of P ~ the scores' absolute error ~1e-7) and the sum over T; |out| < 1. lse ~ log T.
// Backward: dS = P (dP - D) cancels where P is peaked, and dQ, dK sum T terms: a few 1e-6 at T = 197.
// atol 2e-5 with rtol 1e-4 covers all of these with margin while still catching a wrong element (errors
// of indexing or scaling are O(0.01) and larger).
const attnTol = { atol: 2e-5, rtol: 1e-4 };

// The forward in double, so the backward cases get consistent out and lse (as training would give them).
function attentionReference(qkv: Input, B: number, T: number, H: number, hd: number, scale = 1 / Math.sqrt(hd)): { out: Input; lse: Input } {
  const D = H * hd, ld = 3 * D;
  const x = qkv.data;
  const out = new Float32Array(B * T * D), lse = new Float32Array(B * H * T);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * ld + h * hd;
        let m = -Infinity;
        for (let j = 0; j < T; j++) {
          const ko = (b * T + j) * ld + D + h * hd;
          let dot = 0;
          for (let c = 0; c < hd; c++) dot += x[qo + c] * x[ko + c];
          s[j] = dot * scale;
          if (s[j] > m) m = s[j];
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += (s[j] = Math.exp(s[j] - m));
        lse[(b * H + h) * T + i] = m + Math.log(sum);
        const oo = (b * T + i) * D + h * hd;
        for (let c = 0; c < hd; c++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += s[j] * x[(b * T + j) * ld + 2 * D + h * hd + c];
          out[oo + c] = acc / sum;
        }
      }
    }
  }
  return { out: { data: out, shape: [B, T, D] }, lse: { data: lse, shape: [B, H, T] } };
}

// [B, T, heads, hd, returnProbs]
const attentionShapes: [number, number, number, number, boolean][] = [
  [2, 1, 3, 64, false],
  [2, 1, 1, 16, true],
  [2, 37, 6, 64, false],
  [1, 37, 3, 16, true],
  [2, 63, 1, 64, true],
  [2, 64, 3, 16, false],
  [1, 64, 6, 64, true],
  [1, 65, 6, 64, true],
  [2, 65, 1, 16, false],
  [2, 197, 6, 64, false],
  [1, 197, 3, 64, true],
  [2, 197, 1, 16, false],
];

const attention: ParityCase[] = [];
for (const [B, T, H, hd, returnProbs] of attentionShapes) {
  const shape = `B=${B} T=${T} heads=${H} hd=${hd}`;
  const qkv = randn([B, T, 3 * H * hd], next());
  attention.push({ op: 'attention', inputs: [qkv], attrs: { heads: H, returnProbs }, tol: attnTol, what: `attention ${shape} returnProbs=${returnProbs}` });
  const { out, lse } = attentionReference(qkv, B, T, H, hd);
  const dout = randn([B, T, H * hd], next());
  attention.push({ op: 'attention_backward', inputs: [dout, qkv, out, lse], attrs: { heads: H }, tol: attnTol, what: `attention_backward ${shape}` });
}
{
  // A non-default scale, and a NaN in one query: that query's row of out and its lse are NaN on both.
  const B = 2, T = 37, H = 3, hd = 16;
  const qkv = randn([B, T, 3 * H * hd], next());
  attention.push({ op: 'attention', inputs: [qkv], attrs: { heads: H, scale: 0.5, returnProbs: true }, tol: attnTol, what: 'attention scale 0.5' });
  const { out, lse } = attentionReference(qkv, B, T, H, hd, 0.5);
  const dout = randn([B, T, H * hd], next());
  attention.push({ op: 'attention_backward', inputs: [dout, qkv, out, lse], attrs: { heads: H, scale: 0.5 }, tol: attnTol, what: 'attention_backward scale 0.5' });
  const withNaN = { data: Float32Array.from(qkv.data), shape: qkv.shape };
  withNaN.data[(1 * T + 5) * 3 * H * hd + 1 * hd + 3] = NaN;  // b 1, token 5, q of head 1
  attention.push({ op: 'attention', inputs: [withNaN], attrs: { heads: H, returnProbs: true }, tol: attnTol, what: 'attention with a NaN query' });
}
attention.push({ op: 'attention', inputs: [randn([0, 5, 3 * 2 * 4], next())], attrs: { heads: 2 }, tol: attnTol, what: 'attention empty batch' });

// ---------------------------------------------------------------------------------------------------
// patch_embed
//
// Forward: y = bias + a dot product of K = C p p terms. Backward: dx sums D terms, dweight sums the
// B N patch rows, dbias is a column sum in double on both devices. One tolerance per case, for the
// longest of these sums.

const patchEmbed: ParityCase[] = [];
// [B, C, H, W, p, D]: images that are and are not multiples of the patch, p = 16 and 7, C = 3 and 1.
const patchShapes: [number, number, number, number, number, number][] = [
  [2, 3, 37, 41, 16, 64],
  [2, 3, 32, 48, 16, 24],
  [2, 1, 30, 23, 7, 32],
  [3, 1, 14, 14, 7, 5],
  [1, 3, 7, 9, 7, 1],
  [4, 3, 96, 96, 16, 384],
];
for (const [B, C, H, W, p, D] of patchShapes) {
  const shape = `x [${B}, ${C}, ${H}, ${W}] p=${p} D=${D}`;
  const K = C * p * p, M = B * Math.floor(H / p) * Math.floor(W / p);
  const x = randn([B, C, H, W], next());
  const weight = randn([D, C, p, p], next(), 0.1);
  const bias = randn([D], next());
  patchEmbed.push({ op: 'patch_embed', inputs: [x, weight, bias], tol: gemmTol(K, 0.1), what: `patch_embed ${shape}` });
  const dy = randn([B, M / B, D], next());
  const tol = gemmTol(Math.max(D, M), 1);
  patchEmbed.push({ op: 'patch_embed_backward', inputs: [dy, x, weight], tol, what: `patch_embed_backward ${shape}` });
  patchEmbed.push({ op: 'patch_embed_backward', inputs: [dy, x, weight], attrs: { inputGrad: false }, tol, what: `patch_embed_backward ${shape} inputGrad=false` });
}

export const cases: ParityCase[] = [...matmul, ...attention, ...patchEmbed];
