// Collapse watch. The DINO paper (section 5.3) tells the two collapses apart with two numbers: the
// entropy H of the teacher's (centred, sharpened) output, and the KL divergence between teacher and
// student. Training is healthy while KL stays away from 0. When KL goes to 0 the student just copies a
// teacher that no longer depends on the image: with H at its maximum ln(out_dim), the output is uniform
// (centring has won over sharpening); with H near 0, one dimension dominates (sharpening has won).
//
// Each step's loss is the mean cross-entropy CE(teacher, student) over the crop pairs, and every
// teacher crop is in the same number of pairs, so mean KL = loss - mean H exactly: no extra pass.

export interface EpochDiagnostics {
  epoch: number;
  steps: number;
  loss: number;
  // Mean entropy of the teacher's distributions, in nats.
  teacherEntropy: number;
  // Mean KL(teacher || student) over the crop pairs, in nats.
  kl: number;
  // ln(out_dim): the entropy of the uniform distribution, and the loss of a collapsed run.
  maxEntropy: number;
}

export class EpochMonitor {
  private steps = 0;
  private lossSum = 0;
  private entropySum = 0;

  constructor(readonly epoch: number, readonly outDim: number) {}

  add(loss: number, teacherEntropy: number): void {
    this.steps++;
    this.lossSum += loss;
    this.entropySum += teacherEntropy;
  }

  get empty(): boolean {
    return this.steps === 0;
  }

  summary(): EpochDiagnostics {
    const loss = this.lossSum / this.steps;
    const teacherEntropy = this.entropySum / this.steps;
    return { epoch: this.epoch, steps: this.steps, loss, teacherEntropy, kl: loss - teacherEntropy, maxEntropy: Math.log(this.outDim) };
  }
}

// Below this KL (nats) the student matches the teacher almost perfectly: nothing is left to learn.
export const COLLAPSE_KL = 0.01;
// Fractions of ln(out_dim) that count as a uniform (above) or one-hot (below) teacher.
const UNIFORM_FRACTION = 0.98;
const ONE_HOT_FRACTION = 0.02;

const UNIFORM_REMEDIES = [
  'a lower teacher temperature (--teacher-temp 0.02, or --warmup-teacher-temp 0.02 --warmup-teacher-temp-epochs N)',
  'a smaller output dimension (--out-dim 1024 to 8192 for small datasets)',
  'a higher teacher momentum (--momentum-teacher 0.999) or a lower learning rate',
];
const ONE_HOT_REMEDIES = [
  'a higher teacher temperature (--teacher-temp 0.06 or 0.07, with a warm-up from 0.04)',
  'a lower learning rate or a longer warm-up (--warmup-epochs)',
  'a higher teacher momentum (--momentum-teacher 0.999)',
];

// A warning for the user when an epoch looks collapsed, or null.
export function collapseWarning(d: EpochDiagnostics): string | null {
  const atUniformLoss = Math.abs(d.loss - d.maxEntropy) < 0.01 * d.maxEntropy;
  const uniform = d.teacherEntropy > UNIFORM_FRACTION * d.maxEntropy;
  const oneHot = d.teacherEntropy < ONE_HOT_FRACTION * d.maxEntropy;
  if (!(d.kl < COLLAPSE_KL || atUniformLoss)) return null;
  const kind = uniform || atUniformLoss
    ? `the teacher output is uniform (entropy ${d.teacherEntropy.toFixed(3)} of at most ln(out_dim) = ${d.maxEntropy.toFixed(3)})`
    : oneHot
      ? `one output dimension dominates the teacher (entropy ${d.teacherEntropy.toFixed(3)}, near 0)`
      : `the student copies the teacher (KL ${d.kl.toExponential(2)} nats)`;
  const remedies = oneHot ? ONE_HOT_REMEDIES : UNIFORM_REMEDIES;
  return [
    `epoch ${d.epoch}: training looks collapsed: ${kind}; loss ${d.loss.toFixed(4)}, KL(teacher || student) ${d.kl.toExponential(2)}.`,
    'Likely remedies:',
    ...remedies.map((r) => `  - ${r}`),
  ].join('\n');
}
