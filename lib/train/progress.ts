// What a training run shows while it runs. On a terminal: one status line redrawn in place (epoch,
// iteration, loss, lr, weight decay, teacher momentum, images/s, ETA) with a bar for the epoch.
// Anywhere else (a log file, CI): a plain line every `logFreq` iterations, as the official code prints.
import type { StepResult } from './trainer.ts';

export interface ProgressSink {
  write(text: string): void;
  isTTY?: boolean;
  columns?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

// Images per second over recent steps: an exponential average of the step rate, so a slow first step
// (threads starting, caches cold) fades out.
class Rate {
  private perSecond = NaN;
  push(images: number, seconds: number): void {
    if (!(seconds > 0)) return;
    const now = images / seconds;
    this.perSecond = Number.isNaN(this.perSecond) ? now : 0.9 * this.perSecond + 0.1 * now;
  }
  get value(): number {
    return this.perSecond;
  }
}

export class TrainingProgress {
  private readonly rate = new Rate();
  private last = performance.now();
  private lineOpen = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly totalIterations: number,
    private readonly itersPerEpoch: number,
    private readonly epochs: number,
    private readonly batchSize: number,
    private readonly logFreq: number,
  ) {}

  get imagesPerSecond(): number {
    return this.rate.value;
  }

  // The clock restarts (after a pause such as writing a checkpoint).
  resetClock(): void {
    this.last = performance.now();
  }

  step(r: StepResult): void {
    const now = performance.now();
    this.rate.push(this.batchSize, (now - this.last) / 1000);
    this.last = now;
    const done = r.iteration + 1;
    const inEpoch = done - r.epoch * this.itersPerEpoch;
    const eta = ((this.totalIterations - done) * this.batchSize) / this.rate.value;
    const fields = [
      `loss ${r.loss.toFixed(4)}`,
      `lr ${r.lr.toExponential(2)}`,
      `wd ${r.weightDecay.toFixed(4)}`,
      `mom ${r.momentum.toFixed(5)}`,
      `${Number.isFinite(this.rate.value) ? this.rate.value.toFixed(1) : '?'} img/s`,
      `ETA ${formatDuration(eta)}`,
    ].join('  ');
    const where = `epoch ${r.epoch + 1}/${this.epochs}  it ${inEpoch}/${this.itersPerEpoch} (${done}/${this.totalIterations})`;
    if (this.sink.isTTY) {
      const width = 20;
      const filled = Math.round((inEpoch / this.itersPerEpoch) * width);
      const line = `${where} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]  ${fields}`;
      const columns = this.sink.columns ?? 120;
      this.sink.write(`\r${line.slice(0, Math.max(1, columns - 1)).padEnd(Math.min(columns - 1, line.length))}\x1b[K`);
      this.lineOpen = true;
    } else if (done % this.logFreq === 0 || inEpoch === this.itersPerEpoch) {
      this.sink.write(`${where}  ${fields}\n`);
    }
  }

  // A message on its own line(s), after the status line if one is showing.
  message(text: string): void {
    if (this.lineOpen) this.sink.write('\n');
    this.lineOpen = false;
    this.sink.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
