// torch.optim.AdamW over parameter groups, one fused in-place kernel call per tensor, with its state
// (exp_avg, exp_avg_sq, step) kept per parameter name so that checkpoints read as the model's do.
import { shapeText, zeros, type Tensor } from '../engine/tensor.ts';
import { tidy } from '../engine/scope.ts';
import { adamwStep, assign, cast } from '../ops/index.ts';

export interface AdamWHyper {
  lr: number;
  weightDecay: number;
  betas: readonly [number, number];
  eps: number;
}

// A group as given: its parameters by name, and hyperparameters overriding the optimizer's defaults.
export interface ParamGroupSpec extends Partial<AdamWHyper> {
  params: readonly (readonly [string, Tensor])[];
}

// A live group; the schedules set lr and weightDecay before each step (setSchedules).
export interface ParamGroup extends AdamWHyper {
  readonly params: readonly (readonly [string, Tensor])[];
}

// One parameter's state: step counts the updates it has had (1-based in the bias corrections).
export interface AdamWParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

// The optimizer's state by parameter name. It maps onto torch's optimizer.state_dict() as follows:
// number the parameters 0, 1, 2, ... through paramGroups in order (group 0's params, then group 1's);
// torch's param_groups[g].params lists those numbers, and torch's state[id] is {step: tensor(float
// step) (a plain int before PyTorch 1.12), exp_avg, exp_avg_sq}. lr, betas, eps and weight_decay are
// torch's group keys of the same meaning; the others are constants here (amsgrad False, maximize
// False, foreach None, capturable False, differentiable False, fused None, decoupled_weight_decay
// True). Parameters that have never taken a step have no entry, as in torch.
export interface AdamWStateDict {
  state: [string, AdamWParamState][];
  paramGroups: (AdamWHyper & { params: string[] })[];
}

// PyTorch's defaults.
const defaults: AdamWHyper = { lr: 1e-3, weightDecay: 1e-2, betas: [0.9, 0.999], eps: 1e-8 };

export class AdamW {
  readonly paramGroups: ParamGroup[];
  private readonly state = new Map<string, AdamWParamState>();
  private readonly params = new Map<string, Tensor>();

  constructor(groups: readonly ParamGroupSpec[], opts: Partial<AdamWHyper> = {}) {
    const base = { ...defaults, ...opts };
    this.paramGroups = groups.map((g) => ({
      lr: g.lr ?? base.lr,
      weightDecay: g.weightDecay ?? base.weightDecay,
      betas: g.betas ?? base.betas,
      eps: g.eps ?? base.eps,
      params: g.params.map(([name, p]) => [name, p] as const),
    }));
    const tensors = new Set<Tensor>();
    for (const [name, p] of this.paramGroups.flatMap((g) => g.params)) {
      if (this.params.has(name)) throw new Error(`AdamW: parameter '${name}' is given twice`);
      if (tensors.has(p)) throw new Error(`AdamW: parameter '${name}' is the same tensor as another parameter`);
      this.params.set(name, p);
      tensors.add(p);
    }
  }

  // One update of every parameter whose gradient is a tensor; a null gradient (torch's grad None)
  // leaves the parameter, its state and its step count untouched. grads must have exactly the
  // optimizer's parameter names; everything is checked before anything is updated.
  step(grads: ReadonlyMap<string, Tensor | null>): void {
    for (const name of grads.keys()) if (!this.params.has(name)) throw new Error(`AdamW.step: '${name}' is not a parameter of this optimizer`);
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (g === undefined) throw new Error(`AdamW.step: no gradient entry for '${name}' (use null to skip it)`);
      if (g !== null && shapeText(g.shape) !== shapeText(p.shape)) throw new Error(`AdamW.step: gradient of '${name}' has shape ${shapeText(g.shape)}, the parameter ${shapeText(p.shape)}`);
    }
    for (const group of this.paramGroups) {
      for (const [name, p] of group.params) {
        const g = grads.get(name)!;
        if (g === null) continue;
        const s = this.state.get(name) ?? this.newState(name, p);
        s.step++;
        adamwStep(p, g, s.expAvg, s.expAvgSq, { lr: group.lr, weightDecay: group.weightDecay, step: s.step, beta1: group.betas[0], beta2: group.betas[1], eps: group.eps });
      }
    }
  }

  // The live state (the tensors are the optimizer's own: serialise them, do not dispose them).
  stateDict(): AdamWStateDict {
    return {
      state: this.paramGroups.flatMap((g) => g.params.filter(([name]) => this.state.has(name)).map(([name]): [string, AdamWParamState] => [name, { ...this.state.get(name)! }])),
      paramGroups: this.paramGroups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay, betas: g.betas, eps: g.eps, params: g.params.map(([name]) => name) })),
    };
  }

  // Replaces the state and the groups' hyperparameters, as torch's load_state_dict does. The groups
  // must list the same parameter names in the same order; the values are copied (cast to float32,
  // moved to the parameter's device), so the given tensors stay the caller's.
  loadStateDict(sd: AdamWStateDict): void {
    const own = this.paramGroups.map((g) => g.params.map(([name]) => name));
    const given = sd.paramGroups.map((g) => g.params);
    if (JSON.stringify(own) !== JSON.stringify(given)) {
      throw new Error(`AdamW.loadStateDict: the groups hold ${JSON.stringify(given)}, this optimizer's ${JSON.stringify(own)}`);
    }
    for (const [name, s] of sd.state) {
      const p = this.params.get(name);
      if (p === undefined) throw new Error(`AdamW.loadStateDict: state for '${name}', which is not a parameter of this optimizer`);
      if (!Number.isSafeInteger(s.step) || s.step < 1) throw new Error(`AdamW.loadStateDict: step of '${name}' must be an integer >= 1, got ${s.step}`);
      for (const t of [s.expAvg, s.expAvgSq]) {
        if (shapeText(t.shape) !== shapeText(p.shape)) throw new Error(`AdamW.loadStateDict: state of '${name}' has shape ${shapeText(t.shape)}, the parameter ${shapeText(p.shape)}`);
      }
    }
    sd.paramGroups.forEach((g, i) => {
      Object.assign(this.paramGroups[i], { lr: g.lr, weightDecay: g.weightDecay, betas: g.betas, eps: g.eps });
    });
    const loaded = new Map(sd.state);
    for (const [name, s] of this.state) {
      if (loaded.has(name)) continue;
      s.expAvg.dispose();
      s.expAvgSq.dispose();
      this.state.delete(name);
    }
    tidy(() => {
      for (const [name, src] of loaded) {
        const p = this.params.get(name)!;
        const dst = this.state.get(name) ?? this.newState(name, p);
        dst.step = src.step;
        // Loading this optimizer's own stateDict() back leaves its tensors as they are.
        if (src.expAvg !== dst.expAvg) assign(dst.expAvg, asParamValue(src.expAvg, p));
        if (src.expAvgSq !== dst.expAvgSq) assign(dst.expAvgSq, asParamValue(src.expAvgSq, p));
      }
    });
  }

  // Frees the state (the parameters belong to their modules).
  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }

  // torch creates the state at a parameter's first step: zero moments, no steps yet.
  private newState(name: string, p: Tensor): AdamWParamState {
    const s = { step: 0, expAvg: zeros(p.shape, { device: p.device }).keep(), expAvgSq: zeros(p.shape, { device: p.device }).keep() };
    this.state.set(name, s);
    return s;
  }
}

// A loaded value as float32 on the parameter's device (a temporary of the caller's scope).
function asParamValue(t: Tensor, p: Tensor): Tensor {
  const f = t.dtype === 'float32' ? t : cast(t, 'float32');
  return f.device === p.device ? f : f.to(p.device);
}
