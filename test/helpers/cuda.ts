// CPU vs CUDA parity: an op runs on the same inputs on both devices and every output (and, for in-place
// ops, every input it writes) must agree within a stated tolerance. The CPU kernels are themselves
// checked against PyTorch, so this carries that check over to the GPU. Skipped, with the reason, where
// no CUDA device is usable. The cases are plain data (test/cuda/cases/*.ts) so that both the tap tests
// and the device check (scripts/device-check.ts, which runs without node_modules) can run them; so
// this imports the engine modules themselves, not lib/index.ts, which loads sharp.
import { addon, type Attrs, type DType } from '../../lib/engine/native.ts';
import { runOp } from '../../lib/autograd/tape.ts';
import { tidy } from '../../lib/engine/scope.ts';
import { tensor } from '../../lib/engine/tensor.ts';
import { compare, type Tolerance } from './close.ts';
import { randomValues } from './random-values.ts';

const info = addon.buildInfo().cuda;

// For t.test(name, { skip: cudaSkip }, ...): false where a GPU answers, otherwise why not.
export const cudaSkip: string | false = info.usable ? false : `no usable CUDA device (${info.reason})`;

export interface Input {
  // Values, or for bfloat16/float16 inputs the raw 16-bit patterns.
  data: ArrayLike<number>;
  shape: readonly number[];
  dtype?: DType;
}

// Deterministic values in [-scale, scale).
export function randn(shape: readonly number[], seed: number, scale = 1): Input {
  return { data: randomValues(shape.reduce((a, b) => a * b, 1), seed, -scale, scale), shape };
}

export interface ParityCase {
  op: string;
  inputs: Input[];
  attrs?: Attrs;
  // atol = rtol = 0 compares bit for bit (the sign of zero included; see compareBits for NaNs).
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
  // Typed-array copies, never through JS numbers, which may quiet a signalling NaN's payload.
  const make = (x: Input, device: string) => {
    const dtype = x.dtype ?? 'float32';
    const data = dtype === 'float32' ? (x.data instanceof Float32Array ? x.data.slice() : Float32Array.from(x.data)) : Uint16Array.from(x.data);
    return tensor(data, x.shape, { device, dtype });
  };
  const results = (device: string): (Float32Array | Uint16Array)[] =>
    tidy(() => {
      const ins = c.inputs.map((x) => make(x, device));
      const outs = runOp(c.op, ins, c.attrs ?? {});
      return [...outs, ...(c.written ?? []).map((i) => ins[i])].map((x) => x.rawData());
    });
  const cpu = results('cpu');
  const gpu = results('cuda:0');
  const what = c.what ?? `${c.op}(${c.inputs.map((x) => `[${x.shape.join(', ')}]`).join(', ')})`;
  if (gpu.length !== cpu.length) t.fail(`${what}: ${gpu.length} results on cuda, ${cpu.length} on cpu`);
  let n = 0;
  for (let i = 0; i < Math.min(cpu.length, gpu.length); i++) {
    const exact = c.tol.atol === 0 && c.tol.rtol === 0;
    const m = exact ? compareBits(gpu[i], cpu[i]) : compare(gpu[i], cpu[i], c.tol);
    const label = i < cpu.length - (c.written?.length ?? 0) ? `output ${i}` : `written input ${c.written![i - (cpu.length - c.written!.length)]}`;
    if (m === null) t.pass(`${what} ${label}: cuda matches cpu within atol ${c.tol.atol}, rtol ${c.tol.rtol} (max abs error ${maxAbsError(gpu[i], cpu[i])})`);
    else if (m.index < 0) t.fail(`${what} ${label}: ${m.actual} values on cuda, ${m.expected} on cpu`);
    else t.fail(`${what} ${label}: element ${m.index} is ${m.actual} on cuda, ${m.expected} on cpu (max abs error ${m.maxAbsErr})`);
    n += cpu[i].length;
  }
  return n;
}

// The first element whose bits differ, except that any two float32 NaNs match: a GPU's arithmetic
// gives the canonical NaN where x86 gives its own default NaN or propagates a payload, and neither is
// a meaningful value. 16-bit outputs (casts, which are integer bit manipulation) must match exactly.
function compareBits(actual: Float32Array | Uint16Array, expected: Float32Array | Uint16Array): ReturnType<typeof compare> {
  if (actual.length !== expected.length || actual.constructor !== expected.constructor) {
    return { index: -1, actual: actual.length, expected: expected.length, maxAbsErr: Infinity };
  }
  const bits = (a: Float32Array | Uint16Array) => (a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a);
  const a = bits(actual);
  const e = bits(expected);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i] && !(actual instanceof Float32Array && Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) return { index: i, actual: actual[i], expected: expected[i], maxAbsErr: Math.abs(actual[i] - expected[i]) };
  }
  return null;
}

// The largest |a - b| over elements where both are finite.
function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    if (e > m && Number.isFinite(e)) m = e;
  }
  return m;
}
