// Decoding: every image kind a dataset may hold gives PIL's Image.open(f).convert('RGB') pixels exactly
// (PIL runs as the oracle when python3 has it), with the documented exception of 16-bit gray; every
// bad input is an ImageDecodeError naming the file and the reason, quickly and without hanging; the
// pixel limit refuses from the header and still accepts 12,000 x 12,000.
import t from 'tap';
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { RgbImage } from '../../lib/augment/image.ts';
import { DEFAULT_MAX_PIXELS, decodeImage, ImageDecodeError, readImageFile } from '../../lib/data/decode.ts';
import { pythonMissing, runPython } from '../io/python.ts';
import { pattern, png, PNG_GRAY, PNG_RGB, PNG_RGBA } from './images.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
const dir = mkdtempSync(join(tmpdir(), 'decode-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

const W = 30;
const H = 20;
const rgb = pattern(W, H);
const raw = (data: Uint8Array, channels: 1 | 2 | 3 | 4, width = W, height = H) => sharp(data, { raw: { width, height, channels } });

// 16-bit samples (big-endian in the PNG) whose high bytes are `rgb`, low bytes something else.
const rgb16 = new Uint8Array(rgb.length * 2);
rgb.forEach((v, i) => {
  rgb16[2 * i] = v;
  rgb16[2 * i + 1] = (i * 37) & 255;
});
const gray16 = rgb16.filter((_, i) => i % 6 < 2);
const rgba = new Uint8Array(W * H * 4);
for (let i = 0; i < W * H; i++) rgba.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], (i * 13) & 255], 4 * i);
// Noise, so that cutting the file leaves the scan unfinished.
const noise = Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (Math.imul(i, 2654435761) >>> 24) & 255);

// Writes the good images; returns the names PIL must agree with exactly.
async function writeGoodImages(): Promise<string[]> {
  const files: Record<string, Buffer> = {
    'rgb.jpg': await raw(rgb, 3).jpeg({ quality: 90 }).toBuffer(),
    'rgb.png': await raw(rgb, 3).png().toBuffer(),
    'rgb.webp': await raw(rgb, 3).webp({ quality: 90 }).toBuffer(),
    'gray.jpg': await raw(rgb.filter((_, i) => i % 3 === 0), 1).toColourspace('b-w').jpeg({ quality: 90 }).toBuffer(),
    // Known inks (test/fixtures/data/README.md): sharp cannot write them.
    'cmyk.jpg': readFileSync(join(fixtures, 'cmyk.jpg')),
    'rgba.png': png(W, H, 8, PNG_RGBA, rgba),
    'gray-alpha.png': await raw(rgba.filter((_, i) => i % 4 === 0 || i % 4 === 3), 2).toColourspace('b-w').png().toBuffer(),
    'palette.png': await raw(rgb, 3).png({ palette: true, colours: 16 }).toBuffer(),
    'rgb16.png': png(W, H, 16, PNG_RGB, rgb16),
    // EXIF orientation 6 (rotate 90 degrees to display): PIL does not apply it, neither do we.
    'exif-rotated.jpg': await raw(rgb, 3).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
    // Pixels converted to Display P3 with the profile embedded: PIL ignores the profile, so do we.
    'p3.png': await raw(rgb, 3).withIccProfile('p3').png().toBuffer(),
    'small.png': await raw(pattern(5, 3), 3, 5, 3).png().toBuffer(),
    'palette.gif': await raw(rgb, 3).gif().toBuffer(),
    'rgb.tiff': await raw(rgb, 3).tiff().toBuffer(),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(at(name), bytes);
  return Object.keys(files);
}

const PIL_DECODE = `
import base64, json, sys
from PIL import Image
out = {}
for path in sys.argv[1:]:
    im = Image.open(path)
    mode = im.mode
    im = im.convert("RGB")
    out[path] = {"mode": mode, "width": im.width, "height": im.height, "rgb": base64.b64encode(im.tobytes()).decode()}
print(json.dumps(out))
`;

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

t.test('every kind of image decodes to PIL convert("RGB") pixels, bit for bit', async (t) => {
  const names = await writeGoodImages();
  const mine = new Map<string, RgbImage>();
  for (const name of names) mine.set(name, await readImageFile(at(name)));

  // Hand-derived expectations that hold without Python.
  const exact = (name: string, want: Uint8Array) => t.same(maxDiff(mine.get(name)!.data, want), 0, `${name}: the expected pixels exactly`);
  exact('rgb.png', rgb);
  exact('rgba.png', rgb); // alpha dropped, colour kept even where alpha is 0
  exact('rgb16.png', rgb); // the high byte of each 16-bit sample
  const exif = mine.get('exif-rotated.jpg')!;
  t.same([exif.width, exif.height], [W, H], 'EXIF orientation is not applied');
  t.same([mine.get('small.png')!.width, mine.get('small.png')!.height], [5, 3], 'an image smaller than any crop decodes as it is');
  const gray = mine.get('gray.jpg')!.data;
  t.ok(gray.every((v, i) => v === gray[i - (i % 3)]), 'gray: the three channels are equal');
  t.ok(maxDiff(mine.get('rgb.jpg')!.data, rgb) <= 8, 'JPEG: close to the source');
  const inks = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) inks.set([x * 8, y * 12, (x + y) * 4].map((c) => Math.round((255 - 64) * (1 - c / 255))), 3 * (y * W + x));
  t.ok(maxDiff(mine.get('cmyk.jpg')!.data, inks) <= 6, 'CMYK JPEG: (255 - K)(1 - C/255) per channel, within JPEG error');

  await t.test('PIL gives the same bytes', { skip: pythonMissing('PIL') }, async (t) => {
    const pil = runPython(PIL_DECODE, names.map(at)) as Record<string, { mode: string; width: number; height: number; rgb: string }>;
    for (const name of names) {
      const want = pil[at(name)];
      const got = mine.get(name)!;
      t.same([got.width, got.height], [want.width, want.height], `${name} (PIL mode ${want.mode}): size`);
      t.equal(maxDiff(got.data, Buffer.from(want.rgb, 'base64')), 0, `${name} (PIL mode ${want.mode}): every byte equals PIL's`);
    }
  });
});

t.test('16-bit gray is scaled to 8 bits (PIL would clip it to 255)', async (t) => {
  writeFileSync(at('gray16.png'), png(W, H, 16, PNG_GRAY, gray16));
  const image = await readImageFile(at('gray16.png'));
  const want = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) want.fill(gray16[2 * i], 3 * i, 3 * i + 3);
  t.equal(maxDiff(image.data, want), 0, 'each pixel is the high byte, repeated');
});

t.test('bad files are ImageDecodeErrors naming the file and the reason', async (t) => {
  const jpeg = await raw(noise, 3, 64, 64).jpeg({ quality: 95 }).toBuffer();
  writeFileSync(at('truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length * 0.7)));
  writeFileSync(at('empty.jpg'), '');
  writeFileSync(at('text.jpg'), 'this is not an image\n');
  writeFileSync(at('junk.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100, 7)]));
  writeFileSync(at('drawing.png'), '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9" fill="red"/></svg>');
  mkdirSync(at('directory.jpg'));
  const cases: [string, RegExp][] = [
    ['truncated.jpg', /premature end of JPEG/],
    ['empty.jpg', /empty file/],
    ['text.jpg', /unsupported image format/],
    ['junk.png', /./],
    ['drawing.png', /svg content is not a raster image format PIL reads/],
    ['directory.jpg', /not a regular file \(a directory\)/],
    ['missing.jpg', /cannot read: ENOENT/],
  ];
  // Unreadable files: chmod 000 does not stop root (as tests often run), so also a FIFO named like an
  // image (reading one would block; it is refused at once), a directory and a missing file.
  if (spawnSync('mkfifo', [at('fifo.jpg')]).status === 0) cases.push(['fifo.jpg', /not a regular file \(a FIFO\)/]);
  else t.comment('mkfifo is not available: the FIFO case is not run');
  if (process.getuid?.() !== 0) {
    copyFileSync(at('rgb.png'), at('no-access.png'));
    chmodSync(at('no-access.png'), 0);
    cases.push(['no-access.png', /cannot read: EACCES/]);
  }
  for (const [name, reason] of cases) {
    const started = Date.now();
    const error = await readImageFile(at(name)).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(error instanceof ImageDecodeError, `${name}: ImageDecodeError`);
    const e = error as ImageDecodeError;
    t.equal(e.image, at(name), `${name}: names the file`);
    t.match(e.reason, reason, `${name}: ${e.reason}`);
    t.equal(e.code, 'ERR_DINO_IMAGE_DECODE');
    t.ok(Date.now() - started < 5000, `${name}: fails at once`);
  }
});

t.test('the truncated JPEG is an error in PIL too', { skip: pythonMissing('PIL') }, async (t) => {
  const script = 'import sys\nfrom PIL import Image\ntry:\n    Image.open(sys.argv[1]).convert("RGB"); print("1")\nexcept OSError:\n    print("0")';
  t.equal(runPython(script, [at('truncated.jpg')]), 0, 'PIL refuses it (LOAD_TRUNCATED_IMAGES is off by default)');
});

t.test('the pixel limit: refused from the header above it, 12,000 x 12,000 decoded', async (t) => {
  // 20,000 x 20,000 one-bit gray: 400 MP, 50 MB of zero rows that deflate to a few kilobytes.
  const side = 20_000;
  const bomb = png(side, side, 1, PNG_GRAY, new Uint8Array((side / 8) * side));
  t.ok(bomb.length < 200_000, `a ${bomb.length}-byte file`);
  await t.rejects(decodeImage(bomb, 'bomb.png'), { name: 'ImageDecodeError', reason: /pixel limit/ }, `400 MP > ${DEFAULT_MAX_PIXELS}: refused`);
  await t.rejects(decodeImage(readFileSync(at('rgb.png')), 'rgb.png', { maxPixels: W * H - 1 }), { name: 'ImageDecodeError', reason: /pixel limit/ }, 'a lower limit applies');
  t.equal((await decodeImage(readFileSync(at('rgb.png')), 'rgb.png', { maxPixels: W * H })).width, W, 'exactly at the limit is accepted');
  await t.rejects(decodeImage(bomb, 'x', { maxPixels: 0 }), RangeError, 'a limit below 1 is a usage error');

  // 12,000 x 12,000 (144 MP) one-bit gray, black with a white last row.
  const big = 12_000;
  const bits = new Uint8Array((big / 8) * big);
  bits.fill(0xff, bits.length - big / 8);
  const image = await decodeImage(png(big, big, 1, PNG_GRAY, bits), 'big.png');
  t.same([image.width, image.height, image.data.length], [big, big, big * big * 3], '144 MP decoded at full size');
  t.same([...image.data.subarray(0, 3), ...image.data.subarray(-3)], [0, 0, 0, 255, 255, 255], 'first pixel black, last white');
});
