// The GEMM behind every matmul, against a double-precision triple loop over the sizes where a packed,
// tiled kernel goes wrong: edges of the 12x32 / 6x16 register tiles, K blocking, batches, transposes.
import t from 'tap';
import { ops, tensor, tidy } from '../../lib/index.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { assertClose } from '../helpers/close.ts';

function reference(a: Float32Array, b: Float32Array, batch: number, M: number, N: number, K: number, ta: boolean, tb: boolean, shareB: boolean, shareA = false): Float64Array {
  const c = new Float64Array(batch * M * N);
  for (let p = 0; p < batch; p++) {
    const ao = shareA ? 0 : p * M * K;
    const bo = shareB ? 0 : p * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += a[ao + (ta ? k * M + i : i * K + k)] * b[bo + (tb ? j * K + k : k * N + j)];
        }
        c[p * M * N + i * N + j] = s;
      }
    }
  }
  return c;
}

t.test('matmul agrees with a double-precision reference on tile-edge sizes', async (t) => {
  const sizes = [1, 2, 3, 5, 12, 13, 31, 33, 65];
  let seed = 1;
  for (const M of sizes) {
    for (const N of [1, 16, 17, 33, 64]) {
      for (const K of [1, 7, 64, 129]) {
        // Every combination of the transposes, batched or not, and a shared (2-D) operand on either side.
        const ta = seed % 2 === 0;
        const tb = Math.floor(seed / 2) % 2 === 0;
        const batch = Math.floor(seed / 4) % 2 === 0 ? 3 : 1;
        const shared = batch > 1 ? Math.floor(seed / 8) % 3 : 0; // 0: none, 1: b, 2: a
        const shareB = shared === 1;
        const shareA = shared === 2;
        seed++;
        tidy(() => {
          const a = randomValues((shareA ? 1 : batch) * M * K, seed * 2);
          const b = randomValues((shareB ? 1 : batch) * K * N, seed * 2 + 1);
          const lead = batch > 1 ? [batch] : [];
          const A = tensor(a, [...(shareA ? [] : lead), ...(ta ? [K, M] : [M, K])]);
          const B = tensor(b, [...(shareB ? [] : lead), ...(tb ? [N, K] : [K, N])]);
          const C = ops.matmul(A, B, { transA: ta, transB: tb });
          // float32 products summed over K terms of magnitude <= 1: error grows like sqrt(K) * 2^-24 per term.
          assertClose(t, C, reference(a, b, batch, M, N, K, ta, tb, shareB, shareA), { atol: 2e-6 * Math.sqrt(K) * 4, rtol: 1e-5 },
            `M=${M} N=${N} K=${K} transA=${ta} transB=${tb} batch=${batch}${shareB ? ' (shared b)' : ''}${shareA ? ' (shared a)' : ''}`);
        });
      }
    }
  }
});

t.test('a large product crosses the K and N cache blocks', async (t) => {
  tidy(() => {
    const [M, N, K] = [70, 530, 1100];
    const a = randomValues(M * K, 11);
    const b = randomValues(N * K, 12);
    const C = ops.matmul(tensor(a, [M, K]), tensor(b, [N, K]), { transB: true });
    assertClose(t, C, reference(a, b, 1, M, N, K, false, true, false), { atol: 2e-6 * Math.sqrt(K) * 4, rtol: 1e-5 }, 'M=70 N=530 K=1100');
  });
});

t.test('an empty inner dimension gives zeros', async (t) => {
  tidy(() => {
    const C = ops.matmul(tensor([], [3, 0]), tensor([], [0, 2]));
    t.same([...C.shape], [3, 2]);
    t.same([...C.data()], [0, 0, 0, 0, 0, 0]);
  });
});
