import t from 'tap';
import { Generator } from '../../lib/engine/random.ts';

t.test('xoshiro128** produces the sequence its definition gives', async (t) => {
  const g = new Generator(0);
  g.setState({ s: [1, 2, 3, 4], spare: null });
  // Worked by hand from the algorithm: rotl(s1 * 5, 7) * 9, then the state update.
  t.same([g.nextUint32(), g.nextUint32(), g.nextUint32()], [11520, 0, 5927040]);
});

t.test('one seed, one stream; the state round-trips mid-stream', async (t) => {
  const a = new Generator(42);
  const b = new Generator(42);
  t.same(a.normalArray(10), b.normalArray(10));
  t.notSame(new Generator(1).uniformArray(5, 0, 1), new Generator(2).uniformArray(5, 0, 1), 'seeds differ');
  a.normal(); // leaves a Box-Muller spare in the state
  const saved = a.getState();
  const expected = a.normalArray(7);
  const c = new Generator(0);
  c.setState(JSON.parse(JSON.stringify(saved)));
  t.same(c.normalArray(7), expected, 'a restored state continues the same stream');
  t.throws(() => c.setState({ s: [0, 0, 0, 0], spare: null }), /invalid generator state/);
  t.throws(() => new Generator(1.5), /integer/);
});

t.test('distributions have their moments and bounds', async (t) => {
  const g = new Generator(7);
  const n = 100000;
  const x = g.normalArray(n, 0, 1);
  const mean = x.reduce((s, v) => s + v, 0) / n;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  // Standard errors: 1/sqrt(n) for the mean, sqrt(2/n) for the variance; allow 5 of them.
  t.ok(Math.abs(mean) < 5 / Math.sqrt(n), `mean ${mean}`);
  t.ok(Math.abs(variance - 1) < 5 * Math.sqrt(2 / n), `variance ${variance}`);
  const u = g.uniformArray(n, -3, 5);
  t.ok(u.every((v) => v >= -3 && v < 5), 'uniform within [lo, hi)');
  t.ok(Math.abs(u.reduce((s, v) => s + v, 0) / n - 1) < 5 * (8 / Math.sqrt(12)) / Math.sqrt(n), 'uniform mean');
  const tn = g.truncNormalArray(n, 1, -0.5, 0.5);
  t.ok(tn.every((v) => v >= -0.5 && v <= 0.5), 'truncated normal inside its bounds');
  t.ok(tn.some((v) => v > 0.45) && tn.some((v) => v < -0.45), 'and it reaches them');
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[g.int(6)]++;
  t.ok(counts.every((c) => Math.abs(c - 10000) < 5 * Math.sqrt(10000 * (5 / 6))), `int(6) counts ${counts}`);
});
