// `dino embed`: the features of a set of images, written to a safetensors file for use elsewhere
// (retrieval, clustering, a classifier of one's own).
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { tensor } from '../engine/tensor.ts';
import { tidy } from '../engine/scope.ts';
import { FileStore, ImageDataset } from '../data/dataset.ts';
import { IMAGE_EXTENSIONS } from '../data/folder.ts';
import { clsAndPatchEncoder, clsEncoder, defaultResize, extractFeatures } from '../eval/features.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { Command } from './command.ts';
import { backboneFrom, BACKBONE_OPTIONS, progressReporter } from './eval-common.ts';
import { defineOptions, describeOptions, parseOptions, UsageError } from './options.ts';

const OPTIONS = defineOptions({
  ...BACKBONE_OPTIONS,
  images: { kind: 'strings', required: true, metavar: 'PATH...', help: 'image files, and directories searched recursively for images (.jpg, .jpeg, .png, .webp, .tif, .tiff)' },
  output: { kind: 'string', required: true, metavar: 'FILE', help: 'the safetensors file to write' },
  'patch-tokens': { kind: 'boolean', default: false, help: "also write the last block's patch tokens (N, P, D)" },
  'batch-size': { kind: 'int', default: 64, min: 1, help: 'images per forward pass' },
  'num-workers': { kind: 'int', min: 1, help: 'image decoding threads (default: the number of cores)' },
});

// Image files under `dir`, in sorted path order.
function imagesUnder(dir: string): string[] {
  const names = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((n) => IMAGE_EXTENSIONS.includes(extname(n).toLowerCase()))
    .sort();
  return names.map((n) => join(dir, n)).filter((p) => statSync(p).isFile());
}

// The files the arguments name: a file as given (whatever its extension), a directory's images.
function listImages(paths: readonly string[]): string[] {
  return paths.flatMap((p) => {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(p).isDirectory();
    } catch {
      throw new Error(`${p}: no such file or directory`);
    }
    if (!isDirectory) return [p];
    const found = imagesUnder(p);
    if (found.length === 0) throw new Error(`${p}: no images (${IMAGE_EXTENSIONS.join(', ')}) in this directory`);
    return found;
  });
}

export const embedCommand: Command = {
  summary: 'write the features of images to a safetensors file',
  usage: `usage: dino embed --checkpoint FILE --images PATH... --output FILE.safetensors [options]

Runs each image through Resize (bicubic) and CenterCrop, as the evaluations do, and the backbone.
Writes 'cls' (N, D), the CLS token after the final norm (the feature eval_knn.py uses), and with
--patch-tokens 'patch_tokens' (N, P, D), the last block's patch tokens after the final norm, row i of
both for image i of the metadata. Metadata (JSON strings): 'images' (the paths, in row order),
'skipped' (unreadable images, left out with a warning: [{image, reason}]), 'model' (embedDim, depth,
numHeads, patchSize, imgSize), 'source', 'resize', 'crop'.

The crop defaults to the image size of the backbone's position embeddings and the resize to
crop * 256/224.

options:
${describeOptions(OPTIONS)}`,
  async run(args) {
    const { options: o, given } = parseOptions(OPTIONS, args);
    if (o.checkpoint === undefined && o.pretrainedWeights === undefined) throw new UsageError('--checkpoint is required');
    const files = listImages(o.images);
    const backbone = backboneFrom(o, given);
    try {
      const crop = o.crop ?? backbone.spec.imgSize;
      const resize = o.resize ?? defaultResize(crop);
      const store = FileStore.from('', files);
      const dataset = new ImageDataset(o.images.join(' '), ['image'], new Int32Array(files.length), store);
      const encoder = o.patchTokens ? clsAndPatchEncoder(backbone.model) : clsEncoder(backbone.model);
      const f = await extractFeatures(dataset, encoder, { crop, resize, batchSize: o.batchSize, numWorkers: o.numWorkers, onProgress: progressReporter('embed'), device: backbone.model.device });
      const names = ['cls', 'patch_tokens'];
      tidy(() =>
        writeSafetensors(
          o.output,
          f.outputs.map(({ data, shape }, i) => [names[i], tensor(data, shape)] as const),
          {
            images: JSON.stringify(Array.from(f.indices, (i) => files[i])),
            skipped: JSON.stringify(f.skipped.map(({ image, reason }) => ({ image, reason }))),
            model: JSON.stringify(backbone.spec),
            source: backbone.source,
            resize: String(resize),
            crop: String(crop),
          },
        ),
      );
      const [n, d] = f.outputs[0].shape;
      const patches = o.patchTokens ? ` and ${f.outputs[1].shape[1]} patch tokens each` : '';
      const skipped = f.skipped.length > 0 ? `; ${f.skipped.length} unreadable image${f.skipped.length > 1 ? 's' : ''} left out` : '';
      console.log(`${o.output}: ${n} images, ${d} dimensions${patches}${skipped}`);
    } finally {
      backbone.model.dispose();
    }
  },
};
