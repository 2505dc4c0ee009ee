// Convolutions: the ViT patch embedding (a Conv2d whose stride equals its kernel), with its gradient.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

// x (B, C, H, W), weight (D, C, p, p), bias (D) -> (B, N, D) with N = floor(H/p) * floor(W/p) patches in
// row-major order: Conv2d(C, D, kernel_size=p, stride=p)(x).flatten(2).transpose(1, 2).
export function patchEmbed(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  return runOp('patch_embed', [x, weight, bias])[0];
}

// The image rarely wants a gradient (it is data), and its gradient costs a GEMM as large as the forward.
registerGradient('patch_embed', ([dy], { inputs: [x, weight], needsGrad }) => {
  if (needsGrad[0]) return runOp('patch_embed_backward', [dy!, x, weight]);
  const [dweight, dbias] = runOp('patch_embed_backward', [dy!, x, weight], { inputGrad: false });
  return [null, dweight, dbias];
});
