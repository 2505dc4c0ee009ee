// The small module of scripts/fixtures/train.py (Net): parameters of every kind DINO's parameter
// groups tell apart, a frozen weight_g, a last layer and a buffer, in the same registration order.
import { Module, tensor, type Tensor } from '../../lib/index.ts';
import type { FixtureCase } from '../helpers/fixtures.ts';

class Leaf extends Module {
  constructor(params: [string, Tensor, boolean][]) {
    super();
    for (const [name, value, requiresGrad] of params) this.registerParameter(name, value, { requiresGrad });
  }
}

export class Net extends Module {
  // Values from a fixture case: tensors named `${prefix}${parameter name}`, the buffer `running`.
  constructor(c: FixtureCase, prefix: string) {
    super();
    const v = (name: string): Tensor => {
      const t = c.tensors[prefix + name];
      if (t === undefined) throw new Error(`fixture has no tensor '${prefix + name}'`);
      return tensor(t.data, t.shape);
    };
    this.registerParameter('cls_token', v('cls_token'));
    this.registerModule('fc', new Leaf([['weight', v('fc.weight'), true], ['bias', v('fc.bias'), true]]));
    this.registerModule('norm', new Leaf([['weight', v('norm.weight'), true], ['bias', v('norm.bias'), true]]));
    this.registerModule('last_layer', new Leaf([['weight_g', v('last_layer.weight_g'), false], ['weight_v', v('last_layer.weight_v'), true]]));
    this.registerBuffer('running', c.tensors.running === undefined ? tensor([0, 0, 0, 0], [4]) : tensor(c.tensors.running.data, [4]));
  }

  param(name: string): Tensor {
    const p = this.namedParameters().find(([n]) => n === name);
    if (p === undefined) throw new Error(`no parameter '${name}'`);
    return p[1];
  }
}
