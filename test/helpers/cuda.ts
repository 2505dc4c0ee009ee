// CPU vs CUDA parity: an op runs on the same inputs on both devices and every output (and, for in-place
// ops, every input it writes) must agree within a stated tolerance. The CPU kernels are themselves
// checked against PyTorch, so this carries that check over to the GPU. Skipped, with the reason, where
// no CUDA device is usable. The cases are plain data (test/cuda/cases/*.ts) so that both the tap tests
// and the device check (scripts/device-check.ts, which runs without node_modules) can run them.
import { addon, runOp, tensor, tidy, type Attrs } from '../../lib/index.ts';
import { compare, type Tolerance } from './close.ts';

const info = addon.buildInfo().cuda;

// For t.test(name, { skip: cudaSkip }, ...): false where a GPU answers, otherwise why not.
export const cudaSkip: string | false = info.usable ? false : `no usable CUDA device (${info.reason})`;

export interface Input {
  data: ArrayLike<number>;
  shape: readonly number[];
}

// Deterministic values in [-scale, scale): tests must not depend on Math.random.
export function randn(shape: readonly number[], seed: number, scale = 1): Input {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return { data, shape };
}

export interface ParityCase {
  op: string;
  inputs: Input[];
  attrs?: Attrs;
  tol: Tolerance;
  // Indices of the inputs an in-place op writes: compared after the op as well as its outputs.
  written?: number[];
  what?: string;
}

// What checkParity reports to: a tap Test, or the device check's recorder.
export interface Reporter {
  pass(message: string): unknown;
  fail(message: string): unknown;
}

// Runs c.op on 'cpu' and on 'cuda:0' and compares. Returns the number of values compared.
export function checkParity(t: Reporter, c: ParityCase): number {
  const results = (device: string): Float32Array[] =>
    tidy(() => {
      const ins = c.inputs.map((x) => tensor(Float32Array.from(x.data), x.shape, { device }));
      const outs = runOp(c.op, ins, c.attrs ?? {});
      return [...outs, ...(c.written ?? []).map((i) => ins[i])].map((x) => x.data());
    });
  const cpu = results('cpu');
  const gpu = results('cuda:0');
  const what = c.what ?? `${c.op}(${c.inputs.map((x) => `[${x.shape.join(', ')}]`).join(', ')})`;
  if (gpu.length !== cpu.length) t.fail(`${what}: ${gpu.length} results on cuda, ${cpu.length} on cpu`);
  let n = 0;
  for (let i = 0; i < Math.min(cpu.length, gpu.length); i++) {
    const m = compare(gpu[i], cpu[i], c.tol);
    const label = i < cpu.length - (c.written?.length ?? 0) ? `output ${i}` : `written input ${c.written![i - (cpu.length - c.written!.length)]}`;
    if (m === null) t.pass(`${what} ${label}: cuda matches cpu within atol ${c.tol.atol}, rtol ${c.tol.rtol}`);
    else if (m.index < 0) t.fail(`${what} ${label}: ${m.actual} values on cuda, ${m.expected} on cpu`);
    else t.fail(`${what} ${label}: element ${m.index} is ${m.actual} on cuda, ${m.expected} on cpu (max abs error ${m.maxAbsErr})`);
    n += cpu[i].length;
  }
  return n;
}
