// DINO's projection head (the official DINOHead): an MLP to a bottleneck, L2 normalisation, and a
// weight-normalised Linear to outDim logits. State-dict keys as the official nn.Sequential numbers them:
// mlp.0/2/4 without batch norm; with it Linear, BatchNorm1d, GELU per hidden layer, so mlp.0/1/3/4/6.
import type { Generator } from '../engine/random.ts';
import type { Tensor } from '../engine/tensor.ts';
import * as ops from '../ops/index.ts';
import { BatchNorm1d, GELU, Linear, Sequential, WeightNormLinear } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';
import { initDINOHead } from './init.ts';

export interface DINOHeadConfig {
  inDim: number;
  outDim?: number;
  // BatchNorm1d before each GELU (use_bn_in_head).
  useBn?: boolean;
  // Fix the last layer's weight_g at 1 (not trained), so every logit is a cosine.
  normLastLayer?: boolean;
  // Linear layers in the MLP; values below 1 count as 1, as in the official code.
  nlayers?: number;
  hiddenDim?: number;
  bottleneckDim?: number;
  // Draws the official initial values; without it the weights are zeros, to be loaded.
  generator?: Generator;
}

export class DINOHead extends Module {
  // One Linear when nlayers is 1 (keys mlp.weight, mlp.bias), as officially.
  readonly mlp: Linear | Sequential;
  readonly lastLayer: WeightNormLinear;

  constructor(config: DINOHeadConfig) {
    super();
    const { inDim, outDim = 65536, useBn = false, normLastLayer = true, hiddenDim = 2048, bottleneckDim = 256 } = config;
    const nlayers = Math.max(config.nlayers ?? 3, 1);
    if (!Number.isInteger(nlayers)) throw new RangeError(`DINOHead: nlayers must be an integer, got ${config.nlayers}`);
    if (nlayers === 1) {
      this.mlp = this.registerModule('mlp', new Linear(inDim, bottleneckDim));
    } else {
      const hidden = (from: number) => [new Linear(from, hiddenDim), ...(useBn ? [new BatchNorm1d(hiddenDim)] : []), new GELU()];
      const layers = [...hidden(inDim)];
      for (let i = 0; i < nlayers - 2; i++) layers.push(...hidden(hiddenDim));
      layers.push(new Linear(hiddenDim, bottleneckDim));
      this.mlp = this.registerModule('mlp', new Sequential(layers));
    }
    this.lastLayer = this.registerModule('last_layer', new WeightNormLinear(bottleneckDim, outDim, { trainableNorm: !normLastLayer }));
    if (config.generator !== undefined) initDINOHead(this, config.generator);
  }

  // x (rows, inDim) -> logits (rows, outDim). With batch norm in training mode the rows are one batch.
  forward(x: Tensor): Tensor {
    return this.lastLayer.forward(ops.l2Normalize(this.mlp.forward(x), 1e-12));
  }
}
