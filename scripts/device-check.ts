// The GPU device check, the Node.js part (scripts/device-check.sh runs it, one stage per process, on
// the GPU machine, and adds the PyTorch benchmark): every CPU-vs-CUDA parity case, one DINO step on
// both devices, and the GPU step benchmark, written as one JSON summary.
//
//   node dist/scripts/device-check.js [--stage all|load|info|parity|step|bench] [--out FILE] [--resume]
//                                     [--bench-warmup 2] [--bench-steps 5] [--bench-max-seconds 60] [--tf32]
//
// Stages:
//   load    import every module the other stages use, without running anything (no GPU needed): proves
//           the compiled JavaScript runs without node_modules (no sharp, no tap)
//   info    the addon's build information, and a round trip of a few values through cuda:0
//   parity  every case of test/cuda/cases (each op on cpu and cuda:0, compared within its tolerance),
//           counted per op with the first failures. The output file is rewritten before each case, so
//           a crash or a time-out leaves the results so far and the case that was running; --resume
//           records that case as crashed and continues after it.
//   step    test/cuda/step-parity.ts: one DINO step on cpu and on cuda:0 from the same state and crops
//   bench   bench/gpu-step.ts: images per second and peak memory of a training step on cuda:0
//   all     info, parity, step and bench in this process (the default)
//
// The JSON: { "stages": { <stage>: { "status": "passed" | "failed" | "skipped" | "error" |
// "incomplete", "seconds", ... } } }. Exit status: 0 when every stage run passed, 2 when no CUDA device
// is usable (the GPU stages are skipped, with the reason), 1 otherwise.
//
// It must run where there is no node_modules: it imports only node: modules statically, and the
// project's modules at each stage (none of them loads sharp or tap), so that a module that fails to
// load is that stage's recorded error rather than the end of the check.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import type { Addon } from '../lib/engine/native.ts';
import type { ParityCase, Reporter } from '../test/helpers/cuda.ts';

const STAGES = ['load', 'info', 'parity', 'step', 'bench'] as const;
type Stage = (typeof STAGES)[number];
type Status = 'passed' | 'failed' | 'skipped' | 'error' | 'incomplete';

interface StageResult {
  status: Status;
  seconds: number;
  error?: string;
  [key: string]: unknown;
}

interface Summary {
  node: string;
  startedAt: string;
  stages: Partial<Record<Stage, StageResult>>;
}

const { values } = parseArgs({
  options: {
    stage: { type: 'string', default: 'all' },
    out: { type: 'string', default: 'device-check.json' },
    resume: { type: 'boolean', default: false },
    'bench-warmup': { type: 'string', default: '2' },
    'bench-steps': { type: 'string', default: '5' },
    'bench-max-seconds': { type: 'string', default: '60' },
    tf32: { type: 'boolean', default: false },
  },
});
const stageArg = values.stage!;
if (stageArg !== 'all' && !(STAGES as readonly string[]).includes(stageArg)) {
  console.error(`device-check: --stage must be all or one of ${STAGES.join(', ')}, got '${stageArg}'`);
  process.exit(2);
}
const outPath = values.out!;
const DEVICE = 'cuda:0';
// How many failure messages are kept per op and overall.
const KEEP_PER_OP = 3;
const KEEP_OVERALL = 20;

const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const errorText = (e: unknown): string => (e instanceof Error ? (e.stack ?? e.message) : String(e)).slice(0, 3000);
const short = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 500);

const summary: Summary = { node: process.version, startedAt: new Date().toISOString(), stages: {} };

// Written whole each time through a temporary file, so a reader (or a crash) never sees half of it.
function save(): void {
  mkdirSync(dirname(outPath) || '.', { recursive: true });
  writeFileSync(outPath + '.tmp', JSON.stringify(summary, null, 1) + '\n');
  renameSync(outPath + '.tmp', outPath);
}

async function loadAddon(): Promise<Addon> {
  return (await import('../lib/engine/native.ts')).addon;
}

// Null where cuda:0 is usable, else why not.
async function cudaUnusable(): Promise<string | null> {
  const cuda = (await loadAddon()).buildInfo().cuda;
  if (!cuda.compiled) return 'the addon was built without CUDA';
  if (!cuda.usable) return `no usable CUDA device (${cuda.reason})`;
  return null;
}

const loadCases = async (): Promise<ParityCase[]> => (await import('../test/cuda/cases/index.ts')).cases;
const loadStepParity = async () => (await import('../test/cuda/step-parity.ts')).stepParity;

async function stageLoad(): Promise<StageResult> {
  const modules: Record<string, () => Promise<unknown>> = {
    'lib/engine/native.ts': () => import('../lib/engine/native.ts'),
    'test/helpers/cuda.ts': () => import('../test/helpers/cuda.ts'),
    'test/cuda/cases/index.ts': loadCases,
    'test/cuda/step-parity.ts': loadStepParity,
    'bench/gpu-step.ts': () => import('../bench/gpu-step.ts'),
  };
  const loaded: Record<string, string> = {};
  let ok = true;
  for (const [name, load] of Object.entries(modules)) {
    try {
      await load();
      loaded[name] = 'ok';
    } catch (e) {
      ok = false;
      loaded[name] = short(e);
    }
  }
  return { status: ok ? 'passed' : 'failed', seconds: 0, modules: loaded };
}

async function stageInfo(): Promise<StageResult> {
  const addon = await loadAddon();
  const buildInfo = addon.buildInfo();
  const result: StageResult = { status: 'passed', seconds: 0, addonPath: (await import('../lib/engine/native.ts')).addonPath, buildInfo };
  const why = await cudaUnusable();
  if (why !== null) return { ...result, status: 'skipped', reason: why };
  // The smallest use of the device: values up and back, and the allocator's view of it.
  const values = Float32Array.from([1, -2.5, 3e-8, 65504]);
  const onDevice = addon.fromArray(values, [values.length], 'float32', DEVICE);
  const back = onDevice.toArray();
  onDevice.dispose();
  const roundTrip = back.length === values.length && values.every((v, i) => back[i] === v);
  return { ...result, status: roundTrip ? 'passed' : 'failed', roundTrip, memory: addon.memoryStats(DEVICE) };
}

interface OpStats {
  cases: number;
  passed: number;
  failed: number;
  values: number;
  // The largest absolute error any message of this op reports.
  maxAbsErr: number | null;
  failures: string[];
}

async function stageParity(previous: StageResult | undefined): Promise<StageResult> {
  const why = await cudaUnusable();
  if (why !== null) return { status: 'skipped', seconds: 0, reason: why };
  const { checkParity } = await import('../test/helpers/cuda.ts');
  const cases = await loadCases();
  // With --resume, the results of the earlier attempt; the case it was running crashed or hung.
  const r = {
    status: 'incomplete' as Status,
    seconds: 0,
    total: cases.length,
    // The case running now, or the next to run.
    current: 0,
    complete: false,
    attempts: 1,
    passed: 0,
    failed: 0,
    values: 0,
    crashed: [] as { index: number; what: string }[],
    ops: {} as Record<string, OpStats>,
    firstFailures: [] as string[],
  };
  const what = (c: ParityCase): string => c.what ?? `${c.op}(${c.inputs.map((x) => `[${x.shape.join(', ')}]`).join(', ')})`;
  const stats = (op: string): OpStats => (r.ops[op] ??= { cases: 0, passed: 0, failed: 0, values: 0, maxAbsErr: null, failures: [] });
  // checkParity's messages, passes and failures alike, end with the largest error they saw.
  const noteMaxAbsErr = (s: OpStats, message: string): void => {
    const m = /max abs error ([^;)\s]+)/.exec(message);
    if (m !== null) s.maxAbsErr = Math.max(s.maxAbsErr ?? 0, Number(m[1]));
  };
  const noteFailure = (s: OpStats, message: string): void => {
    if (s.failures.length < KEEP_PER_OP) s.failures.push(message);
    if (r.firstFailures.length < KEEP_OVERALL) r.firstFailures.push(message);
    noteMaxAbsErr(s, message);
  };
  if (previous !== undefined && previous.status === 'incomplete' && previous.total === cases.length) {
    Object.assign(r, previous, { status: 'incomplete', attempts: Number(previous.attempts ?? 1) + 1 });
    const c = cases[r.current];
    const message = `${what(c)}: the process died or was stopped while this case ran (attempt ${r.attempts - 1})`;
    r.crashed.push({ index: r.current, what: what(c) });
    const s = stats(c.op);
    s.cases++;
    s.failed++;
    r.failed++;
    noteFailure(s, message);
    r.current++;
  }
  const start = now() - r.seconds;
  for (; r.current < cases.length; r.current++) {
    r.seconds = now() - start;
    summary.stages.parity = r;
    save();
    const c = cases[r.current];
    console.log(`parity ${r.current + 1}/${cases.length}: ${what(c)}`);
    const s = stats(c.op);
    s.cases++;
    let bad = 0;
    const reporter: Reporter = {
      pass: (message: string) => noteMaxAbsErr(s, message),
      fail: (message: string) => {
        bad++;
        noteFailure(s, message);
      },
    };
    try {
      const n = checkParity(reporter, c);
      s.values += n;
      r.values += n;
    } catch (e) {
      bad++;
      noteFailure(s, `${what(c)}: threw ${short(e)}`);
    }
    if (bad === 0) {
      s.passed++;
      r.passed++;
    } else {
      s.failed++;
      r.failed++;
      console.log(`  FAILED: ${s.failures[s.failures.length - 1] ?? ''}`);
    }
  }
  r.seconds = now() - start;
  r.complete = true;
  r.status = r.failed === 0 && r.total > 0 ? 'passed' : 'failed';
  return r;
}

async function stageStep(): Promise<StageResult> {
  const why = await cudaUnusable();
  if (why !== null) return { status: 'skipped', seconds: 0, reason: why };
  const stepParity = await loadStepParity();
  const result = stepParity(DEVICE);
  return { status: result.ok ? 'passed' : 'failed', seconds: 0, result };
}

async function stageBench(): Promise<StageResult> {
  const why = await cudaUnusable();
  if (why !== null) return { status: 'skipped', seconds: 0, reason: why };
  const { gpuStepBench } = await import('../bench/gpu-step.ts');
  const result = gpuStepBench({
    device: DEVICE,
    warmup: Number(values['bench-warmup']),
    steps: Number(values['bench-steps']),
    maxSeconds: Number(values['bench-max-seconds']),
    tf32: values.tf32,
  });
  return { status: 'passed', seconds: 0, result };
}

async function runStage(stage: Stage): Promise<StageResult> {
  const start = now();
  let result: StageResult;
  try {
    if (stage === 'load') result = await stageLoad();
    else if (stage === 'info') result = await stageInfo();
    else if (stage === 'parity') {
      const previous = values.resume && existsSync(outPath) ? (JSON.parse(readFileSync(outPath, 'utf8')) as Summary).stages.parity : undefined;
      result = await stageParity(previous);
    } else if (stage === 'step') result = await stageStep();
    else result = await stageBench();
  } catch (e) {
    // Keep what a stage recorded before it threw (the parity stage's counts).
    result = { ...(summary.stages[stage] ?? {}), status: 'error', seconds: 0, error: errorText(e) };
    console.error(`device-check: stage ${stage}: ${errorText(e)}`);
  }
  if (stage !== 'parity' || result.status === 'error') result.seconds = now() - start;
  summary.stages[stage] = result;
  save();
  console.log(`device-check: ${stage} ${result.status} (${result.seconds.toFixed(1)} s)${result.reason ? `: ${result.reason}` : ''}`);
  return result;
}

const run: Stage[] = stageArg === 'all' ? ['info', 'parity', 'step', 'bench'] : [stageArg as Stage];
const results: StageResult[] = [];
for (const stage of run) results.push(await runStage(stage));
process.exitCode = results.every((r) => r.status === 'passed') ? 0 : results.every((r) => r.status === 'passed' || r.status === 'skipped') ? 2 : 1;
