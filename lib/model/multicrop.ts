// The official MultiCropWrapper: the backbone runs once per run of consecutive crops of equal width (the
// 2 global crops, then the local ones), and the head once on every crop's features, so that a batch-norm
// head sees all of them together.
import { shapeText, type Tensor } from '../engine/tensor.ts';
import * as ops from '../ops/index.ts';
import { Module } from '../nn/module.ts';
import type { DINOHead } from './head.ts';
import type { ViTForwardOptions, VisionTransformer } from './vit.ts';

export class MultiCropWrapper extends Module {
  constructor(readonly backbone: VisionTransformer, readonly head: DINOHead) {
    super();
    this.registerModule('backbone', backbone);
    this.registerModule('head', head);
  }

  // crops: each (B, C, H, W) -> backbone features (sum of B over the crops, D), crop-major: the rows of
  // crop 0, then crop 1, ... Crops are grouped as the official code groups them, by equal width only,
  // so the crops of a group must have equal heights too.
  backboneFeatures(crops: readonly Tensor[], opts: ViTForwardOptions = {}): Tensor {
    if (crops.length === 0) throw new Error('MultiCropWrapper: no crops given');
    const features: Tensor[] = [];
    for (let start = 0; start < crops.length; ) {
      let end = start + 1;
      while (end < crops.length && crops[end].shape[3] === crops[start].shape[3]) end++;
      const group = crops.slice(start, end);
      for (const c of group) {
        if (c.rank !== 4 || c.shape[2] !== group[0].shape[2]) {
          const shapes = group.map((g) => shapeText(g.shape)).join(', ');
          throw new Error(`MultiCropWrapper: crops ${start}..${end - 1} share a width, so they must all be (B, C, H, W) with one H; got ${shapes}`);
        }
      }
      features.push(this.backbone.forward(group.length === 1 ? group[0] : ops.concat(group, 0), opts));
      start = end;
    }
    return features.length === 1 ? features[0] : ops.concat(features, 0);
  }

  // crops -> head outputs (nCrops * B, outDim), crop-major.
  forward(crops: readonly Tensor[], opts: ViTForwardOptions = {}): Tensor {
    return this.head.forward(this.backboneFeatures(crops, opts));
  }
}
