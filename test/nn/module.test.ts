import t from 'tap';
import { Module, ModuleList } from '../../lib/nn/module.ts';
import { addon, tensor, zeros, type Tensor } from '../../lib/index.ts';

class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(i: number, o: number) {
    super();
    this.weight = this.registerParameter('weight', zeros([o, i]));
    this.bias = this.registerParameter('bias', zeros([o]));
  }
}

class Net extends Module {
  readonly scale: Tensor;
  readonly layers: ModuleList<Linear>;
  readonly fixed: Tensor;
  constructor() {
    super();
    this.scale = this.registerParameter('scale', zeros([1]));
    this.layers = this.registerModule('layers', new ModuleList([new Linear(2, 3), new Linear(3, 1)]));
    this.fixed = this.registerParameter('fixed', zeros([1]), { requiresGrad: false });
    this.registerBuffer('center', zeros([3]));
  }
}

t.test('names and order follow PyTorch: own parameters first, then submodules depth first', async (t) => {
  const net = new Net();
  t.same(net.namedParameters().map(([n]) => n), ['scale', 'fixed', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
  t.same(net.namedTrainableParameters().map(([n]) => n), ['scale', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
  t.same(net.stateDict().map(([n]) => n), ['scale', 'fixed', 'center', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
  t.same(net.stateDict('backbone.').map(([n]) => n)[0], 'backbone.scale', 'a prefix');
  net.dispose();
});

t.test('loadStateDict copies into the same tensors and checks keys and shapes', async (t) => {
  const net = new Net();
  const w = net.layers.items[0].weight;
  const values = net.stateDict().map(([n, p]): [string, Tensor] => [n, tensor(new Float32Array(p.size).fill(n.length), [...p.shape])]);
  net.loadStateDict(values);
  t.same([...w.data()], new Array(6).fill('layers.0.weight'.length), 'the existing tensor holds the new values');
  t.throws(() => net.loadStateDict(values.slice(1)), /missing \["scale"\]/);
  t.throws(() => net.loadStateDict([...values, ['extra', tensor([1], [1])]]), /unexpected \["extra"\]/);
  const r = net.loadStateDict(values.slice(1), { strict: false });
  t.same(r.missing, ['scale']);
  const bad = values.map(([n, v]): [string, Tensor] => [n, n === 'scale' ? tensor([1, 2], [2]) : v]);
  t.throws(() => net.loadStateDict(bad), /'scale': shape \[2\] in the state dict, \[1\] in the model/);
  for (const [, v] of values) v.dispose();
  net.dispose();
});

t.test('dispose frees every parameter and buffer', async (t) => {
  const before = addon.memoryStats('cpu').inUse;
  const net = new Net();
  t.ok(addon.memoryStats('cpu').inUse > before);
  net.dispose();
  t.equal(addon.memoryStats('cpu').inUse, before);
});
