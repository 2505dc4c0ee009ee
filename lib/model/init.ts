// The official initialisation of DINO's ViT and head, drawn from a seeded Generator (the values follow
// the official distributions; they are not PyTorch's random streams):
// - every Linear weight, cls_token and pos_embed: truncated normal, std 0.02, absolute bounds +-2
//   (timm's trunc_normal_, so effectively untruncated); Linear biases 0; LayerNorm weight 1, bias 0;
// - the patch-embedding Conv2d keeps PyTorch's default init, kaiming_uniform(a = sqrt(5)), which is
//   U(+-1/sqrt(fan_in)) for the weight, and the same bound for the bias (fan_in = 3 p^2);
// - the head's last layer is created after _init_weights ran: weight_v keeps nn.Linear's default
//   U(+-1/sqrt(in)) and weight_g is filled with 1.
// The constructors call these when given a generator. What PyTorch sets at construction and
// _init_weights leaves alone (BatchNorm weight 1, bias 0 and running statistics) is already in place.
import type { Generator } from '../engine/random.ts';
import { full, tensor, type Tensor } from '../engine/tensor.ts';
import { tidy } from '../engine/scope.ts';
import { assign } from '../ops/optim.ts';
import { LayerNorm, Linear, type PatchConv2d, type WeightNormLinear } from '../nn/layers.ts';
import type { Module } from '../nn/module.ts';
import type { DINOHead } from './head.ts';
import type { VisionTransformer } from './vit.ts';

const TRUNC_STD = 0.02;

// Overwrites a parameter in place (the tensor object stays the one the modules and optimizers hold).
function set(param: Tensor, values: Float32Array): void {
  tidy(() => assign(param, tensor(values, param.shape, { device: param.device })));
}

function fill(param: Tensor, value: number): void {
  tidy(() => assign(param, full(param.shape, value, { device: param.device })));
}

export function truncNormal(param: Tensor, gen: Generator, std = TRUNC_STD): void {
  set(param, gen.truncNormalArray(param.size, std, -2, 2));
}

// PyTorch's default for Linear and Conv2d weights and biases: U(+-1/sqrt(fan_in)).
export function uniformFanIn(param: Tensor, gen: Generator, fanIn: number): void {
  const bound = 1 / Math.sqrt(fanIn);
  set(param, gen.uniformArray(param.size, -bound, bound));
}

// The official _init_weights for one module (what self.apply(self._init_weights) does to it).
function initWeights(m: Module, gen: Generator): void {
  if (m instanceof Linear) {
    truncNormal(m.weight, gen);
    if (m.bias !== null) fill(m.bias, 0);
  } else if (m instanceof LayerNorm) {
    fill(m.weight, 1);
    fill(m.bias, 0);
  }
}

function initPatchConv(conv: PatchConv2d, gen: Generator): void {
  const fanIn = conv.inChannels * conv.kernelSize * conv.kernelSize;
  uniformFanIn(conv.weight, gen, fanIn);
  uniformFanIn(conv.bias, gen, fanIn);
}

export function initVisionTransformer(vit: VisionTransformer, gen: Generator): void {
  initPatchConv(vit.patchEmbed.proj, gen);
  truncNormal(vit.posEmbed, gen);
  truncNormal(vit.clsToken, gen);
  for (const b of vit.blocks.items) {
    for (const m of [b.norm1, b.attn.qkv, b.attn.proj, b.norm2, b.mlp.fc1, b.mlp.fc2]) initWeights(m, gen);
  }
  initWeights(vit.norm, gen);
}

function initWeightNormLinear(layer: WeightNormLinear, gen: Generator): void {
  uniformFanIn(layer.weightV, gen, layer.inFeatures);
  fill(layer.weightG, 1);
}

export function initDINOHead(head: DINOHead, gen: Generator): void {
  const layers = head.mlp instanceof Linear ? [head.mlp] : head.mlp.items;
  for (const m of layers) initWeights(m, gen);
  initWeightNormLinear(head.lastLayer, gen);
}
