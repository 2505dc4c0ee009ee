// `dino embed`: CLS and patch-token features of image files against PyTorch's reference ViT with the
// same weights, the metadata (image order, skipped images, model), and its mistakes. `dino info`: the
// text and the JSON, checked against package.json and the machine.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { dispose, readSafetensors } from '../../lib/index.ts';
import { writeImage } from '../data/images.ts';
import { referenceFeatures, root, runCli, TINY_SPEC, writeTinyCheckpoint } from '../helpers/cli.ts';
import { pythonMissing } from '../io/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'embed-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const checkpoint = join(dir, 'tiny.safetensors');
writeTinyCheckpoint(checkpoint);

const close = (got: Float32Array, want: number[]) => got.length === want.length && got.every((v, i) => Math.abs(v - want[i]) < 1e-4);

function readOutput(path: string) {
  const { tensors, metadata } = readSafetensors(path);
  const out = Object.fromEntries(tensors.map(([name, x]) => [name, { shape: [...x.shape], data: x.data() }]));
  dispose(tensors.map(([, x]) => x));
  return { tensors: out, metadata };
}

t.test('embed: features of the reference ViT, in the order of the metadata', { skip: pythonMissing('torch', 'safetensors', 'PIL') }, async (t) => {
  const images = join(dir, 'images');
  // Sizes around the crop, one not square; a file that is not an image and one that is not readable.
  await writeImage(join(images, 'b.png'), 40, 30, 'png', 1);
  await writeImage(join(images, 'sub', 'a.jpg'), 28, 28, 'jpeg', 2);
  await writeImage(join(images, 'c.webp'), 20, 50, 'webp', 3);
  writeFileSync(join(images, 'broken.png'), 'not a png');
  writeFileSync(join(images, 'notes.txt'), 'ignored');
  const single = join(dir, 'single.png');
  await writeImage(single, 33, 33, 'png', 4);
  const output = join(dir, 'embeddings.safetensors');
  const r = await runCli(['embed', '--checkpoint', checkpoint, '--images', images, single, '--output', output, '--patch-tokens', '--num-workers', '1']);
  t.equal(r.code, 0, r.err);
  t.match(r.err, /warning: skipped image .*broken\.png/);
  t.match(r.out, `${output}: 4 images, 32 dimensions and 49 patch tokens each; 1 unreadable image left out`);

  const { tensors, metadata } = readOutput(output);
  const kept = [join(images, 'b.png'), join(images, 'c.webp'), join(images, 'sub', 'a.jpg'), single];
  t.same(JSON.parse(metadata.images), kept, 'sorted paths under the directory, then the file');
  t.match(JSON.parse(metadata.skipped), [{ image: join(images, 'broken.png'), reason: /./ }]);
  t.same(JSON.parse(metadata.model), TINY_SPEC);
  t.same([metadata.source, metadata.resize, metadata.crop], [`teacher of ${checkpoint}`, '32', '28']);
  t.same(tensors.cls.shape, [4, 32]);
  t.same(tensors.patch_tokens.shape, [4, 49, 32]);

  // The student at another size (crop 20: the position embeddings are resampled).
  const student = join(dir, 'student.safetensors');
  t.equal((await runCli(['embed', '--checkpoint', checkpoint, '--checkpoint-key', 'student', '--images', single, '--output', student, '--resize', '24', '--crop', '20'])).code, 0);
  const studentOut = readOutput(student);
  t.same(Object.keys(studentOut.tensors), ['cls'], 'no patch tokens unless asked');
  t.same([studentOut.metadata.source, studentOut.metadata.resize, studentOut.metadata.crop], [`student of ${checkpoint}`, '24', '20']);

  const [teacher, studentRef] = referenceFeatures(checkpoint, [
    { key: 'teacher', images: kept, resize: 32, crop: 28 },
    { key: 'student', images: [single], resize: 24, crop: 20 },
  ]);
  t.ok(close(tensors.cls.data, teacher.cls.flat()), 'CLS features');
  t.ok(close(tensors.patch_tokens.data, teacher.patch.flat(2)), 'patch tokens');
  t.ok(close(studentOut.tensors.cls.data, studentRef.cls.flat()), "the student's CLS feature at crop 20");
});

t.test('embed: mistakes', async (t) => {
  const empty = join(dir, 'no-images');
  mkdirSync(empty, { recursive: true });
  writeFileSync(join(empty, 'readme.txt'), 'no images here');
  const broken = join(dir, 'broken.jpg');
  writeFileSync(broken, 'not a jpeg');
  const out = join(dir, 'x.safetensors');
  const cases: [string[], number, RegExp][] = [
    [['--images', broken, '--output', out], 2, /--checkpoint is required/],
    [['--checkpoint', checkpoint, '--output', out], 2, /--images is required/],
    [['--checkpoint', checkpoint, '--images', broken], 2, /--output is required/],
    [['--checkpoint', checkpoint, '--images', join(dir, 'nowhere'), '--output', out], 1, /nowhere: no such file or directory/],
    [['--checkpoint', checkpoint, '--images', empty, '--output', out], 1, /no-images: no images \(\.jpg, .*\) in this directory/],
    [['--checkpoint', checkpoint, '--images', broken, '--output', out], 1, /none of the 1 images could be read/],
    [['--checkpoint', join(dir, 'missing.pth'), '--images', broken, '--output', out], 1, /missing\.pth: no such file/],
    [['--checkpoint', checkpoint, '--arch', 'vit_base', '--images', broken, '--output', out], 1, /not vit_base \(--arch\)/],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(['embed', ...args]);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.err, message, args.join(' '));
    t.notMatch(r.err, /\n\s+at /, 'no stack trace');
  }
});

t.test('info: text and JSON', async (t) => {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const text = await runCli(['info']);
  t.equal(text.code, 0);
  t.match(text.out, new RegExp(`^dino-ts ${version.replace(/\./g, '\\.')}\\n`));
  for (const label of ['addon', 'GEMM kernel', 'CUDA', 'devices', 'threads', 'runtime']) t.match(text.out, new RegExp(`\\n  ${label} +\\S`), label);
  t.match(text.out, /devices +cpu/);
  t.match(text.out, `runtime      node ${process.versions.node}`);

  const json = await runCli(['info', '--json']);
  t.equal(json.code, 0);
  const info = JSON.parse(json.out);
  t.equal(info.version, version);
  t.equal(info.addon.version, version, 'the addon was built from this version');
  t.equal(info.devices[0], 'cpu');
  t.equal(info.devices.length, 1 + (info.cuda.usable ? info.cuda.deviceCount : 0));
  t.type(info.cuda.compiled, 'boolean');
  if (!info.cuda.usable) t.match(text.out, info.cuda.compiled ? /CUDA +compiled in, not usable: \S/ : /CUDA +not compiled in/, 'why CUDA cannot be used');
  t.equal(info.threads.availableParallelism, availableParallelism());
  t.ok(info.threads.openmp >= 1);
  t.same(info.runtime, { name: 'node', version: process.versions.node, platform: process.platform, arch: process.arch });

  t.equal((await runCli(['info', '--verbose'])).code, 2, 'unknown option');
});
