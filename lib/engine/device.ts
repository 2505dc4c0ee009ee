// Which device work goes to when the user leaves it to us, and why: the one place that reads the
// CUDA probe for that decision, so `dino info`, `dino train` and the evaluations agree.
import { addon } from './native.ts';

export type DeviceChoice = 'auto' | 'cpu' | 'cuda';

// The device to use and a line saying which and why: auto takes the first GPU when CUDA and
// cuBLAS are usable, otherwise the CPU; cuda insists on the GPU and says why it cannot have it.
export function resolveDevice(choice: DeviceChoice): { device: string; note: string } {
  const cuda = addon.buildInfo().cuda;
  const why = !cuda.compiled
    ? 'this build has no CUDA support (nvcc was not found when it was built)'
    : !cuda.usable
      ? cuda.reason
      : !cuda.cublasLoaded
        ? `cuBLAS could not be loaded: ${cuda.cublasReason}`
        : null;
  if (choice === 'cpu') return { device: 'cpu', note: 'device: cpu (chosen with --device cpu)' };
  if (why === null) return { device: 'cuda:0', note: `device: cuda:0 (${cuda.reason})` };
  if (choice === 'cuda') throw new Error(`--device cuda: ${why}`);
  return { device: 'cpu', note: `device: cpu (CUDA: ${why})` };
}
