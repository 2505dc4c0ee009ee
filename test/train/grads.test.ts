import t from 'tap';
import { tensor, tidy, zeros, type Tensor } from '../../lib/index.ts';
import { cancelGradientsLastLayer, clipGradients, nameGrads, type NamedGrads } from '../../lib/optim/grads.ts';
import { loadFixtures } from '../helpers/fixtures.ts';
import { assertClose, type Tolerance } from '../helpers/close.ts';

const c = loadFixtures('train').clip;
// PyTorch sums the squares in float32, the engine in double (see test/ops/optim.test.ts): the norms,
// and the gradients scaled by them, agree to a few float32 ulps.
const normTol: Tolerance = { atol: 0, rtol: 1e-6 };

t.test("clipGradients is the official per-tensor clip_gradients", async (t) => {
  tidy(() => {
    const grads: NamedGrads = new Map<string, Tensor | null>(c.attrs.names.map((n: string): [string, Tensor] => [n, tensor(c.tensors[`grad_${n}`].data, c.tensors[`grad_${n}`].shape)]));
    grads.set('last_layer.weight_g', null);
    const norms = clipGradients(grads, c.attrs.clip);
    t.same([...norms.keys()], c.attrs.names, 'one norm per gradient, in order, none for a null gradient');
    assertClose(t, [...norms.values()].map((n) => n.item()), c.attrs.norms, normTol, 'norms before clipping');
    const clipped = c.attrs.names.filter((_: string, i: number) => c.attrs.norms[i] > 3);
    t.ok(clipped.length > 0 && clipped.length < c.attrs.names.length, `some gradients are above the threshold (${clipped.join(', ')}), some below`);
    for (const n of c.attrs.names) assertClose(t, grads.get(n)!, c.tensors[`clipped_${n}`].data, normTol, `${n} after clipping (in place)`);
    t.equal(grads.get('last_layer.weight_g'), null, 'a null gradient stays null');
  });
});

t.test('cancelGradientsLastLayer drops the last layer while it is frozen', async (t) => {
  tidy(() => {
    const make = (): NamedGrads => new Map([['backbone.blocks.0.norm1.weight', zeros([2])], ['head.last_layer.weight_v', zeros([2])], ['head.last_layer.weight_g', zeros([2])], ['head.mlp.0.weight', zeros([2])]]);
    const frozen = make();
    cancelGradientsLastLayer(0, 1, frozen);
    t.same([...frozen].filter(([, g]) => g === null).map(([n]) => n), ['head.last_layer.weight_v', 'head.last_layer.weight_g'], 'epoch 0 < freeze_last_layer 1: every name containing "last_layer"');
    for (const [epoch, freeze] of [[1, 1], [5, 0]]) {
      const g = make();
      cancelGradientsLastLayer(epoch, freeze, g);
      t.ok([...g.values()].every((x) => x !== null), `epoch ${epoch}, freeze_last_layer ${freeze}: nothing dropped`);
    }
  });
});

t.test('nameGrads pairs gradients with parameter names', async (t) => {
  tidy(() => {
    const a = zeros([1]);
    const b = zeros([2]);
    const g = nameGrads([['a', a], ['b', b]], [b, null]);
    t.same([...g.keys()], ['a', 'b']);
    t.equal(g.get('a'), b);
    t.equal(g.get('b'), null);
    t.throws(() => nameGrads([['a', a]], [a, b]), /nameGrads: 1 parameters but 2 gradients/);
  });
});

t.test('bad clip values are refused', async (t) => {
  tidy(() => {
    const g: NamedGrads = new Map([['w', tensor([3, 4], [2])]]);
    t.throws(() => clipGradients(g, 0), /clipGradients: clip must be finite and > 0, got 0 \(to disable clipping, do not call it\)/);
    t.throws(() => clipGradients(g, NaN), /clip must be finite and > 0, got NaN/);
    t.same([...g.get('w')!.data()], [3, 4], 'the gradient is untouched');
  });
});
