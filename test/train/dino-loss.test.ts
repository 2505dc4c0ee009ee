import t from 'tap';
import { addon, ops, tensor, tidy, valueAndGrads, zeros } from '../../lib/index.ts';
import { DINOLoss } from '../../lib/loss/dino-loss.ts';
import { fromFixture, loadFixtures, type FixtureCase } from '../helpers/fixtures.ts';
import { assertClose, type Tolerance } from '../helpers/close.ts';
import { gradcheck, randomValues } from '../helpers/gradcheck.ts';

const cases = loadFixtures('train');

// The loss sums 2 * ncrops - 2 cross-entropies in a different order than PyTorch's per-pair loop, and
// scales the student by 10 where PyTorch divides by 0.1 (an ulp apart): a few float32 ulps of the
// loss. The gradient entries (up to ~0.5) are softmax minus teacher weights; measured max abs error
// 3.4e-7. The centre sums its 2B rows in another order: an ulp or two of values up to ~0.3.
const lossTol: Tolerance = { atol: 0, rtol: 2e-6 };
const gradTol: Tolerance = { atol: 1e-6, rtol: 1e-5 };
const centerTol: Tolerance = { atol: 1e-7, rtol: 1e-6 };

function lossFor(c: FixtureCase): DINOLoss {
  const a = c.attrs;
  return new DINOLoss({
    outDim: a.outDim,
    ncrops: a.ncrops,
    warmupTeacherTemp: a.warmupTeacherTemp,
    teacherTemp: a.teacherTemp,
    warmupTeacherTempEpochs: a.warmupTeacherTempEpochs,
    nepochs: a.nepochs,
  });
}

t.test('loss, gradient, teacher entropy and centre match the official DINOLoss over two steps', async (t) => {
  for (const name of ['loss_warmup', 'loss_two_crops']) {
    const c = cases[name];
    const loss = lossFor(c);
    t.same([...loss.teacherTemps], c.attrs.tempSchedule, `${name}: the teacher temperature schedule`);
    c.attrs.epochs.forEach((epoch: number, i: number) => {
      const k = i + 1;
      tidy(() => {
        const student = fromFixture(c, `student${k}`);
        const teacher = fromFixture(c, `teacher${k}`);
        let entropy = NaN;
        const { value, grads } = valueAndGrads(() => {
          const r = loss.forwardWithDiagnostics(student, teacher, epoch);
          entropy = r.teacherEntropy.item();
          return r.loss;
        }, [student]);
        t.same(value.shape, [], `${name} step ${k}: a 0-d loss`);
        assertClose(t, [value.item()], c.tensors[`loss${k}`].data, lossTol, `${name} step ${k} (epoch ${epoch}): loss`);
        assertClose(t, grads[0]!, c.tensors[`grad${k}`].data, gradTol, `${name} step ${k}: gradient wrt the student output`);
        assertClose(t, [entropy], c.tensors[`entropy${k}`].data, lossTol, `${name} step ${k}: teacher entropy`);
        t.equal(loss.forward(student, teacher, epoch).item(), value.item(), `${name} step ${k}: forward() gives the same loss`);
        loss.updateCenter(teacher);
        assertClose(t, loss.center, c.tensors[`center${k}`].data, centerTol, `${name} step ${k}: centre after the update`);
      });
    });
    loss.dispose();
  }
});

t.test('gradient wrt the student output matches finite differences', async (t) => {
  // 3 crops (one local), B = 2, 6 classes, a non-zero centre, an epoch inside the warm-up.
  const loss = new DINOLoss({ outDim: 6, ncrops: 3, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 3, nepochs: 4 });
  const teacher = randomValues(4 * 6, 61, -1, 1);
  tidy(() => loss.updateCenter(tensor(randomValues(4 * 6, 62, -1, 1), [4, 6])));
  // Logits scaled by 1/0.1: steps of 1e-3 keep the second-order error far below the tolerance.
  gradcheck(t, 'DINO loss', (s, te) => loss.forward(s, te, 1), [
    { data: randomValues(6 * 6, 63, -1, 1), shape: [6, 6] },
    { data: teacher, shape: [4, 6] },
  ], { check: [0], eps: 1e-3, atol: 1e-3, rtol: 1e-2 });
  tidy(() => {
    const s = tensor(randomValues(6 * 6, 64), [6, 6]);
    const te = tensor(teacher, [4, 6]);
    const { grads } = valueAndGrads(() => loss.forward(s, te, 1), [s, te]);
    t.equal(grads[1], null, 'the teacher output gets no gradient');
  });
  loss.dispose();
});

t.test('collapse signature: uniform student outputs give ln(outDim), at the official out_dim', async (t) => {
  const outDim = 65536;
  const loss = new DINOLoss({ outDim, ncrops: 10, warmupTeacherTemp: 0.04, teacherTemp: 0.04, warmupTeacherTempEpochs: 0, nepochs: 100 });
  tidy(() => {
    const batch = 2;
    const teacher = tensor(randomValues(2 * batch * outDim, 65), [2 * batch, outDim]);
    const r = loss.forwardWithDiagnostics(zeros([10 * batch, outDim]), teacher, 0);
    assertClose(t, [r.loss.item()], [Math.log(outDim)], { atol: 0, rtol: 1e-6 }, 'loss = ln 65536 = 11.0904 whatever the teacher');
    const flat = loss.forwardWithDiagnostics(zeros([10 * batch, outDim]), zeros([2 * batch, outDim]), 0);
    assertClose(t, [flat.teacherEntropy.item()], [Math.log(outDim)], { atol: 0, rtol: 1e-6 }, 'a uniform teacher has entropy ln 65536');
  });
  tidy(() => {
    // The cost of a step's loss at the official width (forward and backward), for the record.
    const batch = 4;
    const s = tensor(randomValues(10 * batch * outDim, 66), [10 * batch, outDim]);
    const te = tensor(randomValues(2 * batch * outDim, 67), [2 * batch, outDim]);
    const start = performance.now();
    valueAndGrads(() => loss.forward(s, te, 0), [s]);
    t.comment(`loss forward + backward, ${10 * batch} x ${outDim} student logits: ${(performance.now() - start).toFixed(0)} ms`);
  });
  loss.dispose();
});

t.test('the centre is a buffer: state dict and loading', async (t) => {
  const loss = new DINOLoss({ outDim: 3, ncrops: 2, warmupTeacherTemp: 0.04, teacherTemp: 0.04, warmupTeacherTempEpochs: 0, nepochs: 1 });
  t.same(loss.stateDict().map(([n]) => n), ['center'], "the checkpoint's dino_loss keys");
  t.same([...loss.center.shape], [1, 3], 'shape (1, outDim)');
  t.same([...loss.center.data()], [0, 0, 0], 'starts at zero');
  tidy(() => loss.updateCenter(tensor([1, 2, 3, 3, 4, 5], [2, 3])));
  assertClose(t, loss.center, [0.2, 0.3, 0.4], { atol: 0, rtol: 1e-7 }, 'c = 0.9 c + 0.1 * row mean of the raw teacher logits');
  tidy(() => loss.loadStateDict([['center', tensor([7, 8, 9], [1, 3])]]));
  t.same([...loss.center.data()], [7, 8, 9], 'loadStateDict restores it');
  loss.dispose();
});

t.test('a loss step frees everything it made', async (t) => {
  const loss = new DINOLoss({ outDim: 40, ncrops: 4, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 3, nepochs: 5 });
  const s = tensor(randomValues(12 * 40, 68), [12, 40]).keep();
  const te = tensor(randomValues(6 * 40, 69), [6, 40]).keep();
  const step = (): void =>
    tidy(() => {
      const { grads } = valueAndGrads(() => loss.forwardWithDiagnostics(s, te, 2).loss, [s]);
      ops.sum(grads[0]!).item();
      loss.updateCenter(te);
    });
  step();
  const before = addon.memoryStats('cpu').inUse;
  for (let i = 0; i < 3; i++) step();
  t.equal(addon.memoryStats('cpu').inUse, before, 'bytes in use unchanged after three more steps');
  s.dispose();
  te.dispose();
  loss.dispose();
});

t.test('bad input gives clear errors', async (t) => {
  const opts = { outDim: 5, ncrops: 4, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 2, nepochs: 3 };
  const loss = new DINOLoss(opts);
  tidy(() => {
    const s = zeros([8, 5]);
    const te = zeros([4, 5]);
    t.throws(() => loss.forward(zeros([7, 5]), te, 0), /DINOLoss: studentOutput must have shape \[ncrops \* B, 5\] with ncrops = 4, got \[7, 5\]/);
    t.throws(() => loss.forward(zeros([8, 6]), te, 0), /studentOutput must have shape .*got \[8, 6\]/);
    t.throws(() => loss.forward(zeros([40]), te, 0), /studentOutput must have shape .*got \[40\]/);
    t.throws(() => loss.forward(s, zeros([6, 5]), 0), /DINOLoss: teacherOutput must have shape \[4, 5\] \(the two global crops\), got \[6, 5\]/);
    t.throws(() => loss.forward(s, zeros([4, 4]), 0), /teacherOutput must have shape \[4, 5\]/);
    t.throws(() => loss.forward(s, te, 3), /DINOLoss: epoch 3 is outside the teacher temperature schedule \(epochs 0 to 2\)/);
    t.throws(() => loss.forward(s, te, -1), /epoch -1 is outside/);
    t.throws(() => loss.forward(s, te, 0.5), /epoch 0.5 is outside/);
    t.throws(() => loss.updateCenter(zeros([3, 5])), /teacherOutput must have shape \[2 \* B, 5\]/);
    t.same([...loss.center.data()], [0, 0, 0, 0, 0], 'a refused update leaves the centre as it was');
  });
  t.throws(() => new DINOLoss({ ...opts, ncrops: 1 }), /ncrops must be an integer >= 2/);
  t.throws(() => new DINOLoss({ ...opts, outDim: 0 }), /outDim must be a positive integer, got 0/);
  t.throws(() => new DINOLoss({ ...opts, teacherTemp: 0 }), /DINOLoss: temperatures must be > 0, got student 0.1, teacher 0.04 -> 0/);
  t.throws(() => new DINOLoss({ ...opts, centerMomentum: 1.5 }), /centerMomentum must be in \[0, 1\], got 1.5/);
  t.throws(() => new DINOLoss({ ...opts, warmupTeacherTempEpochs: 4 }), /warmupTeacherTempEpochs \(4\) exceeds nepochs \(3\)/);
  loss.dispose();
});
