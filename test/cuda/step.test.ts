// One DINO step (two, so that the optimizer state on the GPU is used) on the CPU and on cuda:0.
import t from 'tap';
import { cudaSkip } from '../helpers/cuda.ts';
import { agreement, stepParity } from './step-parity.ts';

t.test('a DINO step on cuda:0 matches the same step on the CPU', { skip: cudaSkip }, async (t) => {
  const r = stepParity();
  for (const s of r.steps) t.ok(Number.isFinite(s.lossCuda), `loss on cuda ${s.lossCuda}, on cpu ${s.lossCpu}`);
  t.same(r.failures, [], `${r.checked} quantities agree (worst: ${r.worst.map((w) => `${w.what} ${w.maxAbsErr} of ${w.scale}`).join('; ')})`);
});

// The comparison on any machine: the CPU against itself agrees bitwise (the step is deterministic), and
// a difference beyond the tolerance, or a missing tensor, is caught.
t.test('the step comparison', async (t) => {
  const r = stepParity('cpu', 1);
  t.ok(r.ok, 'cpu against cpu');
  t.equal(r.worst[0].maxAbsErr, 0, 'bitwise equal');
  t.notOk(agreement('x', [1, 2.01], [1, 2], (s) => 1e-3 * s).ok, 'a relative error of 5e-3 fails a 1e-3 tolerance');
  t.notOk(agreement('x', [], [1, 2], () => 1).ok, 'a missing tensor fails');
});
