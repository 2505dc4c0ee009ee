import t from 'tap';
import { addon, ops, tensor, tidy, zeros, type Tensor } from '../../lib/index.ts';
import { AdamW } from '../../lib/optim/adamw.ts';
import { getParamsGroups, setSchedules } from '../../lib/optim/param-groups.ts';
import { cancelGradientsLastLayer, type NamedGrads } from '../../lib/optim/grads.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { assertClose, type Tolerance } from '../helpers/close.ts';
import { randomValues } from '../helpers/gradcheck.ts';
import { Net } from './net.ts';

const c = loadFixtures('train').adamw;
const names = (ps: readonly (readonly [string, Tensor])[]): string[] => ps.map(([n]) => n);

// As test/ops/optim.test.ts: the kernel rounds where PyTorch fuses multiply-adds, so after three steps
// a parameter may be two float32 ulps (2.4e-7 relative) from PyTorch's; the moments a few ulps of
// their inputs (4.8e-7 relative; atol for exp_avg values that cancel to near 0).
const paramTol: Tolerance = { atol: 1e-9, rtol: 2.4e-7 };
const momentTol: Tolerance = { atol: 1e-9, rtol: 4.8e-7 };

// The step-k gradients of the fixture, by name; the fixture has none for the frozen last layer in step
// 1, so there the entry is some other tensor, which cancelGradientsLastLayer must drop.
function fixtureGrads(net: Net, k: number): NamedGrads {
  return new Map(
    net.namedTrainableParameters().map(([n, p]): [string, Tensor] => {
      const g = c.tensors[`grad${k}_${n}`];
      return [n, g === undefined ? tensor(randomValues(p.size, 70 + k), [...p.shape]) : tensor(g.data, g.shape)];
    }),
  );
}

t.test("getParamsGroups splits as the official get_params_groups", async (t) => {
  const net = new Net(c, 'param0_');
  const [reg, notReg] = getParamsGroups(net.namedTrainableParameters());
  t.same([names(reg.params), names(notReg.params)], c.attrs.groups, 'cls_token and weights decayed; biases and 1-D tensors not; weight_g left out');
  t.equal(reg.weightDecay, undefined, 'group 0 takes the optimizer weight decay (set by the schedule)');
  t.equal(notReg.weightDecay, 0, 'group 1 has weight decay 0');
  net.dispose();
});

t.test('AdamW over the two groups matches torch.optim.AdamW for three DINO steps', async (t) => {
  const net = new Net(c, 'param0_');
  const opt = new AdamW(getParamsGroups(net.namedTrainableParameters()));
  for (let k = 1; k <= 3; k++) {
    tidy(() => {
      const epoch = c.attrs.epochs[k - 1];
      setSchedules(opt, c.attrs.lrs[k - 1], c.attrs.wds[k - 1]);
      t.same(opt.paramGroups.map((g) => [g.lr, g.weightDecay]), [[c.attrs.lrs[k - 1], c.attrs.wds[k - 1]], [c.attrs.lrs[k - 1], 0]], `step ${k}: lr for both groups, weight decay for group 0 only`);
      const grads = fixtureGrads(net, k);
      cancelGradientsLastLayer(epoch, c.attrs.freezeLastLayer, grads);
      t.same([...grads].filter(([, g]) => g === null).map(([n]) => n), epoch < 1 ? ['last_layer.weight_v'] : [], `step ${k} (epoch ${epoch}): the frozen gradients`);
      opt.step(grads);
      for (const [n, p] of net.namedParameters()) assertClose(t, p, c.tensors[`param${k}_${n}`].data, paramTol, `step ${k}: ${n}`);
    });
  }
  const sd = opt.stateDict();
  for (const [n, s] of sd.state) {
    assertClose(t, s.expAvg, c.tensors[`exp_avg_${n}`].data, momentTol, `state of ${n}: exp_avg`);
    assertClose(t, s.expAvgSq, c.tensors[`exp_avg_sq_${n}`].data, momentTol, `state of ${n}: exp_avg_sq`);
  }
  t.same(Object.fromEntries(sd.state.map(([n, s]) => [n, s.step])), Object.fromEntries(Object.entries(c.attrs.state).map(([n, s]: [string, any]) => [n, s.step])), 'step counts: the frozen layer skipped one');

  // The documented mapping onto torch's optimizer.state_dict(): ids numbered through the groups in order.
  const ids = new Map(sd.paramGroups.flatMap((g) => g.params).map((n, i) => [n, i]));
  t.same(Object.fromEntries([...ids].filter(([n]) => sd.state.some(([m]) => m === n))), Object.fromEntries(Object.entries(c.attrs.state).map(([n, s]: [string, any]) => [n, s.id])), 'parameter ids');
  t.same(
    sd.paramGroups.map((g) => ({ lr: g.lr, betas: [...g.betas], eps: g.eps, weight_decay: g.weightDecay, params: g.params.map((n) => ids.get(n)) })),
    c.attrs.torchParamGroups,
    "param_groups: lr, betas, eps, weight_decay and the ids",
  );
  opt.dispose();
  net.dispose();
});

t.test('stateDict / loadStateDict: a restored optimizer continues identically', async (t) => {
  const net = new Net(c, 'param0_');
  const copy = new Net(c, 'param0_');
  const opt = new AdamW(getParamsGroups(net.namedTrainableParameters()));
  const restored = new AdamW(getParamsGroups(copy.namedTrainableParameters()), { lr: 5 });
  const step = (o: AdamW, n: Net, k: number): void => tidy(() => o.step(fixtureGrads(n, k)));
  step(opt, net, 2);
  setSchedules(opt, 3e-4, 0.3);
  // Copies of the state, as a checkpoint reader would hand them over.
  tidy(() => {
    const saved = opt.stateDict();
    const state = saved.state.map(([n, s]): [string, typeof s] => [n, { step: s.step, expAvg: ops.scale(s.expAvg, 1), expAvgSq: ops.scale(s.expAvgSq, 1) }]);
    copy.loadStateDict(net.stateDict());
    restored.loadStateDict({ ...saved, state });
  });
  t.same(restored.paramGroups.map((g) => [g.lr, g.weightDecay]), [[3e-4, 0.3], [3e-4, 0]], 'the groups hyperparameters are restored');
  step(opt, net, 3);
  step(restored, copy, 3);
  const same = net.namedParameters().every(([n, p]) => p.data().every((v, i) => v === copy.param(n).data()[i]));
  t.ok(same, 'the next step gives bit-identical parameters');
  t.same(restored.stateDict().state.map(([n, s]) => [n, s.step]), opt.stateDict().state.map(([n, s]) => [n, s.step]), 'and step counts');
  tidy(() => restored.loadStateDict(restored.stateDict()));
  t.pass('loading its own state back is a no-op');
  tidy(() => {
    const sd = restored.stateDict();
    const half = sd.state.map(([n, s]): [string, typeof s] => [n, { step: s.step, expAvg: ops.cast(s.expAvg, 'bfloat16'), expAvgSq: ops.cast(s.expAvgSq, 'bfloat16') }]);
    const want = half.map(([, s]) => [...ops.cast(s.expAvg, 'float32').data()]);
    restored.loadStateDict({ ...sd, state: half });
    t.same(restored.stateDict().state.map(([, s]) => [...s.expAvg.data()]), want, 'bfloat16 state is cast to float32');
  });
  restored.loadStateDict({ state: [], paramGroups: restored.stateDict().paramGroups });
  t.same(restored.stateDict().state, [], 'an empty state clears it (as torch, whose state is replaced)');
  for (const o of [opt, restored]) o.dispose();
  net.dispose();
  copy.dispose();
});

t.test('bad input gives clear errors and changes nothing', async (t) => {
  const net = new Net(c, 'param0_');
  const params = net.namedTrainableParameters();
  const opt = new AdamW(getParamsGroups(params));
  const before = net.namedParameters().map(([, p]) => [...p.data()]);
  tidy(() => {
    const good = fixtureGrads(net, 2);
    const without = new Map(good);
    without.delete('fc.bias');
    t.throws(() => opt.step(without), /AdamW.step: no gradient entry for 'fc.bias' \(use null to skip it\)/);
    t.throws(() => opt.step(new Map([...good, ['teacher.x', null]])), /AdamW.step: 'teacher.x' is not a parameter of this optimizer/);
    t.throws(() => opt.step(new Map([...good, ['fc.bias', zeros([3])]])), /AdamW.step: gradient of 'fc.bias' has shape \[3\], the parameter \[4\]/);
    t.same(net.namedParameters().map(([, p]) => [...p.data()]), before, 'no parameter changed');
    t.same(opt.stateDict().state, [], 'no state was made');
    const sd = { state: [], paramGroups: opt.stateDict().paramGroups };
    t.throws(() => opt.loadStateDict({ ...sd, paramGroups: sd.paramGroups.slice(0, 1) }), /AdamW.loadStateDict: the groups hold \[\["cls_token"/);
    const state = (n: string, shape: number[], step = 1): [string, { step: number; expAvg: Tensor; expAvgSq: Tensor }] => [n, { step, expAvg: zeros(shape), expAvgSq: zeros(shape) }];
    t.throws(() => opt.loadStateDict({ ...sd, state: [state('nope', [4])] }), /state for 'nope', which is not a parameter/);
    t.throws(() => opt.loadStateDict({ ...sd, state: [state('fc.bias', [5])] }), /state of 'fc.bias' has shape \[5\], the parameter \[4\]/);
    t.throws(() => opt.loadStateDict({ ...sd, state: [state('fc.bias', [4], 0)] }), /step of 'fc.bias' must be an integer >= 1, got 0/);
    t.same(opt.stateDict().state, [], 'a refused load changes nothing');
  });
  t.throws(() => new AdamW([{ params }, { params: params.slice(0, 1) }]), /AdamW: parameter 'cls_token' is given twice/);
  t.throws(() => new AdamW([{ params: [params[0], ['alias', params[0][1]]] }]), /parameter 'alias' is the same tensor as another parameter/);
  opt.dispose();
  net.dispose();
});

t.test('dispose frees the state', async (t) => {
  const net = new Net(c, 'param0_');
  const before = addon.memoryStats('cpu').inUse;
  const opt = new AdamW(getParamsGroups(net.namedTrainableParameters()));
  tidy(() => opt.step(fixtureGrads(net, 2)));
  t.ok(addon.memoryStats('cpu').inUse > before, 'the state holds memory');
  opt.dispose();
  t.equal(addon.memoryStats('cpu').inUse, before, 'all of it is freed');
  net.dispose();
});
