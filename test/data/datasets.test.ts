// Dataset formats on miniatures written here: an ImageFolder (mixed-case extensions, nested folders,
// an empty class, a symbolic link loop, files that are not images) in torchvision's order, the
// Tiny-ImageNet layout, IDX files raw and gzipped (and malformed), and the embedded Fashion-MNIST
// subset (balanced, 5,000 + 1,000 images).
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { loadImage, sourceName, type ImageDataset } from '../../lib/data/dataset.ts';
import { DEBIAN_FASHION_MNIST_DIR, embeddedFashionMnistDir, fashionMnist, FASHION_MNIST_CLASSES } from '../../lib/data/fashion-mnist.ts';
import { imageFolder, tinyImageNet } from '../../lib/data/folder.ts';
import { idxDataset, parseIdx, readIdx } from '../../lib/data/idx.ts';
import { pythonMissing, runPython } from '../io/python.ts';
import { writeImage } from './images.ts';

const dir = mkdtempSync(join(tmpdir(), 'datasets-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const paths = (ds: ImageDataset) => Array.from({ length: ds.length }, (_, i) => sourceName(ds.source(i)));

// torchvision's ImageFolder listing (find_classes + make_dataset, os.walk with followlinks=True) written
// out in Python, for the order; it goes round link loops, so it runs on a tree without one.
const TORCHVISION_LISTING = `
import json, os, sys
root, exts = sys.argv[1], (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
out = []
for c, name in enumerate(classes):
    for r, _, files in sorted(os.walk(os.path.join(root, name), followlinks=True)):
        for f in sorted(files):
            if f.lower().endswith(exts):
                out.append([os.path.join(r, f), c])
print(json.dumps({"classes": classes, "samples": out}))
`;

t.test('ImageFolder: classes, labels and order as torchvision; extensions in any case', async (t) => {
  const root = join(dir, 'folder');
  await writeImage(join(root, 'cat', 'b.JPG'), 8, 6, 'jpeg');
  await writeImage(join(root, 'cat', 'a.Png'), 8, 6, 'png');
  await writeImage(join(root, 'cat', 'sub', 'c.jpeg'), 8, 6, 'jpeg');
  await writeImage(join(root, 'cat', 'sub-x', 'd.WEBP'), 8, 6, 'webp');
  await writeImage(join(root, 'cat', 'sub', 'deeper', 'g.jpg'), 8, 6, 'jpeg');
  await writeImage(join(root, 'Dog', 'e.webp'), 8, 6, 'webp');
  await writeImage(join(root, 'bird', 'f.jpg'), 8, 6, 'jpeg');
  await writeImage(join(root, 'bird', 'h.TIF'), 8, 6, 'tiff');
  await writeImage(join(root, 'top-level.jpg'), 8, 6, 'jpeg'); // not in a class folder: ignored
  writeFileSync(join(root, 'cat', 'notes.txt'), 'not an image');
  writeFileSync(join(root, 'cat', 'broken.jpg'), 'listed by name; fails when loaded');
  mkdirSync(join(root, 'empty'));
  const ds = imageFolder(root);
  t.same(ds.classes, ['Dog', 'bird', 'cat', 'empty'], 'sorted folder names (code-point order, as Python)');
  const rel = paths(ds).map((p) => p.slice(root.length + 1).split(sep).join('/'));
  // Directories sorted by their whole path, not depth first: cat/sub-x comes before cat/sub/deeper.
  const want = ['Dog/e.webp', 'bird/f.jpg', 'bird/h.TIF', 'cat/a.Png', 'cat/b.JPG', 'cat/broken.jpg', 'cat/sub/c.jpeg', 'cat/sub-x/d.WEBP', 'cat/sub/deeper/g.jpg'];
  t.same(rel, want, 'directories sorted by path, files sorted within each');
  t.same([...ds.labels], [0, 1, 1, 2, 2, 2, 2, 2, 2]);
  t.same(ds.classCounts(), [1, 2, 6, 0]);
  t.same(ds.notes, ['class "empty" has no images'], 'the empty class is reported');
  const image = await loadImage(ds.source(0));
  t.same([image.width, image.height, image.data.length], [8, 6, 8 * 6 * 3], 'an image loads');

  await t.test('torchvision\'s listing (written out in Python) agrees', { skip: pythonMissing('os') }, async (t) => {
    const listing = runPython(TORCHVISION_LISTING, [root]);
    t.same(ds.classes, listing.classes, 'classes');
    t.same(paths(ds).map((p, i) => [p, ds.labels[i]]), listing.samples, 'samples and labels, in order');
  });
});

t.test('ImageFolder: a symbolic link loop is cut, other links are followed', async (t) => {
  const root = join(dir, 'links');
  await writeImage(join(root, 'a', 'x.png'), 4, 4, 'png');
  await writeImage(join(root, 'shared', 'y.png'), 4, 4, 'png');
  symlinkSync(join(root, 'a'), join(root, 'a', 'loop')); // a/loop -> a
  symlinkSync(join(root, 'shared'), join(root, 'a', 'alias')); // a/alias -> shared
  symlinkSync(join(root, 'nowhere'), join(root, 'a', 'dangling.png'));
  const started = Date.now();
  const ds = imageFolder(root);
  t.ok(Date.now() - started < 2000, 'the scan ends');
  t.same(ds.classes, ['a', 'shared']);
  const rel = paths(ds).map((p) => p.slice(root.length + 1).split(sep).join('/'));
  t.same(rel, ['a/dangling.png', 'a/x.png', 'a/alias/y.png', 'shared/y.png'], 'the loop is entered once; a link to another folder is followed (as os.walk does)');
  t.equal(ds.notes.length, 1);
  t.match(ds.notes[0], /a[/\\]loop: symbolic link loop/, 'the loop is reported');
  await t.rejects(loadImage(ds.source(0)), { name: 'ImageDecodeError', reason: /cannot read: ENOENT/ }, 'a dangling link fails when loaded, with the reason');
});

t.test('ImageFolder: what is not a dataset is a clear error', async (t) => {
  mkdirSync(join(dir, 'flat'));
  await writeImage(join(dir, 'flat', 'x.png'), 4, 4, 'png');
  t.throws(() => imageFolder(join(dir, 'flat')), { code: 'ERR_DINO_BAD_FILE', message: /no class folders/ }, 'images without a class folder');
  mkdirSync(join(dir, 'hollow', 'a'), { recursive: true });
  t.throws(() => imageFolder(join(dir, 'hollow')), { message: /no images found/ }, 'class folders without images');
  t.throws(() => imageFolder(join(dir, 'nonexistent')), { message: /not a directory/ });
  t.throws(() => imageFolder(join(dir, 'flat', 'x.png')), { message: /not a directory/ });
});

t.test('Tiny-ImageNet: train and val in the distributed layout', async (t) => {
  const root = join(dir, 'tiny-imagenet-200');
  const wnids = ['n02', 'n01', 'n03'];
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'wnids.txt'), wnids.join('\n') + '\n');
  writeFileSync(join(root, 'words.txt'), 'n01\tone\nn02\ttwo\nn03\tthree\n');
  for (const w of wnids) {
    for (let i = 0; i < 2; i++) await writeImage(join(root, 'train', w, 'images', `${w}_${i}.JPEG`), 64, 64, 'jpeg', i);
    writeFileSync(join(root, 'train', w, `${w}_boxes.txt`), `${w}_0.JPEG\t0\t0\t10\t10\n`);
  }
  const annotations = [
    ['val_0.JPEG', 'n03'],
    ['val_1.JPEG', 'n01'],
    ['val_2.JPEG', 'n02'],
    ['val_3.JPEG', 'n01'],
  ];
  for (const [file] of annotations) await writeImage(join(root, 'val', 'images', file), 64, 64, 'jpeg');
  await writeImage(join(root, 'val', 'images', 'val_9.JPEG'), 64, 64, 'jpeg'); // not annotated
  writeFileSync(join(root, 'val', 'val_annotations.txt'), annotations.map(([f, w]) => `${f}\t${w}\t1\t2\t30\t40`).join('\n') + '\n');

  const train = tinyImageNet(root, 'train');
  t.same(train.classes, ['n01', 'n02', 'n03'], 'sorted wnids');
  t.same(paths(train).map((p) => p.slice(root.length + 1).split(sep).join('/')), ['n01', 'n02', 'n03'].flatMap((w) => [0, 1].map((i) => `train/${w}/images/${w}_${i}.JPEG`)));
  t.same([...train.labels], [0, 0, 1, 1, 2, 2]);
  t.same(train.notes, []);

  const val = tinyImageNet(root, 'val');
  t.same(paths(val).map((p) => p.slice(root.length + 1).split(sep).join('/')), annotations.map(([f]) => `val/images/${f}`), 'annotation order');
  t.same([...val.labels], [2, 0, 1, 0], 'labels from the annotations');
  t.same(val.notes, ['val/images: 1 images without an annotation, left out']);
  const image = await loadImage(val.source(0));
  t.same([image.width, image.height], [64, 64]);

  writeFileSync(join(root, 'val', 'val_annotations.txt'), 'val_0.JPEG\tn99\t1\t2\t3\t4\n');
  t.throws(() => tinyImageNet(root, 'val'), { message: /val_annotations.txt:1: .* does not name a file and a class of wnids.txt/ }, 'an unknown wnid names the line');
  t.throws(() => tinyImageNet(join(dir, 'folder'), 'train'), { message: /wnids.txt: cannot read .* is .* a Tiny-ImageNet directory\?/ });
});

// An IDX file of unsigned bytes.
function idx(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.set([0, 0, 8, dims.length]);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

t.test('IDX: raw and gzipped, gray to RGB, sizes checked against the file', async (t) => {
  const n = 3;
  const rows = 2;
  const cols = 4;
  const pixels = Uint8Array.from({ length: n * rows * cols }, (_, i) => i * 9);
  const labels = Uint8Array.from([2, 0, 2]);
  writeFileSync(join(dir, 'images.idx'), idx([n, rows, cols], pixels));
  writeFileSync(join(dir, 'labels.idx'), idx([n], labels));
  writeFileSync(join(dir, 'images.idx.gz'), gzipSync(idx([n, rows, cols], pixels)));
  writeFileSync(join(dir, 'labels.idx.gz'), gzipSync(idx([n], labels)));
  for (const ext of ['', '.gz']) {
    const ds = idxDataset(join(dir, `images.idx${ext}`), join(dir, `labels.idx${ext}`));
    t.equal(ds.length, n, `${ext || 'raw'}: ${n} images`);
    t.same(ds.classes, ['0', '1', '2'], 'classes up to the largest label');
    t.same([...ds.labels], [...labels]);
    const image = await loadImage(ds.source(1));
    t.same([image.width, image.height], [cols, rows]);
    t.same([...image.data], [...pixels.subarray(8, 16)].flatMap((v) => [v, v, v]), 'the gray value repeated in R, G and B');
  }
  t.throws(() => idxDataset(join(dir, 'images.idx'), join(dir, 'labels.idx'), { classes: ['a', 'b'] }), { message: /label 2 but only 2 classes/ });

  const bad = (name: string, bytes: Uint8Array, ndim: number, message: RegExp) => {
    writeFileSync(join(dir, name), bytes);
    t.throws(() => readIdx(join(dir, name), ndim), { code: 'ERR_DINO_BAD_FILE', message }, name);
  };
  const good = idx([n, rows, cols], pixels);
  bad('truncated.idx', good.subarray(0, good.length - 1), 3, /need 24 bytes after the 16-byte header, the file has 23/);
  bad('padded.idx', Buffer.concat([good, Buffer.from([0])]), 3, /the file has 25/);
  bad('labels-as-images.idx', idx([n], labels), 3, /1 dimensions where 3 were expected \(magic 00 00 08 01\)/);
  bad('floats.idx', Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 0]), 1, /element type 0x0d is not unsigned bytes/);
  bad('png.idx', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]), 3, /not an IDX file \(magic 89 50 4e 47\)/);
  bad('short.idx', Buffer.from([0, 0, 8]), 1, /too short/);
  bad('header.idx', Buffer.from([0, 0, 8, 3, 0, 0, 0, 1]), 3, /header needs 16 bytes/);
  bad('corrupt.idx.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]), 3, /cannot gunzip/);
  writeFileSync(join(dir, 'four-labels.idx'), idx([4], Uint8Array.from([0, 1, 2, 3])));
  t.throws(() => idxDataset(join(dir, 'images.idx'), join(dir, 'four-labels.idx')), { message: /4 labels for the 3 images/ });
  t.throws(() => parseIdx(Buffer.from([0, 0, 8, 1, 0, 0, 0, 2, 5]), 1, 'x'), { message: /^x: dimensions 2 need 2 bytes/ });
});

// Every image of the subset is the next image of its class in the full set, and the full set has
// `perClass` of each class before the last one taken.
async function checkSubset(t: Test, fullDir: string, subsetDir: string): Promise<void> {
  for (const [split, perClass] of [['train', 500], ['test', 100]] as const) {
    const full = fashionMnist(split, fullDir);
    const subset = fashionMnist(split, subsetDir);
    t.same(full.classCounts(), new Array(10).fill(perClass * (split === 'train' ? 12 : 10)), `${split}: the full set is balanced`);
    const taken: number[] = [];
    const count = new Array<number>(10).fill(0);
    full.labels.forEach((l, i) => {
      if (count[l]++ < perClass) taken.push(i);
    });
    t.same([...subset.labels], taken.map((i) => full.labels[i]), `${split}: labels of the first ${perClass} per class, in file order`);
    const pixels = (ds: ImageDataset, i: number) => (ds.source(i) as { pixels: Uint8Array }).pixels;
    t.ok(taken.every((i, j) => Buffer.from(pixels(full, i)).equals(Buffer.from(pixels(subset, j)))), `${split}: the same pixels`);
  }
}

t.test('the embedded Fashion-MNIST subset: 5,000 + 1,000 images, balanced', async (t) => {
  const root = embeddedFashionMnistDir();
  t.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /MIT License.*Zalando SE/s, 'the MIT notice ships with it');
  for (const [split, n] of [['train', 5000], ['test', 1000]] as const) {
    const ds = fashionMnist(split, root);
    t.equal(ds.length, n, `${split}: ${n} images`);
    t.same(ds.classes, FASHION_MNIST_CLASSES);
    t.same(ds.classCounts(), new Array(10).fill(n / 10), `${split}: ${n / 10} per class`);
    const image = await loadImage(ds.source(n - 1));
    t.same([image.width, image.height], [28, 28]);
    t.ok(image.data.some((v) => v > 0), 'pixels are not blank');
  }
  // Selection: the first images of each class in file order. The original's first training labels
  // are 9, 0, 0, 3, 0, 2, 7, 2, 5, 5, all kept.
  const labels = readIdx(join(root, 'train-labels-idx1-ubyte.gz'), 1).data;
  t.same([...labels.subarray(0, 10)], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], 'starts like the original training set');
  t.ok(gunzipSync(readFileSync(join(root, 'train-images-idx3-ubyte.gz'))).length === 16 + 5000 * 784, 'images: header + 5,000 x 784 bytes');
  const ds = fashionMnist('train');
  t.ok(ds.length === 5000 || ds.length === 60000, `the default (${ds.name}) is the subset or Debian's full set`);
});

t.test('the subset is the first images of each class of Debian\'s full set', { skip: !existsSync(DEBIAN_FASHION_MNIST_DIR) && `${DEBIAN_FASHION_MNIST_DIR} is not installed` }, async (t) => {
  await checkSubset(t, DEBIAN_FASHION_MNIST_DIR, embeddedFashionMnistDir());
});
