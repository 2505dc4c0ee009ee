// DINO's loss: the cross-entropy between the teacher's centred, sharpened distribution of each global
// crop and the student's distribution of every other crop, averaged over the 2 * ncrops - 2 pairs, and
// the centre, an EMA of the teacher's mean logits, subtracted so that no one dimension dominates.
import { scalar, shapeText, zeros, type Tensor } from '../engine/tensor.ts';
import { tidy } from '../engine/scope.ts';
import { noGrad } from '../autograd/tape.ts';
import { Module } from '../nn/module.ts';
import { add, concat, div, emaUpdate, logSoftmax, mean, mul, scale, slice, softmax, sub, sum } from '../ops/index.ts';
import { teacherTempSchedule } from '../optim/schedules.ts';

export interface DINOLossOptions {
  outDim: number;
  // 2 global crops plus the local crops (10 in the official runs).
  ncrops: number;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  nepochs: number;
  studentTemp?: number;
  centerMomentum?: number;
  // Where the centre lives: the device of the head's outputs (default: the current default device).
  device?: string;
}

export interface DINOLossDiagnostics {
  loss: Tensor;
  // Mean entropy (nats) of the teacher's 2B distributions; the loss minus it is the mean KL divergence
  // from the teacher's to the student's distributions. ln(outDim) means a uniform (collapsed) teacher.
  teacherEntropy: Tensor;
}

export class DINOLoss extends Module {
  readonly outDim: number;
  readonly ncrops: number;
  readonly studentTemp: number;
  readonly centerMomentum: number;
  // Indexed by epoch.
  readonly teacherTemps: Float64Array;
  // (1, outDim); a buffer, so that stateDict() gives the checkpoint's dino_loss entry {center}.
  readonly center: Tensor;

  constructor(opts: DINOLossOptions) {
    super();
    const { outDim, ncrops } = opts;
    if (!Number.isSafeInteger(outDim) || outDim < 1) throw new RangeError(`DINOLoss: outDim must be a positive integer, got ${outDim}`);
    if (!Number.isSafeInteger(ncrops) || ncrops < 2) throw new RangeError(`DINOLoss: ncrops must be an integer >= 2 (two global crops), got ${ncrops}`);
    this.outDim = outDim;
    this.ncrops = ncrops;
    this.studentTemp = opts.studentTemp ?? 0.1;
    this.centerMomentum = opts.centerMomentum ?? 0.9;
    if (!(this.studentTemp > 0 && opts.warmupTeacherTemp > 0 && opts.teacherTemp > 0)) {
      throw new RangeError(`DINOLoss: temperatures must be > 0, got student ${this.studentTemp}, teacher ${opts.warmupTeacherTemp} -> ${opts.teacherTemp}`);
    }
    if (!(this.centerMomentum >= 0 && this.centerMomentum <= 1)) throw new RangeError(`DINOLoss: centerMomentum must be in [0, 1], got ${this.centerMomentum}`);
    this.teacherTemps = teacherTempSchedule(opts.warmupTeacherTemp, opts.teacherTemp, opts.warmupTeacherTempEpochs, opts.nepochs);
    this.center = this.registerBuffer('center', zeros([1, outDim], { device: opts.device }));
  }

  // studentOutput: (ncrops * B, outDim), crop-major (the B rows of crop 0, then crop 1, ...), as the
  // multi-crop wrapper concatenates them; teacherOutput: (2 * B, outDim), the two global crops. Returns
  // the loss as a 0-d tensor, differentiable with respect to studentOutput only. Uses the current
  // centre: call updateCenter(teacherOutput) after it, as the official forward pass does.
  forward(studentOutput: Tensor, teacherOutput: Tensor, epoch: number): Tensor {
    return this.compute(studentOutput, teacherOutput, epoch, false).loss;
  }

  // forward() plus the teacher's entropy, which costs a log-softmax over the 2B teacher rows.
  forwardWithDiagnostics(studentOutput: Tensor, teacherOutput: Tensor, epoch: number): DINOLossDiagnostics {
    const { loss, teacherEntropy } = this.compute(studentOutput, teacherOutput, epoch, true);
    return { loss, teacherEntropy: teacherEntropy! };
  }

  // center = m * center + (1 - m) * mean of the raw teacher logits over their 2B rows (one process: the
  // official all-reduce over processes is the identity).
  updateCenter(teacherOutput: Tensor): void {
    this.checkTeacher(teacherOutput);
    noGrad(() => tidy(() => emaUpdate(this.center, mean(teacherOutput, [0], true), this.centerMomentum)));
  }

  // The temperature for an epoch, with the schedule's bounds checked.
  teacherTemp(epoch: number): number {
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch >= this.teacherTemps.length) {
      throw new RangeError(`DINOLoss: epoch ${epoch} is outside the teacher temperature schedule (epochs 0 to ${this.teacherTemps.length - 1})`);
    }
    return this.teacherTemps[epoch];
  }

  private compute(studentOutput: Tensor, teacherOutput: Tensor, epoch: number, withEntropy: boolean): { loss: Tensor; teacherEntropy: Tensor | null } {
    const batch = this.checkStudent(studentOutput);
    this.checkTeacher(teacherOutput, batch);
    const temp = this.teacherTemp(epoch);
    const nTerms = 2 * this.ncrops - 2;
    // Teacher side, once per step, outside the tape and in its own scope (the tape needs none of it):
    // the centred, sharpened distributions t0, t1 of the two global crops, and each student row's
    // weight in the cross-entropy. Student crop v is paired with every teacher crop but its own, so
    // its rows are weighted by t1 (v = 0), t0 (v = 1) or t0 + t1 (local crops): one product with one
    // log-softmax of all student rows, instead of a log-softmax per pair.
    const teacher = noGrad(() =>
      tidy(() => {
        const logits = div(sub(teacherOutput, this.center), scalar(temp, { device: teacherOutput.device }));
        const probs = softmax(logits);
        const t0 = slice(probs, 0, 0, batch);
        const t1 = slice(probs, 0, batch);
        const locals = new Array<Tensor>(this.ncrops - 2).fill(add(t0, t1));
        const weights = concat([t1, t0, ...locals], 0);
        const entropy = withEntropy ? scale(sum(mul(probs, logSoftmax(logits))), -1 / (2 * batch)) : null;
        return { weights, entropy };
      }),
    );
    // Student side: not in a scope of its own, since a recording tape keeps these for the backward pass.
    const logProbs = logSoftmax(scale(studentOutput, 1 / this.studentTemp));
    const loss = scale(sum(mul(logProbs, teacher.weights)), -1 / (batch * nTerms));
    return { loss, teacherEntropy: teacher.entropy };
  }

  // Returns B, the rows per crop.
  private checkStudent(s: Tensor): number {
    if (s.rank !== 2 || s.shape[1] !== this.outDim || s.shape[0] === 0 || s.shape[0] % this.ncrops !== 0) {
      throw new Error(`DINOLoss: studentOutput must have shape [ncrops * B, ${this.outDim}] with ncrops = ${this.ncrops}, got ${shapeText(s.shape)}`);
    }
    return s.shape[0] / this.ncrops;
  }

  private checkTeacher(t: Tensor, batch?: number): void {
    const rowsOk = batch === undefined ? t.shape[0] > 0 && t.shape[0] % 2 === 0 : t.shape[0] === 2 * batch;
    if (t.rank !== 2 || t.shape[1] !== this.outDim || !rowsOk) {
      const rows = batch === undefined ? '2 * B' : String(2 * batch);
      throw new Error(`DINOLoss: teacherOutput must have shape [${rows}, ${this.outDim}] (the two global crops), got ${shapeText(t.shape)}`);
    }
  }
}
