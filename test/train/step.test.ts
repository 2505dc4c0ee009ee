// The pieces composed as DINO's training step orders them, on a toy network: teacher forward without
// gradients, loss, backward, per-tensor clipping, last-layer freezing, scheduled AdamW, EMA, centre.
import t from 'tap';
import { addon, noGrad, ops, tensor, tidy, valueAndGrads, type Tensor } from '../../lib/index.ts';
import { DINOLoss } from '../../lib/loss/dino-loss.ts';
import { AdamW } from '../../lib/optim/adamw.ts';
import { getParamsGroups, setSchedules } from '../../lib/optim/param-groups.ts';
import { cancelGradientsLastLayer, clipGradients, nameGrads } from '../../lib/optim/grads.ts';
import { updateTeacher } from '../../lib/optim/ema.ts';
import { cosineScheduler } from '../../lib/optim/schedules.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { Net } from './net.ts';

const c = loadFixtures('train').adamw;
const ncrops = 4;
const batch = 2;

// rows of 3 features -> 5 logits, through every parameter of the net.
function forward(net: Net, x: Tensor): Tensor {
  const h = ops.linear(ops.add(x, ops.reshape(net.param('cls_token'), [1, 3])), net.param('fc.weight'), net.param('fc.bias'));
  return ops.linear(ops.layerNorm(h, net.param('norm.weight'), net.param('norm.bias')), net.param('last_layer.weight_v'));
}

t.test('a training step in the official order, for two epochs, without leaks', async (t) => {
  const student = new Net(c, 'param0_');
  const teacher = new Net(c, 'param0_');
  const loss = new DINOLoss({ outDim: 5, ncrops, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 1, nepochs: 2 });
  const opt = new AdamW(getParamsGroups(student.namedTrainableParameters()));
  const niter = 3;
  const lrs = cosineScheduler(1e-2, 1e-4, 2, niter, 1);
  const wds = cosineScheduler(0.04, 0.4, 2, niter);
  const moms = cosineScheduler(0.9, 1, 2, niter);
  const lastLayer = (): number[] => [...student.param('last_layer.weight_v').data()];
  const frozen = lastLayer();
  const inUse: number[] = [];
  for (let it = 0; it < 2 * niter; it++) {
    const epoch = Math.floor(it / niter);
    const value = tidy(() => {
      // ncrops crops of batch images, crop-major; the first two crops are the teacher's.
      const x = tensor(randomValues(ncrops * batch * 3, 80 + it), [ncrops * batch, 3]);
      const teacherOut = noGrad(() => forward(teacher, ops.slice(x, 0, 0, 2 * batch)));
      const params = student.namedTrainableParameters();
      const r = valueAndGrads(() => loss.forward(forward(student, x), teacherOut, epoch), params.map(([, p]) => p));
      const grads = nameGrads(params, r.grads);
      clipGradients(grads, 3.0);
      cancelGradientsLastLayer(epoch, 1, grads);
      setSchedules(opt, lrs[it], wds[it]);
      opt.step(grads);
      updateTeacher(student, teacher, moms[it]);
      loss.updateCenter(teacherOut);
      return r.value.item();
    });
    t.ok(Number.isFinite(value), `iteration ${it} (epoch ${epoch}): loss ${value.toFixed(4)}`);
    if (it === niter - 1) t.same(lastLayer(), frozen, 'the last layer did not move during epoch 0');
    inUse.push(addon.memoryStats('cpu').inUse);
  }
  t.not(lastLayer()[0], frozen[0], 'and trains from epoch 1');
  t.not([...teacher.param('fc.weight').data()][0], [...student.param('fc.weight').data()][0], 'the teacher lags behind the student');
  // The optimizer state of the last layer appears with its first gradient (iteration niter).
  t.equal(inUse[inUse.length - 1], inUse[niter], `bytes in use constant once every state exists (${inUse.join(', ')})`);
  opt.dispose();
  loss.dispose();
  student.dispose();
  teacher.dispose();
});
