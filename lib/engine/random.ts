// A seeded random generator (xoshiro128**, seeded through splitmix32) for initialisation, drop-path
// masks and augmentation. Its whole state is a few numbers, so checkpoints can store it and a resumed
// run draws exactly what an uninterrupted one would have.

export interface GeneratorState {
  s: [number, number, number, number];
  // The second value of the last Box-Muller pair, not yet handed out.
  spare: number | null;
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Generator {
  private s: [number, number, number, number];
  private spare: number | null = null;

  constructor(seed = 0) {
    if (!Number.isSafeInteger(seed)) throw new TypeError(`seed must be an integer, got ${seed}`);
    const next = splitmix32((seed ^ Math.floor(seed / 2 ** 32)) >>> 0);
    this.s = [next(), next(), next(), next()];
  }

  getState(): GeneratorState {
    return { s: [...this.s], spare: this.spare };
  }

  setState(state: GeneratorState): void {
    const ok = Array.isArray(state?.s) && state.s.length === 4 && state.s.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32) && state.s.some((v) => v !== 0);
    if (!ok || !(state.spare === null || Number.isFinite(state.spare))) throw new Error('invalid generator state');
    this.s = [...state.s] as GeneratorState['s'];
    this.spare = state.spare;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  random(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  // Standard normal (Box-Muller; the pair's second value is kept for the next call).
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.random();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  // An integer in [0, n).
  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  uniformArray(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  // Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as timm's trunc_normal_ used by DINO).
  truncNormalArray(n: number, std: number, a = -2, b = 2, mean = 0): Float32Array {
    if (!(a < b) || mean + 6 * std < a || mean - 6 * std > b) throw new Error(`truncation interval [${a}, ${b}] is too far from N(${mean}, ${std})`);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v: number;
      do v = mean + std * this.normal();
      while (v < a || v > b);
      out[i] = v;
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
