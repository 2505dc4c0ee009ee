// `dino attention`: visualize_attention.py. The last block's CLS attention of each head for an image
// (or for every frame of a directory, plus an animation of the mean over heads), drawn as heatmaps and
// as threshold masks over the image (lib/viz/attention.ts).
import { readdirSync, statSync } from 'node:fs';
import { extname, join, parse } from 'node:path';
import { blend } from '../augment/color.ts';
import { resolveDevice, type DeviceChoice } from '../engine/device.ts';
import { Generator } from '../engine/random.ts';
import { withDevice } from '../engine/tensor.ts';
import { IMAGE_EXTENSIONS } from '../data/folder.ts';
import { readImageFile } from '../data/decode.ts';
import { loadBackbone, randomBackbone, type CheckpointKey, type LoadedBackbone } from '../eval/backbone.ts';
import { ARCHITECTURES, type Architecture } from '../train/trainer.ts';
import { attentionMaps, prepareImage, writeAttentionPictures } from '../viz/attention.ts';
import { randomColors } from '../viz/colormap.ts';
import { writeAnimation, type AnimationFormat, type Picture } from '../viz/image-write.ts';
import { UsageError, type Command } from './command.ts';
import { DEVICE_OPTION } from './eval-common.ts';
import { defineOptions, describeOptions, parseOptions } from './options.ts';

const options = defineOptions({
  'pretrained-weights': { kind: 'string', metavar: 'FILE', aliases: ['checkpoint'], help: 'the weights: a dino-ts checkpoint, an official .pth (training checkpoint or backbone) or a safetensors state dict' },
  'checkpoint-key': { kind: 'string', choices: ['teacher', 'student'], default: 'teacher', help: 'which network of a training checkpoint' },
  'random-init': { kind: 'boolean', default: false, help: 'a randomly initialised backbone instead of weights (a baseline)' },
  arch: { kind: 'string', choices: Object.keys(ARCHITECTURES), help: 'checked against the weights; with --random-init, the one built (default vit_small)' },
  'patch-size': { kind: 'int', min: 1, help: 'checked against the weights; with --random-init, the one built (default 8)' },
  'image-path': { kind: 'string', required: true, metavar: 'PATH', aliases: ['image'], help: 'an image, or a directory of frames (taken in name order)' },
  'image-size': { kind: 'ints', default: [480, 480], min: 1, metavar: 'H [W]', help: 'resize to H x W, or with one number the shorter side to it (bilinear)' },
  'output-dir': { kind: 'string', default: '.', metavar: 'DIR', help: 'where the pictures go' },
  threshold: { kind: 'number', default: 0.6, min: 0, max: 1, help: "the masks keep this share of each head's attention; 0 writes no masks" },
  seed: { kind: 'int', default: 0, help: 'draws the mask colours (and the --random-init weights)' },
  device: DEVICE_OPTION,
  'video-format': { kind: 'string', choices: ['gif', 'webp'], default: 'gif', help: 'the animation written for a directory of frames' },
  fps: { kind: 'number', default: 10, min: 0.1, max: 100, help: 'frames per second of the animation' },
});

// The images to process: the file itself, or a directory's images in name order.
function listImages(path: string): { files: string[]; frames: boolean } {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new Error(`--image-path: no such file or directory: ${path}`);
  }
  if (!st.isDirectory()) return { files: [path], frames: false };
  const names = readdirSync(path).filter((n) => IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
  if (names.length === 0) throw new Error(`--image-path: ${path} holds no images (${IMAGE_EXTENSIONS.join(' ')})`);
  const stems = names.map((n) => parse(n).name);
  const twice = stems.find((s, i) => stems.indexOf(s) !== i);
  if (twice !== undefined) throw new Error(`--image-path: two frames are named '${twice}' (their pictures would share ${twice}/)`);
  return { files: names.map((n) => join(path, n)), frames: true };
}

function backbone(o: { pretrainedWeights?: string; randomInit: boolean; checkpointKey: string; arch?: string; patchSize?: number; seed: number; device: string }): LoadedBackbone {
  return withDevice(resolveDevice(o.device as DeviceChoice).device, () => buildBackbone(o));
}

function buildBackbone(o: { pretrainedWeights?: string; randomInit: boolean; checkpointKey: string; arch?: string; patchSize?: number; seed: number }): LoadedBackbone {
  const arch = o.arch as Architecture | undefined;
  if (o.randomInit) return randomBackbone(arch ?? 'vit_small', o.patchSize ?? 8, { seed: o.seed });
  const path = o.pretrainedWeights!;
  try {
    statSync(path);
  } catch {
    throw new Error(`--pretrained-weights: no such file: ${path}`);
  }
  return loadBackbone(path, { checkpointKey: o.checkpointKey as CheckpointKey, arch, patchSize: o.patchSize });
}

export const attentionCommand: Command = {
  summary: "draw the last block's CLS attention maps and threshold masks of an image or of video frames",
  usage: `usage: dino attention (--pretrained-weights FILE | --random-init) --image-path PATH [options]

visualize_attention.py: the image is resized (bilinear), normalised and cropped to whole patches; the
last block's attention of the CLS token over the patches gives one map per head. Written to DIR:
  img.png                    the image as the network sees it (min-max scaled)
  attn-head{j}.png           head j's map, viridis, at image resolution (one colour per patch)
  attn-mean.png              the mean over heads
  mask_th{t}_head{j}.png     the patches holding t of head j's attention, tinted and outlined
For a directory of frames, each frame's pictures go to DIR/<frame name>/, and DIR/attn-mean.gif (or
.webp) shows the mean map over each frame.

options:
${describeOptions(options)}`,
  async run(args) {
    const { options: o } = parseOptions(options, args);
    if (o.imageSize.length > 2) throw new UsageError(`--image-size takes one or two numbers, got ${o.imageSize.length}`);
    if (o.randomInit === (o.pretrainedWeights !== undefined)) throw new UsageError('give either --pretrained-weights or --random-init');
    const { files, frames } = listImages(o.imagePath);
    const { model, spec, source } = backbone(o);
    try {
      const p = spec.patchSize;
      if (Math.min(...o.imageSize) < p) throw new UsageError(`--image-size ${o.imageSize.join(' ')} is smaller than one ${p}x${p} patch`);
      const colors = randomColors(model.numHeads, new Generator(o.seed));
      console.log(`${source}: ${model.numHeads} heads, patch ${p}`);
      const animation: Picture[] = [];
      for (const file of files) {
        const input = prepareImage(await readImageFile(file), o.imageSize, p);
        const maps = attentionMaps(model, input);
        const dir = frames ? join(o.outputDir, parse(file).name) : o.outputDir;
        const { meanHeatmap, files: written } = await writeAttentionPictures(dir, input, maps, { patchSize: p, threshold: o.threshold, colors });
        console.log(`${file}: ${input.image.width}x${input.image.height}, ${maps.height}x${maps.width} patches -> ${written.length} pictures in ${dir}`);
        if (!frames) continue;
        const { width, height, data } = input.image;
        if (animation.length > 0 && (width !== animation[0].width || height !== animation[0].height)) {
          throw new Error(`${file} is ${width}x${height} after resizing, the first frame ${animation[0].width}x${animation[0].height}: give --image-size H W`);
        }
        const frame = new Uint8Array(data.length);
        blend(data, meanHeatmap, 0.5, frame);
        animation.push({ width, height, channels: 3, data: frame });
      }
      if (frames) {
        const format = o.videoFormat as AnimationFormat;
        const path = join(o.outputDir, `attn-mean.${format}`);
        await writeAnimation(path, animation, { format, delay: Math.round(1000 / o.fps) });
        console.log(`${path}: ${animation.length} frames`);
      }
    } finally {
      model.dispose();
    }
  },
};
