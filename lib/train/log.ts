// log.jsonl: one JSON object per line in the output directory. A "start" record per (re)start, a
// "step" record per iteration and an "epoch" record per finished epoch with the collapse diagnostics.
// A resumed run first cuts the log back to what its checkpoint had done (the steps after it are done
// again), and drops a last line left half-written by a killed process, so that the log reads as one
// unbroken run: every iteration once, in order.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/file.ts';
import type { EpochDiagnostics } from './monitor.ts';

export interface StepRecord {
  type: 'step';
  iteration: number;
  epoch: number;
  loss: number;
  teacher_entropy: number;
  lr: number;
  wd: number;
  momentum: number;
  images_per_s: number;
  time: string;
}

export interface EpochRecord extends Omit<EpochDiagnostics, 'teacherEntropy' | 'maxEntropy'> {
  type: 'epoch';
  teacher_entropy: number;
  max_entropy: number;
  seconds: number;
  // Unreadable images passed over so far in this process (each replaced by another image).
  skipped_images: number;
  warning?: string;
}

export interface StartRecord {
  type: 'start';
  iteration: number;
  time: string;
  [key: string]: unknown;
}

export type LogRecord = StepRecord | EpochRecord | StartRecord;

function parseLine(line: string): LogRecord | null {
  try {
    const r = JSON.parse(line) as LogRecord;
    return r !== null && typeof r === 'object' && typeof r.type === 'string' ? r : null;
  } catch {
    return null;
  }
}

export class TrainingLog {
  // The step and epoch records so far (for the loss plot).
  readonly steps: StepRecord[] = [];
  readonly epochs: EpochRecord[] = [];

  // Opens the log of a run that is at `iteration` with `epoch` epochs finished: records beyond them are
  // dropped from the file (start records are kept as they are, a history of restarts).
  constructor(readonly path: string, iteration: number, finishedEpochs: number) {
    if (!existsSync(path)) return;
    const kept: LogRecord[] = [];
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const r = parseLine(line);
      if (r === null) continue;
      if (r.type === 'step' && r.iteration >= iteration) continue;
      if (r.type === 'epoch' && r.epoch >= finishedEpochs) continue;
      if (r.type === 'start' && r.iteration > iteration) continue;
      kept.push(r);
      if (r.type === 'step') this.steps.push(r);
      if (r.type === 'epoch') this.epochs.push(r);
    }
    const text = kept.map((r) => JSON.stringify(r) + '\n').join('');
    writeFileAtomic(path, (sink) => sink.write(new TextEncoder().encode(text)));
  }

  append(record: LogRecord): void {
    if (record.type === 'step') this.steps.push(record);
    if (record.type === 'epoch') this.epochs.push(record);
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}

// Reads a log for inspection (tests, reports); malformed lines are skipped.
export function readTrainingLog(path: string): LogRecord[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map(parseLine)
    .filter((r): r is LogRecord => r !== null);
}
