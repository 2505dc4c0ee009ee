// Fashion-MNIST (Zalando, MIT): the full set from Debian's dataset-fashion-mnist package when it is
// installed, otherwise the balanced subset shipped in data/fashion-mnist (5,000 train + 1,000 test
// images; see its README for how it was chosen).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageDataset } from './dataset.ts';
import { idxDataset } from './idx.ts';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

// The package's data/fashion-mnist, found from this module whether it runs from lib/ or dist/lib/.
export function embeddedFashionMnistDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'data', 'fashion-mnist');
    if (existsSync(join(candidate, 'LICENSE'))) return candidate;
    if (dirname(dir) === dir) throw new Error('the embedded Fashion-MNIST subset (data/fashion-mnist) is missing from this installation');
  }
}

export type FashionMnistSplit = 'train' | 'test';

// `dir` holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; by default Debian's directory when it
// has the files, else the embedded subset.
export function fashionMnist(split: FashionMnistSplit, dir?: string): ImageDataset {
  const prefix = split === 'train' ? 'train' : 't10k';
  const root = dir ?? (existsSync(join(DEBIAN_FASHION_MNIST_DIR, `${prefix}-images-idx3-ubyte.gz`)) ? DEBIAN_FASHION_MNIST_DIR : embeddedFashionMnistDir());
  const file = (kind: string) => {
    const plain = join(root, `${prefix}-${kind}-ubyte`);
    return existsSync(`${plain}.gz`) ? `${plain}.gz` : plain;
  };
  return idxDataset(file('images-idx3'), file('labels-idx1'), { classes: FASHION_MNIST_CLASSES });
}
