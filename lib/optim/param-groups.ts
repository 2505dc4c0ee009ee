// DINO's two AdamW parameter groups (utils.get_params_groups) and how its schedules set them each
// iteration.
import type { Tensor } from '../engine/tensor.ts';
import type { AdamW, ParamGroupSpec } from './adamw.ts';

// Group 0 ("regularized"): everything else, weight-decayed. Group 1 ("not regularized", weight decay
// 0): names ending in ".bias" and 1-D tensors. Give it the trainable parameters only (frozen ones, such
// as a normalised last layer's weight_g, are left out officially): Module.namedTrainableParameters().
// The order within each group is the given order, which is what fixes PyTorch's parameter ids.
export function getParamsGroups(named: readonly (readonly [string, Tensor])[]): [ParamGroupSpec, ParamGroupSpec] {
  const regularized: [string, Tensor][] = [];
  const notRegularized: [string, Tensor][] = [];
  for (const [name, p] of named) (name.endsWith('.bias') || p.rank === 1 ? notRegularized : regularized).push([name, p]);
  return [{ params: regularized }, { params: notRegularized, weightDecay: 0 }];
}

// Every iteration: all groups get the scheduled learning rate, group 0 the scheduled weight decay.
export function setSchedules(optimizer: AdamW, lr: number, weightDecay: number): void {
  optimizer.paramGroups.forEach((group, i) => {
    group.lr = lr;
    if (i === 0) group.weightDecay = weightDecay;
  });
}
