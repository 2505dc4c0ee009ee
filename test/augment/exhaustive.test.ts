// The per-pixel conversions against Pillow on every possible input (SHA-256 of Pillow's output,
// scripts/fixtures/augment.py): RGB -> HSV and HSV -> RGB on all 2^24 byte triples, which makes
// adjust_hue exact for every pixel and every shift; convert('L') on all triples; Image.blend on all
// 2^16 byte pairs at DINO's jitter factors and beyond.
import t from 'tap';
import { createHash } from 'node:crypto';
import { loadFixtures } from '../helpers/fixtures.ts';
import { blend, grayscale, hsvToRgb, rgbToHsv } from '../../lib/augment/color.ts';

const cases = loadFixtures('augment');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

// Pixel i is (i >> 16, (i >> 8) & 255, i & 255).
function everyTriple(): Uint8Array {
  const data = new Uint8Array(3 << 24);
  for (let i = 0, p = 0; i < 1 << 24; i++, p += 3) {
    data[p] = i >> 16;
    data[p + 1] = (i >> 8) & 255;
    data[p + 2] = i & 255;
  }
  return data;
}

t.test('RGB <-> HSV on every byte triple', async (t) => {
  const out = new Uint8Array(3 << 24);
  rgbToHsv(everyTriple(), out);
  t.equal(sha256(out), cases.exhaustive_rgb_to_hsv.attrs.sha256, 'convert("HSV") of all 2^24 colours');
  hsvToRgb(everyTriple(), out);
  t.equal(sha256(out), cases.exhaustive_hsv_to_rgb.attrs.sha256, 'convert("RGB") of all 2^24 HSV triples');
});

t.test('convert("L") on every byte triple', async (t) => {
  const img = { width: 4096, height: 4096, data: everyTriple() };
  grayscale(img);
  const luma = new Uint8Array(1 << 24);
  for (let i = 0; i < luma.length; i++) luma[i] = img.data[i * 3];
  t.equal(sha256(luma), cases.exhaustive_luma.attrs.sha256);
});

t.test('Image.blend on every byte pair', async (t) => {
  const a = Uint8Array.from({ length: 1 << 16 }, (_, i) => i >> 8);
  const b = Uint8Array.from({ length: 1 << 16 }, (_, i) => i & 255);
  const out = new Uint8Array(1 << 16);
  const list = Object.entries(cases).filter(([name]) => name.startsWith('exhaustive_blend_'));
  t.ok(list.length >= 10, 'several factors');
  for (const [, c] of list) {
    blend(a, b, c.attrs.alpha, out);
    t.equal(sha256(out), c.attrs.sha256, `factor ${c.attrs.alpha}`);
  }
});
