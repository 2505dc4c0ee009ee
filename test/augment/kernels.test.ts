// The native image kernels' arguments: every wrong type, size, length, range or overlap is a
// TypeError or RangeError thrown to JavaScript, and the buffers are left alone. (What the kernels
// compute is checked against Pillow in pillow.test.ts and exhaustive.test.ts.)
import t from 'tap';
import { addon } from '../../lib/engine/native.ts';

const image = (width: number, height: number) => Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37) & 255);
const MAX = 2 ** 31 - 1;

t.test('resampleU8', async (t) => {
  const src = image(8, 6);
  const dst = new Uint8Array(4 * 4 * 3);
  const args = (over: Partial<Record<number, unknown>>): unknown[] => {
    const a: unknown[] = ['bicubic', src, 8, 6, 1, 1, 6, 4, dst, 4, 4];
    for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
    return a;
  };
  const call = (over: Partial<Record<number, unknown>>) => () => (addon.resampleU8 as (...a: unknown[]) => void)(...args(over));
  call({})();
  t.throws(call({ 0: 'nearest' }), TypeError, 'unknown filter');
  t.throws(call({ 1: new Float32Array(144) }), { name: 'TypeError', message: /source must be a Uint8Array/ });
  t.throws(call({ 1: undefined }), TypeError, 'missing source');
  t.throws(call({ 2: 0 }), { name: 'RangeError', message: /width must be an integer/ });
  t.throws(call({ 2: 8.5 }), RangeError, 'fractional width');
  t.throws(call({ 2: NaN }), RangeError, 'NaN width');
  t.throws(call({ 2: '8' }), TypeError, 'width as a string');
  t.throws(call({ 2: 2 ** 31 }), RangeError, 'width past 2^31 - 1');
  t.throws(call({ 2: MAX, 3: MAX }), { name: 'RangeError', message: /source has 144 bytes, expected/ }, 'a size whose byte count overflows 64 bits');
  t.throws(call({ 3: 5 }), { name: 'RangeError', message: /source has 144 bytes, expected 8x5x3/ });
  t.throws(call({ 4: 3 }), { name: 'RangeError', message: /not a non-empty box inside the 8x6 image/ }, 'box past the right edge');
  t.throws(call({ 5: -1 }), RangeError, 'negative top');
  t.throws(call({ 6: 0 }), /not a non-empty box/, 'empty box');
  t.throws(call({ 7: MAX }), /not a non-empty box/, 'box far past the bottom');
  t.throws(call({ 9: 0 }), /output size must be positive integers/);
  t.throws(call({ 10: Infinity }), /output size must be positive integers/);
  t.throws(call({ 9: 5 }), { name: 'RangeError', message: /output has 48 bytes, expected 5x4x3/ });
  t.throws(call({ 8: src.subarray(0, 48) }), /must not share memory/, 'output inside the source');
  const shared = new Uint8Array(144 + 48);
  t.throws(call({ 1: shared.subarray(0, 144), 8: shared.subarray(143, 191) }), /must not share memory/, 'one byte in common');
  call({ 1: shared.subarray(0, 144), 8: shared.subarray(144) })();
  t.pass('disjoint views of one buffer are fine');
});

t.test('gaussianBlurU8', async (t) => {
  const data = image(5, 4);
  const before = data.slice();
  for (const sigma of [-1, NaN, Infinity, 2 ** 22 + 1]) t.throws(() => addon.gaussianBlurU8(data, 5, 4, sigma), { name: 'RangeError', message: /blur sigma must be a number in \[0, 4194304\]/ }, `sigma ${sigma}`);
  t.throws(() => addon.gaussianBlurU8(data, 5, 5, 1), /image has 60 bytes, expected 5x5x3/);
  t.throws(() => addon.gaussianBlurU8(data, MAX, MAX, 1), /image has 60 bytes/);
  t.throws(() => addon.gaussianBlurU8([1, 2, 3] as unknown as Uint8Array, 1, 1, 1), TypeError);
  t.same(data, before, 'the image is untouched by refused calls');
  addon.gaussianBlurU8(data, 5, 4, 2 ** 22);
  t.pass('the largest sigma runs');
});

t.test('flipHorizontalU8 and normalizeU8', async (t) => {
  const data = image(3, 2);
  t.throws(() => addon.flipHorizontalU8(data, 3, 3), RangeError);
  t.throws(() => addon.flipHorizontalU8(data, -3, -2), RangeError);
  const table = new Float32Array(768);
  t.throws(() => addon.normalizeU8(data, new Float32Array(767), new Float32Array(18)), /3 x 256 values/);
  t.throws(() => addon.normalizeU8(data, table, new Float32Array(17)), /output has 17 values, expected 18/);
  t.throws(() => addon.normalizeU8(data, table, new Uint8Array(18) as unknown as Float32Array), /output must be a Float32Array/);
  t.throws(() => addon.normalizeU8(data.subarray(0, 17), table, new Float32Array(17)), /not a whole number of RGB pixels/);
  const buffer = new ArrayBuffer(18 + 18 * 4 + 2);
  t.throws(() => addon.normalizeU8(new Uint8Array(buffer, 0, 18), table, new Float32Array(buffer, 16, 18)), /must not share memory/);
});

t.test('the colour kernels', async (t) => {
  const data = image(4, 3);
  const before = data.slice();
  for (const op of ['adjustBrightnessU8', 'adjustContrastU8', 'adjustSaturationU8'] as const) {
    t.throws(() => addon[op](data, NaN), { name: 'RangeError', message: /factor must be finite/ }, `${op}: NaN`);
    t.throws(() => addon[op](data, undefined as unknown as number), TypeError, `${op}: no factor`);
    t.throws(() => addon[op](data.subarray(1), 1), /not a whole number of RGB pixels/, `${op}: partial pixel`);
    addon[op](new Uint8Array(0), 1.2);
  }
  for (const hue of [0.51, -0.6, NaN]) t.throws(() => addon.adjustHueU8(data, hue), /hue factor must be in \[-0.5, 0.5\]/);
  t.throws(() => addon.grayscaleU8(data.subarray(2)), RangeError);
  t.throws(() => addon.solarizeU8(null as unknown as Uint8Array), TypeError);
  t.same(data, before, 'the image is untouched by refused calls');

  const out = new Uint8Array(36);
  t.throws(() => addon.blendU8(data, out.subarray(1), 0.5, out), /blend needs equal lengths/);
  t.throws(() => addon.blendU8(data, data, Infinity, out), /blend factor must be finite/);
  const shared = new Uint8Array(40);
  t.throws(() => addon.blendU8(shared.subarray(0, 36), data, 0.5, shared.subarray(3, 39)), /same memory as the input or not overlap it/, 'shifted output');
  addon.blendU8(data, before, 0.3, data);
  t.pass('in place is fine');
  t.throws(() => addon.rgbToHsvU8(data, new Uint8Array(33)), /output has 33 bytes, expected 36/);
  t.throws(() => addon.hsvToRgbU8(shared.subarray(0, 36), shared.subarray(3, 39)), /not overlap/);
  addon.hsvToRgbU8(data, data);
});
