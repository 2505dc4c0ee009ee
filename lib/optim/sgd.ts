// SGD as torch.optim.SGD computes it (the linear probe's optimizer; DINO itself trains with AdamW).
import { dispose, tidy } from '../engine/scope.ts';
import type { Tensor } from '../engine/tensor.ts';
import { add, affine, assign, scale, sub } from '../ops/index.ts';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

// torch.optim.SGD without dampening or Nesterov: g = grad + wd * p; buf = g at the first step, then
// momentum * buf + g; p -= lr * buf.
export class SGD {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private readonly buffers: (Tensor | null)[];

  constructor(readonly params: readonly Tensor[], { lr, momentum = 0, weightDecay = 0 }: SgdOptions) {
    if (!(lr >= 0) || !(momentum >= 0) || !(weightDecay >= 0)) throw new RangeError(`SGD: lr, momentum and weight decay must be >= 0, got ${lr}, ${momentum}, ${weightDecay}`);
    this.lr = lr;
    this.momentum = momentum;
    this.weightDecay = weightDecay;
    this.buffers = params.map(() => null);
  }

  // grads[i] belongs to params[i]; a null gradient leaves its parameter (and momentum) alone.
  step(grads: readonly (Tensor | null)[]): void {
    if (grads.length !== this.params.length) throw new RangeError(`SGD: ${grads.length} gradients for ${this.params.length} parameters`);
    tidy(() =>
      this.params.forEach((p, i) => {
        const grad = grads[i];
        if (grad === null) return;
        let d = this.weightDecay !== 0 ? add(grad, scale(p, this.weightDecay)) : grad;
        if (this.momentum !== 0) {
          const buf = this.buffers[i];
          if (buf === null) d = this.buffers[i] = affine(d, 1).keep();
          else {
            assign(buf, add(scale(buf, this.momentum), d));
            d = buf;
          }
        }
        assign(p, sub(p, scale(d, this.lr)));
      }),
    );
  }

  dispose(): void {
    dispose(this.buffers);
    this.buffers.fill(null);
  }
}
