// Reverse-mode autograd on a tape. The tape exists only while valueAndGrads() runs: ops are recorded
// when one of their inputs depends on a watched tensor, and the backward pass walks the records in
// reverse, calling one small gradient function per op (lib/ops/*: registerGradient).
import { addon, type Attrs } from '../engine/native.ts';
import { Tensor, shapeText } from '../engine/tensor.ts';
import { setRetainPredicate, tidy } from '../engine/scope.ts';

export interface TapeNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Attrs;
  // Which inputs want a gradient (depend on a watched tensor), so a gradient can skip the others' work.
  readonly needsGrad: readonly boolean[];
}

// Gradients of the op's inputs, given the gradients of its outputs (null where an output got none).
// Return null for an input that takes no gradient (an index, a mask, a running statistic).
export type GradFn = (dys: readonly (Tensor | null)[], node: TapeNode) => readonly (Tensor | null)[];

const gradients = new Map<string, GradFn>();

export function registerGradient(op: string, fn: GradFn): void {
  if (gradients.has(op)) throw new Error(`a gradient for '${op}' is already registered`);
  gradients.set(op, fn);
}

class Tape {
  readonly nodes: TapeNode[] = [];
  readonly needsGrad = new Set<Tensor>();
  // Every tensor a node refers to: kept alive through scopes nested in the recorded function.
  readonly referenced = new Set<Tensor>();
}

let tape: Tape | null = null;
setRetainPredicate((t) => tape !== null && tape.referenced.has(t as Tensor));
let noGradDepth = 0;

// Runs a native op and records it when gradients are wanted. Every op in lib/ops goes through here.
export function runOp(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor[] {
  const outputs = addon.run(op, inputs.map((t) => t.native), attrs).map((h) => new Tensor(h));
  const needsGrad = tape !== null && noGradDepth === 0 ? inputs.map((t) => tape!.needsGrad.has(t)) : [];
  if (needsGrad.some((n) => n)) {
    tape!.nodes.push({ op, inputs: [...inputs], outputs, attrs, needsGrad });
    for (const o of outputs) tape!.needsGrad.add(o);
    for (const t of [...inputs, ...outputs]) tape!.referenced.add(t);
  }
  return outputs;
}

// Runs fn with recording off (the teacher's forward pass, the EMA update, evaluation).
export function noGrad<T>(fn: () => T): T {
  noGradDepth++;
  try {
    return fn();
  } finally {
    noGradDepth--;
  }
}

export interface ValueAndGrads {
  value: Tensor;
  // One per watched tensor; null where the value does not depend on it.
  grads: (Tensor | null)[];
}

// The value of f() (a tensor with one element) and its gradient with respect to each of xs. Everything
// made on the way (activations, saved statistics, intermediate gradients) is freed before returning.
export function valueAndGrads(f: () => Tensor, xs: readonly Tensor[]): ValueAndGrads {
  if (tape !== null) throw new Error('valueAndGrads() calls cannot be nested');
  return tidy(() => {
    const t = new Tape();
    for (const x of xs) t.needsGrad.add(x);
    tape = t;
    let value: Tensor;
    try {
      value = f();
    } finally {
      tape = null;
    }
    if (!(value instanceof Tensor) || value.size !== 1) {
      throw new Error(`valueAndGrads: f must return a tensor with one element, got ${value instanceof Tensor ? shapeText(value.shape) : typeof value}`);
    }
    const grads = backward(t, value);
    return { value, grads: unaliased(value, xs.map((x) => grads.get(x) ?? null)) };
  });
}

export function grads(f: () => Tensor, xs: readonly Tensor[]): (Tensor | null)[] {
  return tidy(() => {
    const r = valueAndGrads(f, xs);
    r.value.dispose();
    return r.grads;
  });
}

// Gradient functions may pass an upstream gradient through unchanged or as a view (add, reshape), so two
// returned gradients can share memory. Callers update gradients in place (clipping), so each one that
// shares memory with an earlier one (or with the value) is replaced by a copy.
function unaliased(value: Tensor, gs: (Tensor | null)[]): (Tensor | null)[] {
  const seen = new Set<number>([value.native.storageId]);
  return gs.map((g) => {
    if (g === null) return null;
    const id = g.native.storageId;
    if (!seen.has(id)) {
      seen.add(id);
      return g;
    }
    const copy = runOp('affine', [g], { alpha: 1, beta: 0 })[0];
    seen.add(copy.native.storageId);
    return copy;
  });
}

function backward(t: Tape, value: Tensor): Map<Tensor, Tensor> {
  const acc = new Map<Tensor, Tensor>();
  const seed = new Tensor(addon.fromArray(new Float32Array([1]), [...value.shape], 'float32', 'cpu'));
  acc.set(value, value.device === 'cpu' ? seed : seed.to(value.device));
  return noGrad(() => {
    for (let i = t.nodes.length - 1; i >= 0; i--) {
      const node = t.nodes[i];
      const dys = node.outputs.map((o) => acc.get(o) ?? null);
      if (dys.every((d) => d === null)) continue;
      const fn = gradients.get(node.op);
      if (fn === undefined) throw new Error(`no gradient is registered for op '${node.op}'`);
      const dxs = fn(dys, node);
      node.inputs.forEach((x, j) => {
        const dx = dxs[j];
        if (dx === null || dx === undefined || !t.needsGrad.has(x)) return;
        if (dx.shape.length !== x.shape.length || dx.shape.some((d, k) => d !== x.shape[k])) {
          throw new Error(`gradient of '${node.op}' input ${j} has shape ${shapeText(dx.shape)}, expected ${shapeText(x.shape)}`);
        }
        const prev = acc.get(x);
        acc.set(x, prev === undefined ? dx : runOp('add', [prev, dx])[0]);
      });
    }
    return acc;
  });
}
