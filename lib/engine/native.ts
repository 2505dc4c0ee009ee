// Loads the addon. createRequire works the same in Node and in Deno, which is what lets one .node
// file serve both.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

export type DType = 'float32' | 'bfloat16' | 'float16';
export type AttrValue = number | boolean | string | number[];
export type Attrs = Record<string, AttrValue | undefined>;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly disposed: boolean;
  // Equal for tensors that share memory (a tensor and its reshaped views).
  readonly storageId: number;
  toArray(): Float32Array | Uint16Array;
  reshape(shape: number[]): NativeTensor;
  to(device: string): NativeTensor;
  dispose(): void;
}

export interface MemoryStats {
  inUse: number;
  cached: number;
  peak: number;
  limit: number;
  allocs: number;
  cacheHits: number;
}

export interface BuildInfo {
  version: string;
  gemmKernel: string;
  threads: number;
  cuda: {
    compiled: boolean;
    usable: boolean;
    deviceCount: number;
    reason: string;
    cublasLoaded: boolean;
    cublasPath: string;
    cublasReason: string;
    // The CUDA emulation's device (a test build whose kernels run on the CPU), not a GPU.
    emulated: boolean;
    // Whether float32 GEMMs on the GPU may use TF32 tensor cores (setAllowTF32).
    allowTF32: boolean;
  };
}

export interface Addon {
  fromArray(data: Float32Array | Uint16Array, shape: number[], dtype: DType, device: string): NativeTensor;
  empty(shape: number[], dtype: DType, device: string): NativeTensor;
  zeros(shape: number[], dtype: DType, device: string): NativeTensor;
  run(op: string, inputs: NativeTensor[], attrs?: Attrs): NativeTensor[];
  memoryStats(device: string): MemoryStats;
  emptyCache(device: string): void;
  resetPeak(device: string): void;
  buildInfo(): BuildInfo;
  setNumThreads(n: number): void;
  // GPU float32 GEMMs on TF32 tensor cores (faster, about 3 decimal digits per product); off by default.
  setAllowTF32(allow: boolean): void;
  opNames(): string[];
  // The image kernels (native/image) on 8-bit RGB pixels, 3 bytes each, rows packed; in place unless
  // they take an output.
  resampleU8(filter: 'bicubic' | 'bilinear', src: Uint8Array, width: number, height: number, left: number, top: number, boxWidth: number, boxHeight: number, dst: Uint8Array, outWidth: number, outHeight: number): void;
  gaussianBlurU8(data: Uint8Array, width: number, height: number, sigma: number): void;
  flipHorizontalU8(data: Uint8Array, width: number, height: number): void;
  normalizeU8(data: Uint8Array, table: Float32Array, out: Float32Array): void;
  blendU8(a: Uint8Array, b: Uint8Array, factor: number, out: Uint8Array): void;
  adjustBrightnessU8(data: Uint8Array, factor: number): void;
  adjustContrastU8(data: Uint8Array, factor: number): void;
  adjustSaturationU8(data: Uint8Array, factor: number): void;
  adjustHueU8(data: Uint8Array, hueFactor: number): void;
  grayscaleU8(data: Uint8Array): void;
  solarizeU8(data: Uint8Array): void;
  rgbToHsvU8(src: Uint8Array, dst: Uint8Array): void;
  hsvToRgbU8(src: Uint8Array, dst: Uint8Array): void;
}

// The package root: two levels above this file both in lib/engine (sources) and dist/lib/engine.
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('dino-ts: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

// $DINO_ADDON, or the package's own build.
export const addonPath: string = process.env.DINO_ADDON ?? join(packageRoot(), 'build', 'Release', 'dino.node');

function load(): Addon {
  if (!existsSync(addonPath)) {
    throw new Error(`dino-ts: the native addon is missing at ${addonPath}; build it with \`npm install\` (or \`npm run build\`)`);
  }
  return createRequire(import.meta.url)(addonPath) as Addon;
}

export const addon: Addon = load();
