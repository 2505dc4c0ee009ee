// Every op on the GPU against the same op on the CPU (test/cuda/cases), and a check, on any machine,
// that no registered op is left without such a case.
import t from 'tap';
import { addon } from '../../lib/index.ts';
import { checkParity, cudaSkip } from '../helpers/cuda.ts';
import { cases } from './cases/index.ts';

t.test('every registered op has a CPU-vs-CUDA parity case', async (t) => {
  const covered = new Set(cases.map((c) => c.op));
  const missing = addon.opNames().filter((name) => !covered.has(name));
  t.same(missing, [], 'ops without a parity case');
});

t.test('CUDA matches the CPU, op by op', { skip: cudaSkip }, async (t) => {
  const byOp = new Map<string, typeof cases>();
  for (const c of cases) byOp.set(c.op, [...(byOp.get(c.op) ?? []), c]);
  for (const [op, list] of byOp) {
    t.test(op, async (t) => {
      for (const c of list) checkParity(t, c);
    });
  }
});
