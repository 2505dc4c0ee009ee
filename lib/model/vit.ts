// DINO's Vision Transformer (the official vision_transformer.py): patch embedding, CLS token, position
// embeddings resampled for other crop sizes, pre-norm blocks with stochastic depth, and the final
// LayerNorm. Parameter names and order are those of the official state dict, so checkpoints map one
// to one (cls_token, pos_embed, patch_embed.proj.*, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,
// mlp.fc1,mlp.fc2}.*, norm.*).
import type { Generator } from '../engine/random.ts';
import { shapeText, tensor, zeros, type Tensor } from '../engine/tensor.ts';
import * as ops from '../ops/index.ts';
import { LayerNorm, Linear, PatchConv2d } from '../nn/layers.ts';
import { Module, ModuleList } from '../nn/module.ts';
import { initVisionTransformer } from './init.ts';

export type DropPathBranch = 'attn' | 'mlp';

export interface DropPathRequest {
  block: number;
  branch: DropPathBranch;
  // Samples in this backbone call.
  batch: number;
  keepProb: number;
}

// One value per sample: 1 keeps the sample's branch (scaled by 1 / keepProb), 0 drops it.
export type DropPathMasks = (request: DropPathRequest) => ArrayLike<number>;

export interface ViTForwardOptions {
  // Draws the stochastic-depth masks (training mode, drop_path_rate > 0), block by block, the attention
  // branch before the MLP branch, as the official forward draws them.
  generator?: Generator;
  // Exact masks instead, asked for in that same order (parity with a reference that drew its own).
  dropPathMasks?: DropPathMasks;
}

// The official drop_path's masks: floor(keepProb + U[0, 1)) per sample.
export function sampleDropPathMasks(gen: Generator): DropPathMasks {
  return ({ batch, keepProb }) => Array.from({ length: batch }, () => Math.floor(keepProb + gen.random()));
}

// The official interpolate_pos_encoding for an image of height x width pixels: posEmbed (1, N + 1, D)
// itself when the image has N patches and is square, otherwise the sqrt(N) x sqrt(N) grid resampled
// bicubically to floor(height / p) x floor(width / p) with scale factors (floor(size / p) + 0.1) / sqrt(N)
// (PyTorch samples with the scale factor given, not with the ratio of sizes), the CLS entry in front.
export function interpolatePosEncoding(posEmbed: Tensor, patchSize: number, height: number, width: number): Tensor {
  const dim = posEmbed.shape[2];
  const N = posEmbed.shape[1] - 1;
  const gh = Math.floor(height / patchSize);
  const gw = Math.floor(width / patchSize);
  if (gh * gw === N && height === width) return posEmbed;
  const g = Math.round(Math.sqrt(N));
  if (g * g !== N) throw new Error(`pos_embed holds ${N} patch positions, not a square grid: it cannot be resampled`);
  const grid = ops.permute(ops.reshape(ops.slice(posEmbed, 1, 1), [1, g, g, dim]), [0, 3, 1, 2]);
  const resampled = ops.bicubicInterpolate(grid, { scaleH: (gh + 0.1) / g, scaleW: (gw + 0.1) / g, outH: gh, outW: gw });
  const flat = ops.reshape(ops.permute(resampled, [0, 2, 3, 1]), [1, gh * gw, dim]);
  return ops.concat([ops.slice(posEmbed, 1, 0, 1), flat], 1);
}

// The official prepare_tokens: patch tokens (B, N, D) from the projection's weight (D, C, p, p) and bias,
// the CLS token in front, plus the (resampled) position embeddings -> (B, N + 1, D).
export function prepareTokens(img: Tensor, patchWeight: Tensor, patchBias: Tensor, clsToken: Tensor, posEmbed: Tensor): Tensor {
  const [B, , H, W] = img.shape;
  const dim = patchWeight.shape[0];
  const patches = ops.patchEmbed(img, patchWeight, patchBias);
  const tokens = ops.concat([ops.broadcastTo(clsToken, [B, 1, dim]), patches], 1);
  return ops.add(tokens, interpolatePosEncoding(posEmbed, patchWeight.shape[3], H, W));
}

export class PatchEmbed extends Module {
  readonly proj: PatchConv2d;
  readonly numPatches: number;

  constructor(readonly imgSize: number, readonly patchSize: number, inChans: number, embedDim: number) {
    super();
    this.numPatches = Math.floor(imgSize / patchSize) ** 2;
    this.proj = this.registerModule('proj', new PatchConv2d(inChans, embedDim, patchSize));
  }
}

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(dim: number, readonly numHeads: number, qkvBias: boolean) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: qkvBias }));
    this.proj = this.registerModule('proj', new Linear(dim, dim));
  }

  // softmax(q k^T / sqrt(head_dim)) v per head; the qkv rows are [q | k | v], each split head by head.
  forward(x: Tensor): Tensor {
    return this.proj.forward(ops.attention(this.qkv.forward(x), this.numHeads));
  }

  // The attention probabilities (B, H, T, T) alone (attention maps; not differentiable).
  probabilities(x: Tensor): Tensor {
    return ops.attentionWithProbs(this.qkv.forward(x), this.numHeads).probs;
  }
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(ops.gelu(this.fc1.forward(x)));
  }
}

export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(readonly index: number, dim: number, numHeads: number, mlpRatio: number, qkvBias: boolean, readonly dropPathRate: number) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new Attention(dim, numHeads, qkvBias));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.floor(dim * mlpRatio)));
  }

  // Pre-norm: x + DropPath(attn(norm1(x))), then x + DropPath(mlp(norm2(x))), one mask per branch.
  forward(x: Tensor, opts: ViTForwardOptions = {}): Tensor {
    const h = ops.add(x, this.dropPath(this.attn.forward(this.norm1.forward(x)), 'attn', opts));
    return ops.add(h, this.dropPath(this.mlp.forward(this.norm2.forward(h)), 'mlp', opts));
  }

  // Per-sample stochastic depth: branch / keep * mask. Nothing is drawn or multiplied in eval mode or at
  // rate 0 (the teacher, and block 0 of every model).
  private dropPath(branch: Tensor, which: DropPathBranch, opts: ViTForwardOptions): Tensor {
    if (!this.training || this.dropPathRate === 0) return branch;
    const masks = opts.dropPathMasks ?? (opts.generator !== undefined ? sampleDropPathMasks(opts.generator) : undefined);
    if (masks === undefined) {
      throw new Error(
        `block ${this.index}: stochastic depth (rate ${this.dropPathRate}) in training mode needs a generator or dropPathMasks in the forward options (or call eval())`,
      );
    }
    const batch = branch.shape[0];
    const keepProb = 1 - this.dropPathRate;
    const mask = masks({ block: this.index, branch: which, batch, keepProb });
    if (mask.length !== batch || Array.prototype.some.call(mask, (m: number) => m !== 0 && m !== 1)) {
      throw new Error(`block ${this.index} (${which}): a drop-path mask must hold ${batch} values, each 0 or 1; got [${Array.from(mask).join(', ')}]`);
    }
    const scaled = Float32Array.from(mask, (m) => m / keepProb);
    return ops.mul(branch, tensor(scaled, [batch, 1, 1], { device: branch.device }));
  }
}

export interface VisionTransformerConfig {
  patchSize: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  // Hidden width of the MLPs as a multiple of embedDim (4 in every DINO model).
  mlpRatio?: number;
  // Bias in the qkv projection (true in every DINO model).
  qkvBias?: boolean;
  // Sets the number of position embeddings: (imgSize / patchSize)^2 + 1.
  imgSize?: number;
  inChans?: number;
  // Stochastic depth: block i drops with rate dropPathRate * i / (depth - 1) (0.1 for DINO's student).
  dropPathRate?: number;
  // Draws the official initial values. Without it, parameters are zeros (norm weights ones), to be
  // filled by loadStateDict (a teacher copied from its student, a checkpoint).
  generator?: Generator;
}

export class VisionTransformer extends Module {
  readonly clsToken: Tensor;
  readonly posEmbed: Tensor;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly embedDim: number;
  readonly numHeads: number;
  readonly patchSize: number;
  readonly inChans: number;

  constructor(config: VisionTransformerConfig) {
    super();
    const { patchSize, embedDim, depth, numHeads, mlpRatio = 4, qkvBias = true, imgSize = 224, inChans = 3, dropPathRate = 0 } = config;
    for (const [name, v] of Object.entries({ patchSize, embedDim, depth, numHeads, imgSize, inChans })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`VisionTransformer: ${name} must be a positive integer, got ${v}`);
    }
    if (embedDim % numHeads !== 0) throw new RangeError(`VisionTransformer: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    if (imgSize < patchSize) throw new RangeError(`VisionTransformer: imgSize ${imgSize} is smaller than patchSize ${patchSize}`);
    if (!(dropPathRate >= 0 && dropPathRate < 1)) throw new RangeError(`VisionTransformer: dropPathRate must be in [0, 1), got ${dropPathRate}`);
    if (!(Math.floor(embedDim * mlpRatio) >= 1)) throw new RangeError(`VisionTransformer: mlpRatio ${mlpRatio} gives an MLP without units`);
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.patchSize = patchSize;
    this.inChans = inChans;
    this.patchEmbed = this.registerModule('patch_embed', new PatchEmbed(imgSize, patchSize, inChans, embedDim));
    this.clsToken = this.registerParameter('cls_token', zeros([1, 1, embedDim]));
    this.posEmbed = this.registerParameter('pos_embed', zeros([1, this.patchEmbed.numPatches + 1, embedDim]));
    // torch.linspace(0, rate, depth): [0] for a single block.
    const rates = Array.from({ length: depth }, (_, i) => (depth === 1 ? 0 : (dropPathRate * i) / (depth - 1)));
    this.blocks = this.registerModule('blocks', new ModuleList(rates.map((r, i) => new Block(i, embedDim, numHeads, mlpRatio, qkvBias, r))));
    this.norm = this.registerModule('norm', new LayerNorm(embedDim));
    if (config.generator !== undefined) initVisionTransformer(this, config.generator);
  }

  get depth(): number {
    return this.blocks.items.length;
  }

  // Where the weights live; inputs must be there too.
  get device(): string {
    return this.clsToken.device;
  }

  // img (B, C, H, W) -> tokens (B, N + 1, D) with position embeddings.
  prepareTokens(img: Tensor): Tensor {
    const [, C, H, W] = img.shape;
    if (img.rank !== 4 || C !== this.inChans || H < this.patchSize || W < this.patchSize) {
      throw new Error(`VisionTransformer: expected images (B, ${this.inChans}, H, W) with H, W >= ${this.patchSize}, got ${shapeText(img.shape)}`);
    }
    return prepareTokens(img, this.patchEmbed.proj.weight, this.patchEmbed.proj.bias, this.clsToken, this.posEmbed);
  }

  // The CLS token after the final LayerNorm: (B, D), DINO's image feature. The norm runs on the CLS row
  // only: LayerNorm acts on each token alone, so this equals norm(x)[:, 0].
  forward(img: Tensor, opts: ViTForwardOptions = {}): Tensor {
    let x = this.prepareTokens(img);
    for (const b of this.blocks.items) x = b.forward(x, opts);
    return ops.reshape(this.norm.forward(ops.slice(x, 1, 0, 1)), [x.shape[0], this.embedDim]);
  }

  // The outputs of the last n blocks, each after the final LayerNorm: n tensors (B, N + 1, D), in block order.
  getIntermediateLayers(img: Tensor, n = 1, opts: ViTForwardOptions = {}): Tensor[] {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`getIntermediateLayers: n must be a positive integer, got ${n}`);
    let x = this.prepareTokens(img);
    const out: Tensor[] = [];
    this.blocks.items.forEach((b, i) => {
      x = b.forward(x, opts);
      if (this.depth - i <= n) out.push(this.norm.forward(x));
    });
    return out;
  }

  // The last block's attention probabilities (B, H, N + 1, N + 1), computed from its norm1 input.
  getLastSelfAttention(img: Tensor, opts: ViTForwardOptions = {}): Tensor {
    let x = this.prepareTokens(img);
    const blocks = this.blocks.items;
    for (const b of blocks.slice(0, -1)) x = b.forward(x, opts);
    const last = blocks[blocks.length - 1];
    return last.attn.probabilities(last.norm1.forward(x));
  }
}

export type ViTFactoryOptions = Partial<Omit<VisionTransformerConfig, 'embedDim' | 'depth' | 'numHeads'>>;

// The official factories: 12 blocks of head_dim 64, MLP ratio 4, qkv bias; patch 16 unless given.
export const vitTiny = (opts: ViTFactoryOptions = {}): VisionTransformer =>
  new VisionTransformer({ patchSize: 16, ...opts, embedDim: 192, depth: 12, numHeads: 3 });
export const vitSmall = (opts: ViTFactoryOptions = {}): VisionTransformer =>
  new VisionTransformer({ patchSize: 16, ...opts, embedDim: 384, depth: 12, numHeads: 6 });
export const vitBase = (opts: ViTFactoryOptions = {}): VisionTransformer =>
  new VisionTransformer({ patchSize: 16, ...opts, embedDim: 768, depth: 12, numHeads: 12 });
