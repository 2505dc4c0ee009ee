// Each transform against Pillow running torchvision 0.8's PIL code path (scripts/fixtures/augment.py)
// on downscaled photographs, a gray photograph, flat black and white images, a single pixel and
// 64x2 / 2x64 / 3x2 images, and at DINO's crop sizes on a 320x256 image (compared by SHA-256). Every
// comparison is exact: the maximum error allowed, and observed, is 0 uint8 levels (0 in float32 after
// normalisation).
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { loadFixtures, type FixtureCase } from '../helpers/fixtures.ts';
import { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, solarize } from '../../lib/augment/color.ts';
import { gaussianBlur } from '../../lib/augment/blur.ts';
import { DinoAugmentation, type CropParams } from '../../lib/augment/dino.ts';
import { evalTransform } from '../../lib/augment/eval.ts';
import { flipHorizontal, normalizationTable, toNormalizedChw, type Rgb, type RgbImage } from '../../lib/augment/image.ts';
import { resizeBicubic, resizeBilinear } from '../../lib/augment/resize.ts';
import { fromBase64, loadInput, maxError } from './inputs.ts';

const cases = loadFixtures('augment');
const named = (prefix: string): [string, FixtureCase][] => Object.entries(cases).filter(([name]) => name.startsWith(prefix));
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
// A crop's parameters as the fixtures store them (box as [left, top, width, height]).
const toCropParams = (p: any): CropParams => ({ ...p, box: { left: p.box[0], top: p.box[1], width: p.box[2], height: p.box[3] } });

// Runs `run` on every case with the prefix and checks the image it gives against the expected bytes.
function exact(t: Test, prefix: string, run: (c: FixtureCase) => RgbImage): void {
  const list = named(prefix);
  t.ok(list.length > 0, `there are ${prefix} cases`);
  let worst = 0;
  for (const [name, c] of list) {
    const err = maxError(run(c).data, fromBase64(c.attrs.expected));
    worst = Math.max(worst, err);
    if (err !== 0) t.fail(`${name} (${JSON.stringify({ ...c.attrs, expected: undefined })}): max error ${err}`);
  }
  t.equal(worst, 0, `${list.length} ${prefix} cases, max error ${worst}`);
}

t.comment(`reference: Pillow ${cases.meta.attrs.pillow}`);

t.test('crop + bicubic resize (PIL BICUBIC, a = -0.5, antialiased; torchvision crop then resize)', async (t) => {
  exact(t, 'resize_', (c) => {
    const [left, top, width, height] = c.attrs.box;
    return resizeBicubic(loadInput(c.attrs.input), c.attrs.size[0], c.attrs.size[1], { left, top, width, height });
  });
});

const inPlace = (op: (img: RgbImage, factor: number) => void) => (c: FixtureCase) => {
  const img = loadInput(c.attrs.input);
  op(img, c.attrs.factor);
  return img;
};

t.test('ImageEnhance.Brightness', async (t) => exact(t, 'brightness_', inPlace(adjustBrightness)));
t.test('ImageEnhance.Contrast (mean of convert("L"), rounded)', async (t) => exact(t, 'contrast_', inPlace(adjustContrast)));
t.test('ImageEnhance.Color', async (t) => exact(t, 'saturation_', inPlace(adjustSaturation)));
t.test('adjust_hue (PIL HSV round trip, uint8 wrap-around)', async (t) => exact(t, 'hue_', inPlace(adjustHue)));
t.test('convert("L") as 3 channels', async (t) => exact(t, 'grayscale_', inPlace(grayscale)));
t.test('ImageOps.solarize', async (t) => exact(t, 'solarize_', inPlace(solarize)));
t.test('FLIP_LEFT_RIGHT', async (t) => exact(t, 'flip_', inPlace(flipHorizontal)));
t.test('ImageFilter.GaussianBlur (3 extended box passes each way)', async (t) => exact(t, 'blur_', inPlace(gaussianBlur)));

t.test('ToTensor + Normalize equal PyTorch for every byte in every channel (float32, bitwise)', async (t) => {
  for (const [name, c] of named('normalize_')) {
    const table = normalizationTable(c.attrs.mean as Rgb, c.attrs.std as Rgb);
    const ramp = { width: 256, height: 1, data: Uint8Array.from({ length: 768 }, (_, i) => Math.floor(i / 3)) };
    t.same(Array.from(toNormalizedChw(ramp, table)), c.tensors.out.data.map(Math.fround), name);
  }
});

function normalized(width: number, height: number, bytes: Uint8Array): Float32Array {
  return toNormalizedChw({ width, height, data: bytes }, normalizationTable([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]));
}

t.test('eval transform: shorter-side bicubic resize, centre crop (black outside), normalise', async (t) => {
  const list = named('eval_');
  for (const [name, c] of list) {
    const { input, resize, crop } = c.attrs;
    const expected = normalized(crop, crop, fromBase64(c.attrs.expected));
    t.same(evalTransform(loadInput(input), { resize, crop }), expected, `${name}: ${input} resize ${resize} crop ${crop}, bitwise`);
  }
});

t.test('the whole multi-crop augmentation with torchvision-drawn parameters', async (t) => {
  const aug = new DinoAugmentation({ globalCropsSize: 32, localCropsSize: 16 });
  for (const [name, c] of named('dino_')) {
    const img = loadInput(c.attrs.input);
    const params: CropParams[] = c.attrs.params.map(toCropParams);
    t.equal(params.length, 10, `${name}: 2 global + 8 local crops`);
    let worst = 0;
    params.forEach((p, i) => {
      worst = Math.max(worst, maxError(aug.applyCrop(img, p).data, fromBase64(c.attrs.expected[i])));
    });
    t.equal(worst, 0, `${name}: every crop exact (max error ${worst})`);
  }
  const fired = (key: keyof CropParams) => named('dino_').flatMap(([, c]) => c.attrs.params).filter((p: any) => p[key] !== null && p[key] !== false).length;
  for (const key of ['flip', 'jitter', 'grayscale', 'blurSigma', 'solarize'] as const) t.ok(fired(key) > 0, `${key} fires in some crop (${fired(key)} of 30)`);
});

t.test('at DINO\'s sizes on a 320x256 image: resize, blur and the whole augmentation (SHA-256 of Pillow\'s bytes)', async (t) => {
  const img = loadInput('astronaut-tiled');
  const resizes = named('large_resize_');
  t.ok(resizes.length >= 8, 'several boxes and sizes');
  for (const [name, c] of resizes) {
    const [left, top, width, height] = c.attrs.box;
    const resize = c.attrs.filter === 'bilinear' ? resizeBilinear : resizeBicubic;
    t.equal(sha256(resize(img, c.attrs.size[0], c.attrs.size[1], { left, top, width, height }).data), c.attrs.sha256, `${name}: ${c.attrs.filter} ${JSON.stringify(c.attrs.box)} -> ${c.attrs.size}`);
  }
  for (const [name, c] of named('large_blur_')) {
    const blurred = loadInput('astronaut-tiled');
    gaussianBlur(blurred, c.attrs.sigma);
    t.equal(sha256(blurred.data), c.attrs.sha256, `${name}: sigma ${c.attrs.sigma}`);
  }
  const aug = new DinoAugmentation();
  for (const [name, c] of named('large_dino_')) {
    const crops = c.attrs.params.map((p: any) => sha256(aug.applyCrop(img, toCropParams(p)).data));
    t.same(crops, c.attrs.sha256, `${name}: 2 x 224 + 8 x 96 crops`);
  }
});
