// `dino info`: what this installation is and what it can use: versions, the native addon, CUDA (and
// why not), devices and threads. The first thing to look at when something is slow or missing.
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, platform } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { resolveDevice } from '../engine/device.ts';
import { addon, addonPath, packageRoot } from '../engine/native.ts';
import type { Command } from './command.ts';
import { defineOptions, describeOptions, parseOptions } from './options.ts';

const OPTIONS = defineOptions({
  json: { kind: 'boolean', default: false, help: 'print the information as one JSON object' },
});

export interface InstallationInfo {
  version: string;
  addon: { path: string; version: string; gemmKernel: string };
  cuda: { compiled: boolean; usable: boolean; deviceCount: number; reason: string; cublas: { loaded: boolean; path: string; reason: string } };
  // Where tensors can live: 'cpu', then 'cuda:0', 'cuda:1', ... when CUDA is usable.
  devices: string[];
  // What --device auto picks (training and evaluation), and why.
  autoDevice: { device: string; note: string };
  threads: { openmp: number; ompNumThreads: string | null; availableParallelism: number };
  runtime: { name: 'node' | 'deno'; version: string; platform: string; arch: string };
}

export function installationInfo(): InstallationInfo {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  const build = addon.buildInfo();
  const { cuda } = build;
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  return {
    version: pkg.version,
    addon: { path: addonPath, version: build.version, gemmKernel: build.gemmKernel },
    cuda: {
      compiled: cuda.compiled,
      usable: cuda.usable,
      deviceCount: cuda.deviceCount,
      reason: cuda.reason,
      cublas: { loaded: cuda.cublasLoaded, path: cuda.cublasPath, reason: cuda.cublasReason },
    },
    devices: ['cpu', ...Array.from({ length: cuda.usable ? cuda.deviceCount : 0 }, (_, i) => `cuda:${i}`)],
    autoDevice: resolveDevice('auto'),
    threads: { openmp: build.threads, ompNumThreads: process.env.OMP_NUM_THREADS ?? null, availableParallelism: availableParallelism() },
    runtime: deno !== undefined ? { name: 'deno', version: deno.version.deno, platform: platform(), arch: arch() } : { name: 'node', version: process.versions.node, platform: platform(), arch: arch() },
  };
}

function describe(info: InstallationInfo): string {
  const { addon: a, cuda, threads, runtime } = info;
  const mismatch = a.version !== info.version ? ` (the package is ${info.version}: rebuild the addon)` : '';
  const cudaLine = !cuda.compiled
    ? `not compiled in${cuda.reason ? `: ${cuda.reason}` : ''}`
    : cuda.usable
      ? `usable, ${cuda.deviceCount} device${cuda.deviceCount === 1 ? '' : 's'}`
      : `compiled in, not usable: ${cuda.reason}`;
  const cublas = cuda.cublas.loaded ? `loaded from ${cuda.cublas.path}` : cuda.cublas.reason || 'not loaded';
  const omp = threads.ompNumThreads === null ? 'OMP_NUM_THREADS not set' : `OMP_NUM_THREADS=${threads.ompNumThreads}`;
  const rows: [string, string][] = [
    ['addon', `${a.version} at ${a.path}${mismatch}`],
    ['GEMM kernel', a.gemmKernel],
    ['CUDA', cudaLine],
    ...(cuda.compiled ? [['cuBLAS', cublas] as [string, string]] : []),
    ['devices', info.devices.join(', ')],
    ['--device auto', info.autoDevice.note.replace(/^device: /, '')],
    ['threads', `${threads.openmp} OpenMP (${omp}); ${threads.availableParallelism} available to this process`],
    ['runtime', `${runtime.name} ${runtime.version} on ${runtime.platform} ${runtime.arch}`],
  ];
  return [`dino-ts ${info.version}`, ...rows.map(([k, v]) => `  ${k.padEnd(12)} ${v}`)].join('\n');
}

export const infoCommand: Command = {
  summary: 'versions, native addon, CUDA, devices and threads of this installation',
  usage: `usage: dino info [--json]

Shows the package version, the native addon (its file, version and GEMM kernel), whether CUDA was
compiled in and, if it cannot be used, why; cuBLAS; the devices tensors can live on and the one
--device auto picks (and why); the OpenMP thread
count (set it with OMP_NUM_THREADS) and the cores available; the JavaScript runtime.

options:
${describeOptions(OPTIONS)}`,
  run(args) {
    const { options } = parseOptions(OPTIONS, args);
    const info = installationInfo();
    console.log(options.json ? JSON.stringify(info, null, 2) : describe(info));
  },
};
