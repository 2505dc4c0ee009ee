import t from 'tap';
import { cosineScheduler, linspace, teacherTempSchedule } from '../../lib/optim/schedules.ts';
import { loadFixtures } from '../helpers/fixtures.ts';

const cases = loadFixtures('train');

// numpy float64 values written exactly. The arithmetic is the same, operation for operation; only cos
// may differ, numpy's vectorised cos against V8's (both within an ulp or two of the exact value), and
// through (1 + cos) that is a few 1e-16 of the base-final range: 1e-15 absolute covers it.
const atol = 1e-15;

function worstError(actual: Float64Array, indices: number[], values: number[]): { err: number; at: number } {
  let err = 0;
  let at = -1;
  indices.forEach((i, k) => {
    const e = Math.abs(actual[i] - values[k]);
    if (!(e <= err)) [err, at] = [e, i];
  });
  return { err, at };
}

t.test('cosineScheduler matches the official numpy cosine_scheduler', async (t) => {
  for (const [name, c] of Object.entries(cases).filter(([n]) => n.startsWith('cosine_'))) {
    const a = c.attrs;
    const s = cosineScheduler(a.base, a.final, a.epochs, a.niterPerEp, a.warmupEpochs, a.startWarmupValue);
    t.equal(s.length, a.epochs * a.niterPerEp, `${name}: one value per iteration`);
    const { err, at } = worstError(s, a.indices, a.values);
    t.ok(err <= atol, `${name}: ${a.indices.length} values within ${atol} of numpy (worst ${err.toExponential(2)} at ${at})`);
    const warm = a.warmupEpochs * a.niterPerEp;
    const exactAt = a.indices.map((i: number, k: number) => [i, a.values[k]]).filter(([i]: number[]) => i < warm);
    t.ok(exactAt.every(([i, v]: number[]) => s[i] === v), `${name}: the ${exactAt.length} warm-up values are bit-identical`);
  }
});

t.test("the official run's check values (8 GPUs x 64, 2502 it/epoch, 100 epochs)", async (t) => {
  const lr = cosineScheduler((0.0005 * 512) / 256, 1e-6, 100, 2502, 10);
  const wd = cosineScheduler(0.04, 0.4, 100, 2502);
  const momentum = cosineScheduler(0.996, 1, 100, 2502);
  // The log prints each value as the median of its last 20 iterations (torch.median: the lower middle,
  // iteration 2230 here) with 6 decimals. At 2240 itself the lr is 8.953e-5 (0.000090 printed).
  const logged = (s: Float64Array, it: number): string => [...s.subarray(it - 19, it + 1)].sort((a, b) => a - b)[9].toFixed(6);
  t.equal(logged(lr, 2240), '0.000089', 'lr at iteration 2240 as the maintainer log prints it');
  t.equal(logged(wd, 2240), '0.040071', 'weight decay at iteration 2240 as the log prints it');
  t.equal(wd[2240].toFixed(6), '0.040071', 'which is also the value at 2240 itself');
  t.equal(lr[2240], 2240 * (0.001 / 25019), 'the warm-up is linear from 0 over 25020 iterations, both ends included');
  t.equal(lr[0], 0, 'the warm-up starts at 0');
  t.equal(lr[10 * 2502 - 1], 0.001, 'and ends exactly at the base lr');
  t.equal(lr[10 * 2502], 0.001, 'where the cosine starts, at the base lr too');
  t.equal(momentum[0], 0.996, 'momentum starts at 0.996');
  const gap = 1 - momentum[momentum.length - 1];
  t.ok(gap > 1.5e-13 && gap < 1.6e-13, `and never reaches 1: it ends at 1 - ${gap.toExponential(3)}`);
  t.ok(momentum.every((m, i) => i === 0 || m >= momentum[i - 1]), 'momentum never decreases');
});

t.test('teacherTempSchedule matches the official per-epoch schedule', async (t) => {
  for (const [name, c] of Object.entries(cases).filter(([n]) => n.startsWith('temp_'))) {
    const a = c.attrs;
    const s = teacherTempSchedule(a.warmupTeacherTemp, a.teacherTemp, a.warmupTeacherTempEpochs, a.nepochs);
    t.same([...s], a.values, `${name}: all ${a.nepochs} epochs bit-identical to numpy`);
  }
});

t.test('linspace follows numpy at its edges', async (t) => {
  t.same([...linspace(1, 2, 0)], [], 'no samples');
  t.same([...linspace(0.3, 0.5, 1)], [0.3], 'one sample is the start');
  t.same([...linspace(0.04, 0.04, 3)], [0.04, 0.04, 0.04], 'a zero step');
  const l = linspace(0, 1, 7);
  t.equal(l[6], 1, 'the last sample is exactly stop');
  t.equal(l[3], 3 * (1 / 6), 'others are start + i * step');
});

t.test('bad arguments are refused', async (t) => {
  t.throws(() => cosineScheduler(1, 0, 2, 10, 3), /cosineScheduler: warmupEpochs \(3\) exceeds epochs \(2\)/);
  t.throws(() => cosineScheduler(1, 0, 2.5, 10), /cosineScheduler: epochs must be a non-negative integer, got 2.5/);
  t.throws(() => cosineScheduler(1, 0, 2, -1), /niterPerEp must be a non-negative integer, got -1/);
  t.throws(() => teacherTempSchedule(0.04, 0.07, 30, 20), /warmupTeacherTempEpochs \(30\) exceeds nepochs \(20\)/);
  t.throws(() => linspace(0, 1, NaN), /linspace: num must be a non-negative integer, got NaN/);
});
