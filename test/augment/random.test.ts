// The random side of the augmentation: RandomResizedCrop's sampler against torchvision's code written
// out in Python (scripted draws), the probabilities and ranges of every random decision over 10,000
// images (3 standard deviations), the fallback crop, and edge cases of apply().
import t, { type Test } from 'tap';
import { loadFixtures } from '../helpers/fixtures.ts';
import { Generator } from '../../lib/engine/random.ts';
import { drawResizedCropBox, roundHalfEven, type Range } from '../../lib/augment/crop.ts';
import { DinoAugmentation, type CropParams } from '../../lib/augment/dino.ts';
import { evalTransform } from '../../lib/augment/eval.ts';
import { normalizationTable, type RgbImage } from '../../lib/augment/image.ts';
import { resizeBicubic } from '../../lib/augment/resize.ts';

// A generator that hands out given uniforms (and counts them).
class ScriptedGenerator extends Generator {
  used = 0;
  constructor(private readonly values: number[]) {
    super(0);
  }
  override random(): number {
    if (this.used >= this.values.length) throw new Error('ran out of scripted draws');
    return this.values[this.used++];
  }
}

// A generator that counts its draws.
class CountingGenerator extends Generator {
  used = 0;
  override random(): number {
    this.used++;
    return super.random();
  }
}

t.test("Python's round(): halves to even", async (t) => {
  t.same([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999999999996, 24.5, 25.5, 3.7].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 24, 26, 4]);
});

t.test('RandomResizedCrop.get_params with scripted draws equals torchvision 0.8 written out in Python', async (t) => {
  const list = Object.entries(loadFixtures('augment')).filter(([name]) => name.startsWith('crop_params_'));
  t.ok(list.length >= 9);
  for (const [name, c] of list) {
    const { width, height, scale, ratio, uniforms, box, used } = c.attrs;
    const rng = new ScriptedGenerator(uniforms);
    const got = drawResizedCropBox(width, height, scale as Range, ratio as Range, rng);
    t.same([got.left, got.top, got.width, got.height], box, `${name}: ${width}x${height} scale ${scale} -> box ${box}`);
    t.equal(rng.used, used, `${name}: ${used} draws`);
  }
});

function withinThreeSigma(t: Test, count: number, n: number, p: number, what: string): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  t.ok(Math.abs(count - n * p) <= 3 * sigma, `${what}: ${count} of ${n}, expected ${n * p} +- ${(3 * sigma).toFixed(1)}`);
}

t.test('10,000 images: every random transform fires with its probability, parameters in range', async (t) => {
  const aug = new DinoAugmentation();
  const rng = new Generator(2024);
  const W = 500;
  const H = 375;
  const n = 10000;
  const crops: CropParams[][] = [[], [], []]; // global 1, global 2, locals
  for (let i = 0; i < n; i++) {
    const params = aug.drawParams(W, H, rng);
    crops[0].push(params[0]);
    crops[1].push(params[1]);
    crops[2].push(...params.slice(2));
  }
  const count = (list: CropParams[], f: (p: CropParams) => boolean) => list.filter(f).length;
  const kinds = [
    { name: 'global 1', list: crops[0], blur: 1, solarize: 0, size: 224, scale: [0.4, 1] },
    { name: 'global 2', list: crops[1], blur: 0.1, solarize: 0.2, size: 224, scale: [0.4, 1] },
    { name: 'local', list: crops[2], blur: 0.5, solarize: 0, size: 96, scale: [0.05, 0.4] },
  ];
  for (const k of kinds) {
    const m = k.list.length;
    withinThreeSigma(t, count(k.list, (p) => p.flip), m, 0.5, `${k.name} flip`);
    withinThreeSigma(t, count(k.list, (p) => p.jitter !== null), m, 0.8, `${k.name} colour jitter`);
    withinThreeSigma(t, count(k.list, (p) => p.grayscale), m, 0.2, `${k.name} grayscale`);
    withinThreeSigma(t, count(k.list, (p) => p.blurSigma !== null), m, k.blur, `${k.name} blur`);
    withinThreeSigma(t, count(k.list, (p) => p.solarize), m, k.solarize, `${k.name} solarize`);
    t.ok(k.list.every((p) => p.size === k.size), `${k.name} crops are ${k.size} px`);
    // Sizes are rounded to whole pixels: allow that in the area and aspect checks.
    const areaOk = k.list.every(({ box: b }) => {
      const lo = (b.width - 0.5) * (b.height - 0.5);
      const hi = (b.width + 0.5) * (b.height + 0.5);
      return hi >= k.scale[0] * W * H && lo <= k.scale[1] * W * H;
    });
    t.ok(areaOk, `${k.name} crop areas within scale [${k.scale}]`);
    const aspectOk = k.list.every(({ box: b }) => (b.width + 0.5) / (b.height - 0.5) >= 3 / 4 && (b.width - 0.5) / (b.height + 0.5) <= 4 / 3);
    t.ok(aspectOk, `${k.name} aspect ratios within [3/4, 4/3]`);
    t.ok(k.list.every(({ box: b }) => b.left >= 0 && b.top >= 0 && b.left + b.width <= W && b.top + b.height <= H), `${k.name} boxes inside the image`);
    t.ok(k.list.some(({ box: b }) => b.left === 0) && k.list.some(({ box: b }) => b.left + b.width === W), `${k.name} boxes reach both sides`);
    const sigmas = k.list.flatMap((p) => (p.blurSigma === null ? [] : [p.blurSigma]));
    t.ok(sigmas.every((s) => s >= 0.1 && s < 2), `${k.name} blur sigma in [0.1, 2)`);
  }
  const jitters = crops.flat().flatMap((p) => (p.jitter === null ? [] : [p.jitter]));
  const ranges = { brightness: [0.6, 1.4], contrast: [0.6, 1.4], saturation: [0.8, 1.2], hue: [-0.1, 0.1] } as const;
  for (const [op, [lo, hi]] of Object.entries(ranges)) {
    const v = jitters.map((j) => j[op as keyof typeof ranges]);
    t.ok(v.every((x) => x >= lo && x < hi), `${op} factors in [${lo}, ${hi})`);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const se = (hi - lo) / Math.sqrt(12 * v.length);
    t.ok(Math.abs(mean - (lo + hi) / 2) <= 3 * se, `${op} factors uniform: mean ${mean.toFixed(4)}`);
  }
  t.ok(jitters.every((j) => [...j.order].sort().join() === '0,1,2,3'), 'jitter orders are permutations');
  for (let op = 0; op < 4; op++) withinThreeSigma(t, jitters.filter((j) => j.order[0] === op).length, jitters.length, 1 / 4, `op ${op} runs first`);
});

t.test('no try fits: the fallback centre crop with the ratio clamped', async (t) => {
  const aug = new DinoAugmentation();
  const rng = new CountingGenerator(5);
  for (const [w, h, box] of [
    [1000, 10, { left: 493, top: 0, width: 13, height: 10 }],
    [10, 1000, { left: 0, top: 493, width: 10, height: 13 }],
  ] as const) {
    const params = aug.drawParams(w, h, rng);
    t.ok(params.every((p) => JSON.stringify(p.box) === JSON.stringify(box)), `${w}x${h}: every crop is ${JSON.stringify(box)}`);
    const before = rng.used;
    drawResizedCropBox(w, h, [0.05, 0.4], [3 / 4, 4 / 3], rng);
    t.equal(rng.used - before, 20, 'after ten failed tries (two draws each)');
  }
  // A square image whose tries never fit: the centred box of the ratio nearest to 1.
  t.same(drawResizedCropBox(300, 300, [1, 1], [3 / 4, 3 / 4], new Generator(1)), { left: 37, top: 0, width: 225, height: 300 });
});

function image(width: number, height: number, fill: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = fill(x, y, c);
  return { width, height, data };
}

// Bitwise equality of crop lists (tap's deep comparison is slow on large arrays).
function sameCrops(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length && a.every((x, i) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength)));
}

t.test('apply(): crop order and sizes, seeded and reproducible, same draws as drawParams', async (t) => {
  const img = image(500, 375, (x, y, c) => (x * 7 + y * 3 + c * 50) & 255);
  const aug = new DinoAugmentation({ localCropsNumber: 3 });
  const a = new CountingGenerator(11);
  const crops = aug.apply(img, a);
  t.same(crops.map((c) => c.length), [224, 224, 96, 96, 96].map((s) => 3 * s * s), '[global1, global2, local1..3], CHW');
  const b = new CountingGenerator(11);
  t.ok(sameCrops(aug.apply(img, b), crops), 'the same seed gives the same crops');
  t.same(a.getState(), b.getState());
  const c = new CountingGenerator(11);
  aug.drawParams(500, 375, c);
  t.equal(c.used, a.used, 'apply draws exactly what drawParams draws');
  t.notOk(sameCrops(aug.apply(img, new Generator(12)), crops), 'another seed, other crops');
  const table = normalizationTable([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
  const channelValues = [0, 1, 2].map((c) => new Set(table.subarray(c * 256, (c + 1) * 256)));
  const normalisedBytes = (x: Float32Array) => x.every((v, i) => channelValues[Math.floor((3 * i) / x.length)].has(v));
  t.ok(crops.every(normalisedBytes), 'every value is a normalised byte of its channel');
});

t.test('edge cases: 1x1, smaller than the crop, extreme aspect, all black, all white', async (t) => {
  const aug = new DinoAugmentation();
  const table = normalizationTable([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
  const black = aug.apply(image(9, 13, () => 0), new Generator(1));
  t.ok(black.every((crop) => [0, 1, 2].every((c) => crop.subarray((c * crop.length) / 3, ((c + 1) * crop.length) / 3).every((v) => v === table[c * 256]))), 'black stays black through every transform');
  for (const [name, img] of [
    ['1x1', image(1, 1, (_x, _y, c) => [200, 30, 90][c])],
    ['white 7x5', image(7, 5, () => 255)],
  ] as const) {
    for (let seed = 0; seed < 20; seed++) {
      const rng = new Generator(seed);
      const params = aug.drawParams(img.width, img.height, rng);
      const flat = params.every((p) => {
        const out = aug.applyCrop(img, p).data;
        return out.every((v, i) => v === out[i % 3]);
      });
      if (!flat) t.fail(`${name}, seed ${seed}: a crop of a flat image is not flat`);
    }
    t.pass(`${name}: every crop of 20 draws is one flat colour`);
  }
  const thin = aug.apply(image(3000, 2, (x, _y, c) => (x + c) & 255), new Generator(3));
  t.same(thin.map((c) => c.length), [224, 224, ...Array(8).fill(96)].map((s) => 3 * s * s), 'a 3000x2 image still gives every crop');
  t.equal(evalTransform(image(1, 1, () => 7)).length, 3 * 224 * 224, 'eval transform of a 1x1 image');
  t.equal(evalTransform(image(500, 375, () => 7)).length, 3 * 224 * 224, 'eval transform of 500x375');
});

t.test('bad input gives clear errors', async (t) => {
  const aug = new DinoAugmentation();
  const rng = new Generator(0);
  t.throws(() => aug.apply({ width: 2, height: 2, data: new Uint8Array(11) }, rng), /has 11 bytes, expected 2x2x3 = 12/);
  t.throws(() => aug.apply({ width: 0, height: 2, data: new Uint8Array(0) }, rng), /at least 1x1/);
  t.throws(() => aug.apply({ width: 1, height: 1, data: [1, 2, 3] as unknown as Uint8Array }, rng), /must be a Uint8Array/);
  t.throws(() => new DinoAugmentation({ globalCropsScale: [0.9, 0.4] }), /crop scale must be \[min, max\]/);
  t.throws(() => new DinoAugmentation({ localCropsSize: 0 }), /localCropsSize must be an integer/);
  t.throws(() => new DinoAugmentation({ localCropsNumber: -1 }), /localCropsNumber/);
  t.throws(() => new DinoAugmentation({ std: [0.2, 0, 0.2] }), /std must be three finite positive numbers/);
  const params = aug.drawParams(10, 10, rng)[0];
  const img = image(10, 10, () => 1);
  t.throws(() => aug.applyCrop(img, { ...params, jitter: { order: [0, 0, 1, 2], brightness: 1, contrast: 1, saturation: 1, hue: 0 } }), /permutation of 0..3/);
  t.throws(() => aug.applyCrop(img, { ...params, jitter: { order: [0, 1, 2, 3], brightness: 1, contrast: 1, saturation: 1, hue: 0.7 } }), /hue factor must be in \[-0.5, 0.5\]/);
  t.throws(() => aug.applyCrop(img, { ...params, box: { left: 5, top: 0, width: 6, height: 4 } }), /inside the 10x10 image/);
  t.throws(() => aug.applyCrop(img, { ...params, blurSigma: -1 }), /blur sigma/);
  t.throws(() => evalTransform(img, { crop: 0 }), /crop must be an integer/);
  t.throws(() => resizeBicubic(img, 4, 4, undefined, { width: 4, height: 4, data: img.data.subarray(0, 48) }), /must not share memory/);
  t.throws(() => resizeBicubic(img, 0, 4), /output size must be positive integers/);
});
