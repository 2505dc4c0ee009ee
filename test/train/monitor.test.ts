// The collapse watch: the epoch summary (KL = loss - entropy), and which warning each kind of
// collapse gets: a uniform teacher (centring has won), one dominant dimension (sharpening has won), a
// student that copies the teacher; a healthy epoch gets none.
import t from 'tap';
import { EpochMonitor, collapseWarning, type EpochDiagnostics } from '../../lib/train/monitor.ts';

const K = 1024;
const lnK = Math.log(K);
const epoch = (loss: number, teacherEntropy: number): EpochDiagnostics => ({ epoch: 3, steps: 10, loss, teacherEntropy, kl: loss - teacherEntropy, maxEntropy: lnK });

t.test('the epoch summary averages the steps; KL is loss minus entropy', async (t) => {
  const m = new EpochMonitor(2, K);
  t.equal(m.empty, true);
  m.add(6, 5);
  m.add(4, 2);
  t.same(m.summary(), { epoch: 2, steps: 2, loss: 5, teacherEntropy: 3.5, kl: 1.5, maxEntropy: lnK });
});

t.test('each collapse gets its own diagnosis and remedies; a healthy epoch none', async (t) => {
  t.equal(collapseWarning(epoch(5.2, 4.1)), null, 'healthy: KL 1.1 nats');
  t.equal(collapseWarning(epoch(lnK * 0.9, lnK * 0.9 - 0.3)), null, 'a flat but learning teacher');

  const uniform = collapseWarning(epoch(lnK + 0.001, lnK - 0.001));
  t.match(uniform, /epoch 3: training looks collapsed: the teacher output is uniform/);
  t.match(uniform, /lower teacher temperature[\s\S]*smaller output dimension[\s\S]*higher teacher momentum/);

  const loss = collapseWarning(epoch(lnK * 1.005, lnK * 0.5));
  t.match(loss, /the teacher output is uniform/, 'the loss sitting at ln(out_dim) is enough');

  const oneHot = collapseWarning(epoch(0.051, 0.05));
  t.match(oneHot, /one output dimension dominates the teacher/);
  t.match(oneHot, /higher teacher temperature/);
  t.notMatch(oneHot, /lower teacher temperature/);

  const copy = collapseWarning(epoch(3.004, 3.0));
  t.match(copy, /the student copies the teacher \(KL 4\.00e-3 nats\)/);
});
