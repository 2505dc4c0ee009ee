// The user-facing tensor: a handle on a native tensor plus the metadata JS wants without a native call.
import { addon, type DType, type NativeTensor } from './native.ts';
import { setScopedPredicate, track, type Scoped } from './scope.ts';

let nextId = 0;

export class Tensor implements Scoped {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: string;
  private handle: NativeTensor | null;
  // Kept tensors (parameters, optimizer state) outlive every scope; only dispose() frees them.
  kept = false;

  // Takes ownership of a native handle; the tensor is tracked by the innermost open scope.
  constructor(handle: NativeTensor) {
    this.handle = handle;
    this.shape = Object.freeze(handle.shape);
    this.dtype = handle.dtype;
    this.device = handle.device;
    track(this);
  }

  get native(): NativeTensor {
    if (this.handle === null) {
      throw Object.assign(new Error(`tensor #${this.id} ${shapeText(this.shape)} was disposed and cannot be used again`), {
        code: 'ERR_DINO_DISPOSED',
      });
    }
    return this.handle;
  }

  get isDisposed(): boolean {
    return this.handle === null;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get rank(): number {
    return this.shape.length;
  }

  keep(): this {
    this.kept = true;
    return this;
  }

  dispose(): void {
    if (this.handle !== null) {
      this.handle.dispose();
      this.handle = null;
    }
  }

  // A host copy of the values (float32), or of the raw 16-bit patterns for bfloat16/float16.
  data(): Float32Array {
    const a = this.native.toArray();
    if (!(a instanceof Float32Array)) throw new Error(`data() reads float32 tensors; this one is ${this.dtype}: cast it first`);
    return a;
  }

  rawData(): Float32Array | Uint16Array {
    return this.native.toArray();
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a tensor with one element, got shape ${shapeText(this.shape)}`);
    return this.data()[0];
  }

  to(device: string): Tensor {
    return new Tensor(this.native.to(device));
  }

  toString(): string {
    return `Tensor(${shapeText(this.shape)}, ${this.dtype}, ${this.device})`;
  }
}

setScopedPredicate((v: unknown): v is Scoped => v instanceof Tensor);

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export interface TensorOptions {
  dtype?: DType;
  // Default: the device of the innermost withDevice() scope, else 'cpu'.
  device?: string;
}

const deviceStack: string[] = [];

// Runs fn with `device` as the default for tensors made without an explicit device, as PyTorch's
// `with torch.device(...)`: a model built inside has its parameters and buffers there from the start.
// Synchronous, like tidy.
export function withDevice<T>(device: string, fn: () => T): T {
  deviceStack.push(device);
  try {
    return fn();
  } finally {
    deviceStack.pop();
  }
}

// x itself when it is already on `device`, else a copy there (a temporary of the current scope).
export function toDevice(x: Tensor, device: string): Tensor {
  return x.device === device ? x : x.to(device);
}

export function defaultDevice(): string {
  return deviceStack.length > 0 ? deviceStack[deviceStack.length - 1] : 'cpu';
}

// A tensor from host values; `data` may be a Float32Array, a plain array, or a Uint16Array of raw
// bfloat16/float16 bits with the matching dtype.
export function tensor(data: ArrayLike<number> | Float32Array | Uint16Array, shape: readonly number[], opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? 'float32';
  let values: Float32Array | Uint16Array;
  if (dtype === 'float32') values = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  else if (data instanceof Uint16Array) values = data;
  else throw new TypeError(`a ${dtype} tensor is made from a Uint16Array of raw bits; make a float32 tensor and cast() it`);
  return new Tensor(addon.fromArray(values, [...shape], dtype, opts.device ?? defaultDevice()));
}

export function scalar(value: number, opts: TensorOptions = {}): Tensor {
  return tensor([value], [], opts);
}

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return new Tensor(addon.zeros([...shape], opts.dtype ?? 'float32', opts.device ?? defaultDevice()));
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const device = opts.device ?? defaultDevice();
  const host = tensor(new Float32Array(n).fill(value), shape, { device: 'cpu' });
  if (device === 'cpu') return host;
  const t = host.to(device);
  host.dispose();
  return t;
}

export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}
