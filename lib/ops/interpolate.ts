// Image resampling, with gradients.
import type { Tensor } from '../engine/tensor.ts';
import { registerGradient, runOp } from '../autograd/tape.ts';

export interface BicubicOptions {
  scaleH: number;
  scaleW: number;
  // Output size; floor(H * scaleH) and floor(W * scaleW) when omitted. The scale factors still set
  // the sampling positions either way.
  outH?: number;
  outW?: number;
}

// x (N, C, H, W) -> (N, C, outH, outW) as PyTorch's
// F.interpolate(x, scale_factor=(scaleH, scaleW), mode='bicubic', align_corners=False): the source of
// output index i is (i + 0.5) / scale - 0.5 with the given scale (DINO's pos-embed resampling relies
// on this), Keys' cubic kernel with A = -0.75, borders clamped, no antialiasing.
export function bicubicInterpolate(x: Tensor, opts: BicubicOptions): Tensor {
  return runOp('bicubic_interpolate', [x], { scaleH: opts.scaleH, scaleW: opts.scaleW, outH: opts.outH, outW: opts.outW })[0];
}

registerGradient('bicubic_interpolate', ([dy], { inputs: [x], attrs }) => [
  runOp('bicubic_interpolate_backward', [dy!], { inH: x.shape[2], inW: x.shape[3], scaleH: attrs.scaleH, scaleW: attrs.scaleW })[0],
]);
