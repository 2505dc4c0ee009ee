// `dino attention` on a real photograph: the pictures it writes and their sizes, a directory of frames
// and its animation, and the errors (exit 1 for a file problem, 2 for a command called wrongly, never
// a stack trace). The numbers themselves are checked against PyTorch in test/viz/attention.test.ts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { runCli } from '../helpers/cli.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const chelsea = join(root, 'test', 'fixtures', 'images', 'chelsea.png');
const fixtureWeights = join(root, 'test', 'fixtures', 'attention', 'vit.pth');
const dir = mkdtempSync(join(tmpdir(), 'attention-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// vit_tiny (3 heads) with patch 8 on small images keeps every run short.
const tiny = ['--random-init', '--arch', 'vit_tiny', '--patch-size', '8'];

const run = (args: string[]) => runCli(['attention', ...args]);

const pixels = async (path: string) => (await sharp(path).raw().toBuffer({ resolveWithObject: true }));

t.test('one photograph: the input, a map per head, their mean and the masks', async (t) => {
  const out = join(dir, 'one');
  const r = await run([...tiny, '--image-path', chelsea, '--image-size', '64', '--threshold', '0.6', '--output-dir', out]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /random init \(vit_tiny\/8, seed 0\): 3 heads, patch 8[\s\S]*chelsea\.png: 96x64, 8x12 patches -> 8 pictures/);
  const names = ['img.png', 'attn-head0.png', 'attn-head1.png', 'attn-head2.png', 'attn-mean.png', 'mask_th0.6_head0.png', 'mask_th0.6_head1.png', 'mask_th0.6_head2.png'];
  t.same(readdirSync(out).sort(), [...names].sort());
  for (const name of names) {
    const m = await sharp(join(out, name)).metadata();
    t.same([m.format, m.width, m.height, m.channels], ['png', 96, 64, 3], `${name}: 96x64 RGB PNG (451x300 with its shorter side at 64)`);
  }
  const heads = await Promise.all([0, 1, 2].map((h) => pixels(join(out, `attn-head${h}.png`))));
  t.notOk(heads[0].data.equals(heads[1].data) || heads[0].data.equals(heads[2].data) || heads[1].data.equals(heads[2].data), 'the heads differ');
  // Nearest upsampling: every 8x8 patch is one colour.
  const { data } = heads[0];
  let blocky = true;
  for (let y = 0; y < 64; y++) for (let x = 0; x < 96; x++) for (let c = 0; c < 3; c++) blocky &&= data[(y * 96 + x) * 3 + c] === data[((y - (y % 8)) * 96 + x - (x % 8)) * 3 + c];
  t.ok(blocky, 'a map is drawn patch by patch');

  const again = join(dir, 'again');
  t.equal((await run([...tiny, '--image-path', chelsea, '--image-size', '64', '--output-dir', again])).code, 0);
  t.ok((await pixels(join(again, 'mask_th0.6_head1.png'))).data.equals((await pixels(join(out, 'mask_th0.6_head1.png'))).data), 'the same seed, the same pictures');
  const reseeded = join(dir, 'reseeded');
  t.equal((await run([...tiny, '--image-path', chelsea, '--image-size', '48', '64', '--threshold', '0', '--seed', '5', '--output-dir', reseeded])).code, 0);
  t.same(readdirSync(reseeded).sort(), ['attn-head0.png', 'attn-head1.png', 'attn-head2.png', 'attn-mean.png', 'img.png'], 'threshold 0: no masks');
  t.same(((m) => [m.width, m.height])(await sharp(join(reseeded, 'img.png')).metadata()), [64, 48], '--image-size H W');
});

t.test('a directory of frames: pictures per frame and an animation of the mean', async (t) => {
  const frames = join(dir, 'frames');
  mkdirSync(frames);
  // Three views panning across the photograph, named out of creation order.
  for (const [name, left] of [['b', 60], ['a', 0], ['c', 120]] as const) {
    await sharp(chelsea).extract({ left, top: 40, width: 240, height: 180 }).png().toFile(join(frames, `${name}.png`));
  }
  writeFileSync(join(frames, 'notes.txt'), 'not an image');
  for (const format of ['gif', 'webp']) {
    const out = join(dir, `video-${format}`);
    const r = await run([...tiny, '--image-path', frames, '--image-size', '48', '64', '--video-format', format, '--fps', '5', '--output-dir', out]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /a\.png[\s\S]*b\.png[\s\S]*c\.png/, `${format}: frames in name order`);
    t.same(readdirSync(out).sort(), ['a', 'b', 'c', `attn-mean.${format}`].sort(), `${format}: a folder per frame and the animation`);
    t.ok(readdirSync(join(out, 'b')).includes('mask_th0.6_head2.png'), 'with its pictures');
    const m = await sharp(join(out, `attn-mean.${format}`), { animated: true }).metadata();
    t.same([m.format, m.pages, m.width, m.pageHeight, m.delay], [format, 3, 64, 48, [200, 200, 200]], `${format}: 3 frames of 64x48, 5 per second`);
  }
});

t.test('errors: clear messages, exit 1 or 2, no stack trace', async (t) => {
  const badImage = join(dir, 'broken.png');
  writeFileSync(badImage, 'not a png');
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const img = ['--image-path', chelsea, '--output-dir', join(dir, 'err')];
  const cases: [string[], number, RegExp][] = [
    [[...tiny, '--image-path', join(dir, 'nope.png')], 1, /--image-path: no such file or directory: .*nope\.png/],
    [[...tiny, '--image-path', badImage], 1, /broken\.png: .*(unsupported image format|Input buffer)/],
    [[...tiny, '--image-path', empty], 1, /empty holds no images/],
    [['--pretrained-weights', join(dir, 'missing.pth'), ...img], 1, /--pretrained-weights: no such file: .*missing\.pth/],
    [['--pretrained-weights', fixtureWeights, '--arch', 'vit_small', ...img], 1, /vit\.pth holds a ViT of width 48 and depth 2, not vit_small \(--arch\)/],
    [[...tiny, ...img, '--image-size', '4'], 2, /--image-size 4 is smaller than one 8x8 patch/],
    [[...tiny, ...img, '--image-size', '1', '2', '3'], 2, /--image-size takes one or two numbers, got 3/],
    [img, 2, /give either --pretrained-weights or --random-init/],
    [['--random-init', '--pretrained-weights', fixtureWeights, ...img], 2, /give either --pretrained-weights or --random-init/],
    [[...tiny, ...img, '--threshold', '1.5'], 2, /--threshold must be <= 1/],
    [[...tiny, ...img, '--video-format', 'avi'], 2, /--video-format must be one of gif, webp/],
    [tiny, 2, /--image-path is required/],
  ];
  for (const [args, code, message] of cases) {
    const r = await run(args);
    t.equal(r.code, code, `${message}: exit ${code}`);
    t.match(r.err, message);
    t.notMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  t.match(await run(['--help']), { code: 0, out: /usage: dino attention[\s\S]*--image-path PATH[\s\S]*mask_th\{t\}_head\{j\}\.png/ });

  const proc = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/dino.ts', 'attention', ...tiny, '--image-path', join(dir, 'nope.png')], { cwd: root, encoding: 'utf8' });
  t.equal(proc.status, 1, 'the real program exits with 1');
  t.match(proc.stderr, /^dino attention: --image-path: no such file or directory/);
  t.notMatch(proc.stderr, /\n\s+at /);
});
