// Layers with PyTorch's parameter names, shapes and registration order (weight, bias, running_mean,
// running_var, num_batches_tracked, weight_g, weight_v), so that state dicts map one to one onto the
// official ones. Parameters start as PyTorch creates them before any initialisation runs: zeros, and
// ones for normalisation weights and running variances; lib/model/init.ts draws the official values.
import { ones, zeros, type Tensor } from '../engine/tensor.ts';
import * as ops from '../ops/index.ts';
import { Module, ModuleList } from './module.ts';

// A module with one input and one output (what nn.Sequential chains).
export interface Layer {
  forward(x: Tensor): Tensor;
}

function checkPositiveInts(what: string, values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what}: ${name} must be a positive integer, got ${v}`);
  }
}

// torch.nn.Linear: x (..., in) -> (..., out) with weight (out, in) and bias (out).
export class Linear extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, { bias = true } = {}) {
    super();
    checkPositiveInts('Linear', { inFeatures, outFeatures });
    this.weight = this.registerParameter('weight', zeros([outFeatures, inFeatures]));
    this.bias = bias ? this.registerParameter('bias', zeros([outFeatures])) : null;
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias ?? undefined);
  }
}

// torch.nn.LayerNorm over the last axis; eps 1e-6 as every DINO ViT uses (the class default, 1e-5, never is).
export class LayerNorm extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    checkPositiveInts('LayerNorm', { dim });
    this.weight = this.registerParameter('weight', ones([dim]));
    this.bias = this.registerParameter('bias', zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export interface BatchNorm1dOptions {
  eps?: number;
  momentum?: number;
}

// torch.nn.BatchNorm1d(C) on (N, C) input. In training mode the batch statistics normalise and the
// running statistics and batch counter are updated in place (also under noGrad, as for DINO's teacher,
// which stays in training mode); in eval mode the running statistics are used.
// num_batches_tracked is int64 in PyTorch and float32 here (exact up to 2^24 batches).
export class BatchNorm1d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;
  readonly eps: number;
  readonly momentum: number;

  constructor(readonly numFeatures: number, opts: BatchNorm1dOptions = {}) {
    super();
    checkPositiveInts('BatchNorm1d', { numFeatures });
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    this.weight = this.registerParameter('weight', ones([numFeatures]));
    this.bias = this.registerParameter('bias', zeros([numFeatures]));
    this.runningMean = this.registerBuffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.registerBuffer('running_var', ones([numFeatures]));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', zeros([]));
  }

  forward(x: Tensor): Tensor {
    return ops.batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, this.numBatchesTracked, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

// torch.nn.GELU() (exact erf form). No parameters, but it takes an index in a Sequential.
export class GELU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return ops.gelu(x);
  }
}

// torch.nn.Sequential: layers named 0, 1, 2, ... applied in order.
export class Sequential extends ModuleList<Module & Layer> implements Layer {
  forward(x: Tensor): Tensor {
    return this.items.reduce((h, layer) => layer.forward(h), x);
  }
}

// torch.nn.Conv2d(inChannels, outChannels, kernel_size=k, stride=k) followed by flatten(2).transpose(1, 2):
// the ViT's patch projection, the only convolution it has. (B, C, H, W) -> (B, N, outChannels) with
// N = floor(H/k) * floor(W/k) patches in row-major order; weight (out, in, k, k) and bias (out) as Conv2d.
export class PatchConv2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number) {
    super();
    checkPositiveInts('PatchConv2d', { inChannels, outChannels, kernelSize });
    this.weight = this.registerParameter('weight', zeros([outChannels, inChannels, kernelSize, kernelSize]));
    this.bias = this.registerParameter('bias', zeros([outChannels]));
  }

  forward(x: Tensor): Tensor {
    return ops.patchEmbed(x, this.weight, this.bias);
  }
}

// A bias-free Linear under torch.nn.utils.weight_norm (dim 0): W[i, :] = g[i] v[i, :] / ||v[i, :]||,
// with weight_g (out, 1) and weight_v (out, in). DINO's last layer (out = 65536): the normalised W is
// computed once per forward, and its gradient flows to v (and to g when it is trainable). With
// trainableNorm false, weight_g is registered with requiresGrad false (norm_last_layer: unit rows).
export class WeightNormLinear extends Module implements Layer {
  readonly weightG: Tensor;
  readonly weightV: Tensor;

  constructor(readonly inFeatures: number, readonly outFeatures: number, { trainableNorm = true } = {}) {
    super();
    checkPositiveInts('WeightNormLinear', { inFeatures, outFeatures });
    this.weightG = this.registerParameter('weight_g', ones([outFeatures, 1]), { requiresGrad: trainableNorm });
    this.weightV = this.registerParameter('weight_v', zeros([outFeatures, inFeatures]));
  }

  // The effective weight (out, in). PyTorch divides by ||v|| unclamped; l2Normalize clamps it at 1e-12,
  // which differs only for an all-zero row (NaN there in PyTorch, 0 here).
  weight(): Tensor {
    return ops.mul(ops.l2Normalize(this.weightV), this.weightG);
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight());
  }
}
