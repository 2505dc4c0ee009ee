// Gradients by parameter name, and what DINO does to them between the backward pass and the optimizer
// step: per-tensor clipping, then dropping the last layer's gradients while it is frozen.
import type { Tensor } from '../engine/tensor.ts';
import { clipGradNorm } from '../ops/index.ts';

// Parameter name -> gradient; null is PyTorch's `grad is None`: the optimizer skips that parameter.
export type NamedGrads = Map<string, Tensor | null>;

// Pairs the gradients valueAndGrads() returned with the names of the parameters it was given.
export function nameGrads(params: readonly (readonly [string, Tensor])[], grads: readonly (Tensor | null)[]): NamedGrads {
  if (params.length !== grads.length) throw new Error(`nameGrads: ${params.length} parameters but ${grads.length} gradients`);
  return new Map(params.map(([name], i) => [name, grads[i]]));
}

// utils.clip_gradients: each gradient (in place) is scaled by clip / (||g|| + 1e-6) when that is below 1.
// Returns the norms before clipping as 0-d tensors, in the map's order, skipping null gradients; they
// stay on the device until read (item()).
export function clipGradients(grads: NamedGrads, clip: number): Map<string, Tensor> {
  if (!(clip > 0 && Number.isFinite(clip))) throw new RangeError(`clipGradients: clip must be finite and > 0, got ${clip} (to disable clipping, do not call it)`);
  const norms = new Map<string, Tensor>();
  for (const [name, g] of grads) if (g !== null) norms.set(name, clipGradNorm(g, clip));
  return norms;
}

// utils.cancel_gradients_last_layer: while epoch < freezeLastLayer, every gradient whose name contains
// "last_layer" becomes null, so that AdamW neither updates nor decays the head's last layer.
export function cancelGradientsLastLayer(epoch: number, freezeLastLayer: number, grads: NamedGrads): void {
  if (epoch >= freezeLastLayer) return;
  for (const name of grads.keys()) if (name.includes('last_layer')) grads.set(name, null);
}
