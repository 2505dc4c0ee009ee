// A dataset named on the command line, in whichever layout it has:
//   - an IDX directory ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], the Fashion-MNIST/MNIST files);
//   - a Tiny-ImageNet root (wnids.txt, train/<wnid>/images, val/images + val_annotations.txt);
//   - a directory with train/ and val/ ImageFolders (the layout the official k-NN and linear
//     evaluations read), for a split;
//   - an ImageFolder (root/<class>/<image>), what the official training reads.
// `fashion-mnist` names the bundled Fashion-MNIST (Debian's full set when installed).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError } from '../io/file.ts';
import type { ImageDataset } from './dataset.ts';
import { fashionMnist } from './fashion-mnist.ts';
import { imageFolder, tinyImageNet } from './folder.ts';
import { idxDataset } from './idx.ts';

export type Split = 'train' | 'val';

export const BUNDLED_DATASET = 'fashion-mnist';

const IDX_PREFIX: Record<Split, string> = { train: 'train', val: 't10k' };

function idxFile(dir: string, split: Split, kind: string): string | undefined {
  const plain = join(dir, `${IDX_PREFIX[split]}-${kind}-ubyte`);
  return [plain, `${plain}.gz`].find((f) => existsSync(f));
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// The split of the dataset at `path`. A plain ImageFolder has no splits: it is returned for either.
export function openDataset(path: string, split: Split): ImageDataset {
  if (path === BUNDLED_DATASET) return fashionMnist(split === 'train' ? 'train' : 'test');
  if (!existsSync(path)) throw new FileFormatError(`${path}: no such file or directory`);
  if (!isDirectory(path)) throw new FileFormatError(`${path}: not a directory`);
  const images = idxFile(path, split, 'images-idx3');
  const labels = idxFile(path, split, 'labels-idx1');
  if (images !== undefined && labels !== undefined) return idxDataset(images, labels);
  if (existsSync(join(path, 'wnids.txt'))) return tinyImageNet(path, split);
  if (isDirectory(join(path, 'train')) && isDirectory(join(path, 'val'))) return imageFolder(join(path, split));
  return imageFolder(path);
}
