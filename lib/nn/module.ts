// Modules: named parameters, buffers and submodules, in the order PyTorch registers them, so that
// state dicts have the official keys (`blocks.0.attn.qkv.weight`) in the official order and
// `parameters()` of a student and a teacher zip together as DINO's EMA expects.
import { Tensor, shapeText } from '../engine/tensor.ts';
import { assign } from '../ops/optim.ts';
import { cast } from '../ops/elementwise.ts';
import { tidy } from '../engine/scope.ts';

export interface ParameterOptions {
  // false for parameters that are never trained (a weight-normalised layer's fixed weight_g).
  requiresGrad?: boolean;
}

export abstract class Module {
  private readonly params = new Map<string, Tensor>();
  private readonly frozen = new Set<string>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();
  training = true;

  // Registers a parameter (kept: it outlives every scope until dispose()).
  protected registerParameter(name: string, value: Tensor, opts: ParameterOptions = {}): Tensor {
    this.checkName(name);
    this.params.set(name, value.keep());
    if (opts.requiresGrad === false) this.frozen.add(name);
    return value;
  }

  protected registerBuffer(name: string, value: Tensor): Tensor {
    this.checkName(name);
    this.buffers.set(name, value.keep());
    return value;
  }

  protected registerModule<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    this.children.set(name, module);
    return module;
  }

  private checkName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`invalid member name '${name}'`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name)) throw new Error(`'${name}' is registered twice`);
  }

  // Each module's own entries, then each submodule's, depth first, keys prefixed by their path: the
  // order of PyTorch's named_parameters(), named_buffers() and state_dict().
  private walk(prefix: string, own: (m: Module) => Iterable<[string, Tensor]>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of own(this)) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.walk(`${prefix}${n}.`, own));
    return out;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    return this.walk(prefix, (m) => m.params);
  }

  // The parameters an optimizer updates (requiresGrad), in the same order.
  namedTrainableParameters(prefix = ''): [string, Tensor][] {
    return this.walk(prefix, (m) => [...m.params].filter(([n]) => !m.frozen.has(n)));
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    return this.walk(prefix, (m) => m.buffers);
  }

  // Parameters then buffers of each module: the key order of PyTorch's state_dict().
  stateDict(prefix = ''): [string, Tensor][] {
    return this.walk(prefix, (m) => [...m.params, ...m.buffers]);
  }

  // Copies values into the existing tensors (so an optimizer holding them stays valid). With strict,
  // missing and unexpected keys are errors, as in PyTorch; shapes must always match. Float16/bfloat16
  // values are cast. Returns the keys that were missing and unexpected.
  loadStateDict(entries: Iterable<[string, Tensor]>, { strict = true } = {}): { missing: string[]; unexpected: string[] } {
    const own = new Map(this.stateDict());
    const given = new Map(entries);
    const missing = [...own.keys()].filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      throw new Error(`state dict does not match: missing ${JSON.stringify(missing)}, unexpected ${JSON.stringify(unexpected)}`);
    }
    for (const [k, dst] of own) {
      const src = given.get(k);
      if (src === undefined) continue;
      if (src.shape.length !== dst.shape.length || src.shape.some((d, i) => d !== dst.shape[i])) {
        throw new Error(`'${k}': shape ${shapeText(src.shape)} in the state dict, ${shapeText(dst.shape)} in the model`);
      }
    }
    tidy(() => {
      for (const [k, dst] of own) {
        let src = given.get(k);
        if (src === undefined) continue;
        if (src.dtype !== 'float32') src = cast(src, 'float32');
        if (src.device !== dst.device) src = src.to(dst.device);
        assign(dst, src);
      }
    });
    return { missing, unexpected };
  }

  train(mode = true): this {
    this.training = mode;
    for (const m of this.children.values()) m.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  // Frees every parameter and buffer of this module and its submodules.
  dispose(): void {
    for (const p of this.params.values()) p.dispose();
    for (const b of this.buffers.values()) b.dispose();
    for (const m of this.children.values()) m.dispose();
  }
}

// Submodules named 0, 1, 2, ... (nn.ModuleList), so keys read `blocks.3.mlp.fc1.weight`.
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];

  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }
}
