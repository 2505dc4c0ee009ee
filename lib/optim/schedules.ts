// DINO's schedules, value for value as the official numpy code computes them (float64): the learning
// rate, weight decay and teacher momentum change every iteration (cosineScheduler), the teacher
// temperature every epoch (teacherTempSchedule).

// numpy.linspace(start, stop, num) with its float64 arithmetic: start + i * step (i / div * delta when
// the step underflows to 0), the last value set to stop exactly; [start] for num = 1.
export function linspace(start: number, stop: number, num: number): Float64Array {
  expectCount(num, 'linspace: num');
  const out = new Float64Array(num);
  const delta = stop - start;
  const div = num - 1;
  const step = delta / div;
  for (let i = 0; i < num; i++) {
    if (div <= 0) out[i] = i * delta + start;
    else if (step === 0) out[i] = (i / div) * delta + start;
    else out[i] = i * step + start;
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

// One value per iteration over epochs * niterPerEp iterations: a linear warm-up from startWarmupValue
// to baseValue over warmupEpochs * niterPerEp iterations (both ends included), then
// finalValue + (baseValue - finalValue) / 2 * (1 + cos(pi * i / n)) for the n remaining iterations,
// which stops one step short of finalValue (the official momentum schedule ends at 1 - 1.6e-13).
export function cosineScheduler(
  baseValue: number,
  finalValue: number,
  epochs: number,
  niterPerEp: number,
  warmupEpochs = 0,
  startWarmupValue = 0,
): Float64Array {
  expectCount(epochs, 'cosineScheduler: epochs');
  expectCount(niterPerEp, 'cosineScheduler: niterPerEp');
  expectCount(warmupEpochs, 'cosineScheduler: warmupEpochs');
  if (warmupEpochs > epochs) throw new RangeError(`cosineScheduler: warmupEpochs (${warmupEpochs}) exceeds epochs (${epochs})`);
  const warmupIters = warmupEpochs * niterPerEp;
  const total = epochs * niterPerEp;
  const out = new Float64Array(total);
  out.set(linspace(startWarmupValue, baseValue, warmupIters));
  const n = total - warmupIters;
  // The same operations in the same order as numpy: (pi * i) / n, then 0.5 * (base - final) first.
  const half = 0.5 * (baseValue - finalValue);
  for (let i = 0; i < n; i++) out[warmupIters + i] = finalValue + half * (1 + Math.cos((Math.PI * i) / n));
  return out;
}

// One teacher temperature per epoch: linspace(warmupTeacherTemp, teacherTemp, warmupTeacherTempEpochs)
// followed by teacherTemp for the remaining epochs.
export function teacherTempSchedule(warmupTeacherTemp: number, teacherTemp: number, warmupTeacherTempEpochs: number, nepochs: number): Float64Array {
  expectCount(nepochs, 'teacherTempSchedule: nepochs');
  expectCount(warmupTeacherTempEpochs, 'teacherTempSchedule: warmupTeacherTempEpochs');
  if (warmupTeacherTempEpochs > nepochs) {
    throw new RangeError(`teacherTempSchedule: warmupTeacherTempEpochs (${warmupTeacherTempEpochs}) exceeds nepochs (${nepochs})`);
  }
  const out = new Float64Array(nepochs).fill(teacherTemp);
  out.set(linspace(warmupTeacherTemp, teacherTemp, warmupTeacherTempEpochs));
  return out;
}

function expectCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}
