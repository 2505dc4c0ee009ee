// visualize_attention.py: what the CLS token of the last block attends to, head by head, and the
// patches that hold a given share of that attention.
//
// The image is resized bilinearly (Resize(image_size) on a PIL image), normalised with the ImageNet
// statistics and cropped at the bottom and right to a multiple of the patch size. The last block's
// attention of the CLS query over the patch keys gives one (h, w) map per head; its threshold mask
// keeps the largest patches of each map until they hold `threshold` of its mass. Maps and masks are
// drawn at image resolution, each patch a p x p block (nearest upsampling).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { blend } from '../augment/color.ts';
import { resizeShorterSide } from '../augment/eval.ts';
import { checkImage, IMAGENET_MEAN, IMAGENET_STD, normalizationTable, toNormalizedChw, type Rgb, type RgbImage } from '../augment/image.ts';
import { resizeBilinear } from '../augment/resize.ts';
import { noGrad } from '../autograd/tape.ts';
import { tidy } from '../engine/scope.ts';
import { tensor } from '../engine/tensor.ts';
import type { VisionTransformer } from '../model/vit.ts';
import * as ops from '../ops/index.ts';
import { colorize } from './colormap.ts';
import { writePng } from './image-write.ts';

// visualize_attention.py's --image_size: one number is the shorter side (the aspect ratio kept), two
// are height and width.
export type ImageSize = readonly number[];

export interface NetworkInput {
  // The resized image, cropped to whole patches: what the network sees.
  image: RgbImage;
  // Its ToTensor + Normalize values, (3, height, width).
  pixels: Float32Array;
}

export interface AttentionMaps {
  heads: number;
  // The patch grid.
  height: number;
  width: number;
  // (heads, height, width): the CLS query's attention probability for each patch, per head.
  values: Float32Array;
}

function checkImageSize(size: ImageSize): void {
  if (!Array.isArray(size) || (size.length !== 1 && size.length !== 2) || !size.every((v) => Number.isSafeInteger(v) && v >= 1)) {
    throw new RangeError(`image size must be one or two positive integers, got ${JSON.stringify(size)}`);
  }
}

function crop(img: RgbImage, width: number, height: number): RgbImage {
  if (width === img.width && height === img.height) return img;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) data.set(img.data.subarray(y * img.width * 3, (y * img.width + width) * 3), y * width * 3);
  return { width, height, data };
}

export function prepareImage(img: RgbImage, imageSize: ImageSize, patchSize: number): NetworkInput {
  checkImage(img);
  checkImageSize(imageSize);
  const resized = imageSize.length === 1 ? resizeShorterSide(img, imageSize[0], resizeBilinear) : resizeBilinear(img, imageSize[1], imageSize[0]);
  const width = resized.width - (resized.width % patchSize);
  const height = resized.height - (resized.height % patchSize);
  if (width === 0 || height === 0) {
    throw new RangeError(`the image is ${resized.width}x${resized.height} after resizing to ${imageSize.join('x')}, smaller than one ${patchSize}x${patchSize} patch`);
  }
  const image = crop(resized, width, height);
  return { image, pixels: toNormalizedChw(image, normalizationTable(IMAGENET_MEAN, IMAGENET_STD)) };
}

// get_last_selfattention(img)[0, :, 0, 1:], one map per head.
export function attentionMaps(model: VisionTransformer, input: NetworkInput): AttentionMaps {
  const { width, height } = input.image;
  const p = model.patchSize;
  const values = noGrad(() =>
    tidy(() => {
      const attn = model.getLastSelfAttention(tensor(input.pixels, [1, 3, height, width], { device: model.device }));
      return ops.slice(ops.slice(attn, 2, 0, 1), 3, 1).data();
    }),
  );
  return { heads: model.numHeads, height: height / p, width: width / p, values };
}

// The mean over heads, (height, width).
export function meanAttention(maps: AttentionMaps): Float32Array {
  const n = maps.height * maps.width;
  const mean = new Float32Array(n);
  for (let h = 0; h < maps.heads; h++) for (let i = 0; i < n; i++) mean[i] += maps.values[h * n + i] / maps.heads;
  return mean;
}

// Per head, 1 for the patches that hold `threshold` of the head's attention: the values sorted
// ascending and divided by their sum, a patch is kept when the cumulative sum up to and including it
// exceeds 1 - threshold. (heads, height, width).
export function thresholdMasks(maps: AttentionMaps, threshold: number): Uint8Array {
  if (!(threshold >= 0 && threshold <= 1)) throw new RangeError(`threshold must be in [0, 1], got ${threshold}`);
  const n = maps.height * maps.width;
  const masks = new Uint8Array(maps.heads * n);
  const order = new Int32Array(n);
  for (let h = 0; h < maps.heads; h++) {
    const v = maps.values.subarray(h * n, (h + 1) * n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => v[a] - v[b]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += v[i];
    let cum = 0;
    for (const i of order) {
      cum += v[i] / sum;
      if (cum > 1 - threshold) masks[h * n + i] = 1;
    }
  }
  return masks;
}

// Each value of a (height, width) plane repeated into a factor x factor block.
export function upsampleNearest<T extends Float32Array | Uint8Array>(plane: T, height: number, width: number, factor: number): T {
  if (plane.length !== height * width) throw new RangeError(`plane has ${plane.length} values, expected ${height}x${width}`);
  const outWidth = width * factor;
  const out = new (plane.constructor as new (n: number) => T)(height * factor * outWidth);
  for (let y = 0; y < height * factor; y++) {
    const src = Math.floor(y / factor) * width;
    for (let x = 0; x < outWidth; x++) out[y * outWidth + x] = plane[src + Math.floor(x / factor)];
  }
  return out;
}

// The network's input as save_image(make_grid(img, normalize=True, scale_each=True)) writes it: the
// normalised values min-max scaled over the whole image, then round(255 * v).
export function inputPicture(input: NetworkInput): RgbImage {
  const { pixels, image } = input;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of pixels) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = Math.fround(Math.max(hi - lo, 1e-5));
  const plane = image.width * image.height;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const v = Math.fround(Math.fround(pixels[c * plane + i] - lo) / range);
      data[3 * i + c] = Math.min(255, Math.max(0, Math.trunc(Math.fround(Math.fround(v * 255) + 0.5))));
    }
  }
  return { width: image.width, height: image.height, data };
}

// The image with `color` blended in at `alpha` where the mask is set, and the mask's outline (mask
// pixels with a 4-neighbour outside the mask or outside the image) in `color` itself.
export function maskOverlay(image: RgbImage, mask: Uint8Array, color: Rgb, alpha = 0.5): RgbImage {
  const { width, height } = image;
  if (mask.length !== width * height) throw new RangeError(`mask has ${mask.length} values, expected ${width}x${height}`);
  const solid = new Uint8Array(image.data.length);
  for (let i = 0; i < solid.length; i += 3) solid.set(color, i);
  const tinted = new Uint8Array(image.data.length);
  blend(image.data, solid, alpha, tinted);
  const data = Uint8Array.from(image.data);
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] !== 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!inside(x, y)) continue;
      const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
      const i = 3 * (y * width + x);
      data.set(edge ? color : tinted.subarray(i, i + 3), i);
    }
  }
  return { width, height, data };
}

// visualize_attention.py's threshold in its file names: Python's str of a float (0.6, 1.0).
export const thresholdName = (t: number): string => (Number.isInteger(t) ? t.toFixed(1) : String(t));

export interface AttentionPictures {
  // The mean map drawn with viridis at image resolution (3 bytes a pixel).
  meanHeatmap: Uint8Array;
  // The files written, in order.
  files: string[];
}

export interface WriteAttentionOptions {
  patchSize: number;
  // 0 writes no masks.
  threshold: number;
  // A colour per head for the masks.
  colors: readonly Rgb[];
}

// Writes img.png, attn-head{j}.png, attn-mean.png and (threshold > 0) mask_th{t}_head{j}.png into dir.
export async function writeAttentionPictures(dir: string, input: NetworkInput, maps: AttentionMaps, { patchSize, threshold, colors }: WriteAttentionOptions): Promise<AttentionPictures> {
  if (colors.length < maps.heads) throw new RangeError(`${maps.heads} heads need as many colours, got ${colors.length}`);
  await mkdir(dir, { recursive: true });
  const { width, height } = input.image;
  const n = maps.height * maps.width;
  const files: string[] = [];
  const save = async (name: string, data: Uint8Array) => {
    const path = join(dir, name);
    await writePng(path, { width, height, channels: 3, data });
    files.push(path);
  };
  const heatmap = (plane: Float32Array) => colorize(upsampleNearest(plane, maps.height, maps.width, patchSize));
  const picture = inputPicture(input);
  await save('img.png', picture.data);
  for (let h = 0; h < maps.heads; h++) await save(`attn-head${h}.png`, heatmap(maps.values.subarray(h * n, (h + 1) * n)));
  const meanHeatmap = heatmap(meanAttention(maps));
  await save('attn-mean.png', meanHeatmap);
  if (threshold > 0) {
    const masks = thresholdMasks(maps, threshold);
    for (let h = 0; h < maps.heads; h++) {
      const mask = upsampleNearest(masks.subarray(h * n, (h + 1) * n), maps.height, maps.width, patchSize);
      await save(`mask_th${thresholdName(threshold)}_head${h}.png`, maskOverlay(picture, mask, colors[h]).data);
    }
  }
  return { meanHeatmap, files };
}
