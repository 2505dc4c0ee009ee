// DINO's multi-crop augmentation (2 global crops of 224 px, 8 local crops of 96 px, the official
// parameters) on JPEG photographs of ImageNet-like sizes, decoding included: ours against the official
// pipeline (torchvision's transforms on PIL images, bench/augment_torch.py, a child process of the same
// run), as images per second and their ratio.
//
//   npm run bench:augment -- [--photos DIR]... [--rounds 5] [--passes 3] [--workers N] [--batch 16]
//                            [--loader-images 64] [--python python3]
//
// The images: every photograph (PNG or JPEG) in the --photos directories (by default the ones Debian's
// python3-imageio and python3-skimage ship, where installed) is scaled to a longer side of 500, 475,
// 450, 425 and 400 px and encoded as JPEG (quality 90, 4:2:0), in a temporary directory; both sides
// read these files.
//
// Two measurements, each taking turns between the two sides, round by round (the side that goes first
// alternates), after one warm-up pass each:
// - per image on one thread: read, decode and augment every image `passes` times on this thread (sharp
//   with one thread) against the same in one Python process (torch with one thread); the median over
//   the passes of all rounds;
// - the loader end to end: one epoch of trainLoader with N worker threads over `loader-images` files
//   (the images repeated) against a torch DataLoader with N worker processes (drop_last, shuffled),
//   batches of `batch`; the median epoch.
//
// The machine may be shared and noisy: only the ratios of one run mean anything. CPU seconds (every
// thread of the process) are printed too for the single-thread measurement: other processes move them
// less than wall time.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, extname, join, parse } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DinoAugmentation } from '../lib/augment/dino.ts';
import { decodeImage } from '../lib/data/decode.ts';
import { imageFolder } from '../lib/data/folder.ts';
import { trainLoader } from '../lib/data/loader.ts';
import { dinoTransform } from '../lib/data/transform.ts';
import { Generator } from '../lib/engine/random.ts';

const DEFAULT_PHOTOS = ['/usr/lib/python3/dist-packages/imageio/resources/images', '/usr/lib/python3/dist-packages/skimage/data'];
const LONGER_SIDES = [500, 475, 450, 425, 400];

const { values } = parseArgs({
  options: {
    photos: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '5' },
    passes: { type: 'string', default: '3' },
    workers: { type: 'string', default: String(availableParallelism()) },
    batch: { type: 'string', default: '16' },
    'loader-images': { type: 'string', default: '64' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
  },
});
const rounds = Number(values.rounds);
const passes = Number(values.passes);
const workers = Number(values.workers);
const batch = Number(values.batch);
const loaderImages = Number(values['loader-images']);
for (const [name, v] of [['rounds', rounds], ['passes', passes], ['workers', workers], ['batch', batch], ['loader-images', loaderImages]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`);
}
if (loaderImages < batch) throw new RangeError(`--loader-images (${loaderImages}) must hold at least one batch of ${batch}`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Every PNG or JPEG in the directories, sorted by name, each scaled to every longer side and written as
// a JPEG into `dir`; returns the JPEG paths and the photographs used.
async function buildImages(photoDirs: string[], dir: string): Promise<{ images: string[]; photos: string[] }> {
  const photos = photoDirs
    .flatMap((d) => readdirSync(d).filter((f) => ['.png', '.jpg', '.jpeg'].includes(extname(f).toLowerCase())).map((f) => join(d, f)))
    .sort((a, b) => (parse(a).base < parse(b).base ? -1 : 1));
  if (photos.length === 0) throw new Error(`no PNG or JPEG photographs in ${photoDirs.join(', ')}`);
  const images = [];
  for (const photo of photos) {
    for (const side of LONGER_SIDES) {
      const { data, info } = await sharp(photo).removeAlpha().toColourspace('srgb').resize(side, side, { fit: 'inside', kernel: 'lanczos3' }).jpeg({ quality: 90, chromaSubsampling: '4:2:0' }).toBuffer({ resolveWithObject: true });
      const path = join(dir, `${parse(photo).name}-${info.width}x${info.height}.jpg`);
      writeFileSync(path, data);
      images.push(path);
    }
  }
  return { images, photos };
}

// The official side: one Python process answering requests in turn.
class Official {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ReturnType<typeof spawn>) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  static async start(spec: object): Promise<{ official: Official; ready: Record<string, string> }> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'augment_torch.py');
    const child = spawn(values.python!, [script, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const official = new Official(child);
    return { official, ready: await official.next() };
  }

  async request(r: object): Promise<any> {
    this.child.stdin!.write(JSON.stringify(r) + '\n');
    return this.next();
  }

  private async next(): Promise<any> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error('the Python side ended early (see its error above)');
    return JSON.parse(value);
  }

  close(): void {
    this.child.stdin!.end();
  }
}

const photoDirs = values.photos ?? DEFAULT_PHOTOS.filter((d) => existsSync(d));
if (photoDirs.length === 0) {
  throw new Error(`no photographs: pass --photos DIR (for example astronaut.png and chelsea.png, from Debian's python3-imageio); looked in ${DEFAULT_PHOTOS.join(', ')}`);
}
const work = mkdtempSync(join(tmpdir(), 'bench-augment-'));
try {
  const { images, photos } = await buildImages(photoDirs, work);
  const folder = join(work, 'folder', 'photos');
  mkdirSync(folder, { recursive: true });
  const loaderFiles = [];
  for (let i = 0; i < loaderImages; i++) {
    const path = join(folder, `${String(i).padStart(4, '0')}.jpg`);
    copyFileSync(images[i % images.length], path);
    loaderFiles.push(path);
  }
  const seed = 0;
  const { official, ready } = await Official.start({ seed, images, loaderImages: loaderFiles });

  console.log(`DINO multi-crop augmentation (2 x 224 + 8 x 96), decoding included`);
  console.log(`images: ${images.length} JPEGs (quality 90) of ${photos.map((p) => parse(p).base).join(', ')} at a longer side of ${LONGER_SIDES.join(', ')} px`);
  console.log(`official: ${ready.pipeline}; Pillow ${ready.pillow}, PyTorch ${ready.torch}`);
  console.log(`${rounds} rounds, the sides taking turns; ${availableParallelism()} cores\n`);

  // Per image, on one thread.
  sharp.concurrency(1);
  const augmentation = new DinoAugmentation();
  const rng = new Generator(seed);
  const ours = async (n: number) => {
    const out = [];
    for (let p = 0; p < n; p++) {
      const wall = performance.now();
      const cpu = process.cpuUsage();
      for (const path of images) augmentation.apply(await decodeImage(await readFile(path), path), rng);
      const used = process.cpuUsage(cpu);
      out.push({ wall: (performance.now() - wall) / 1000 / images.length, cpu: (used.user + used.system) / 1e6 / images.length });
    }
    return out;
  };
  const theirs = async (n: number) => (await official.request({ single: n })).passes as { wall: number; cpu: number }[];
  await ours(1);
  await theirs(1);
  const single = { ours: [] as { wall: number; cpu: number }[], theirs: [] as { wall: number; cpu: number }[] };
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 ? (['theirs', 'ours'] as const) : (['ours', 'theirs'] as const)) single[side].push(...(await (side === 'ours' ? ours : theirs)(passes)));
  }
  sharp.concurrency(0);
  const ms = (xs: { wall: number; cpu: number }[], key: 'wall' | 'cpu') => median(xs.map((x) => x[key])) * 1000;
  const row = (label: string, a: number, b: number, ratio: number) => console.log(`${label.padEnd(36)} ${a.toFixed(2).padStart(10)} ${b.toFixed(2).padStart(10)} ${ratio.toFixed(2).padStart(7)}`);
  console.log(`per image, one thread (median of ${rounds * passes} passes over the ${images.length} images)`);
  console.log(`${''.padEnd(36)} ${'dino-ts'.padStart(10)} ${'official'.padStart(10)} ${'ratio'.padStart(7)}`);
  const [oursWall, theirsWall] = [ms(single.ours, 'wall'), ms(single.theirs, 'wall')];
  const [oursCpu, theirsCpu] = [ms(single.ours, 'cpu'), ms(single.theirs, 'cpu')];
  row('ms per image (wall)', oursWall, theirsWall, theirsWall / oursWall);
  row('images per second', 1000 / oursWall, 1000 / theirsWall, theirsWall / oursWall);
  row('CPU ms per image (all threads)', oursCpu, theirsCpu, theirsCpu / oursCpu);

  // The loader end to end.
  const loader = trainLoader(imageFolder(join(work, 'folder')), { batchSize: batch, numWorkers: workers, seed, transform: dinoTransform() });
  let epoch = 0;
  const oursEpoch = async () => {
    const t = performance.now();
    let n = 0;
    for await (const b of loader.epoch(epoch++)) n += b.indices.length;
    return n / ((performance.now() - t) / 1000);
  };
  const theirsEpoch = async () => {
    const r = await official.request({ loader: { workers, batch } });
    return r.images / r.wall;
  };
  const epochs = { ours: [] as number[], theirs: [] as number[] };
  try {
    await oursEpoch();
    await theirsEpoch();
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 ? (['theirs', 'ours'] as const) : (['ours', 'theirs'] as const)) epochs[side].push(await (side === 'ours' ? oursEpoch : theirsEpoch)());
    }
  } finally {
    await loader.close();
    official.close();
  }
  const [oursRate, theirsRate] = [median(epochs.ours), median(epochs.theirs)];
  console.log(`\nloader, ${workers} workers (threads / processes), batches of ${batch}, ${loaderImages} images an epoch (median of ${rounds} epochs)`);
  row('images per second', oursRate, theirsRate, oursRate / theirsRate);
  console.log('\nratios: dino-ts / official throughput (above 1: dino-ts is faster)');
} finally {
  rmSync(work, { recursive: true, force: true });
}
