// Datasets from directory trees: torchvision's ImageFolder layout (what the official DINO trains on)
// and the Tiny-ImageNet layout.
//
// Scanning only lists names; whether a file really is a readable image is found out when it is
// loaded (a bad one is then a counted, named skip), so a scan of a million files costs a directory
// listing, not a million stats. Symbolic links are followed, as torchvision does (os.walk with
// followlinks=True), except back into a directory already open above (a link loop): that descent ends
// with a note, where os.walk would go round the loop until the path is too long, listing the same
// files again at every turn.
import { readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { FileFormatError } from '../io/file.ts';
import { FileStore, ImageDataset } from './dataset.ts';

// torchvision's IMG_EXTENSIONS less those libvips cannot read (.bmp, .ppm, .pgm), matched
// case-insensitively (.JPEG, .Png, ...).
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff'];

export interface FolderOptions {
  extensions?: readonly string[];
}

function isImageName(name: string, extensions: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return extensions.some((e) => lower.endsWith(e));
}

// Directory entries; an unreadable directory is a note and no entries.
function entries(dir: string, notes: string[]): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    notes.push(`${dir}: cannot list: ${(e as Error).message}`);
    return [];
  }
}

// Whether an entry leads to a directory, following a symbolic link (a broken link is not one).
function isDirectory(dir: string, entry: Dirent): boolean {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return statSync(join(dir, entry.name)).isDirectory();
  } catch {
    return false;
  }
}

// Every image name under `top` (relative to `root`), in torchvision's order: directories sorted by
// path, then file names sorted within each. A directory already open further up the path (device and
// inode) is a link loop and not entered again; one reached twice by different routes is listed twice,
// as os.walk would.
function walkImages(root: string, top: string, extensions: readonly string[], notes: string[]): string[] {
  const found: { dir: string; files: string[] }[] = [];
  const open = new Set<string>();
  const enter = (rel: string): void => {
    const dir = join(root, rel);
    let id: string;
    try {
      const st = statSync(dir);
      id = `${st.dev}:${st.ino}`;
    } catch (e) {
      notes.push(`${dir}: cannot enter: ${(e as Error).message}`);
      return;
    }
    if (open.has(id)) {
      notes.push(`${dir}: symbolic link loop (it leads back to a directory above it); not followed`);
      return;
    }
    open.add(id);
    const files: string[] = [];
    for (const entry of entries(dir, notes)) {
      if (isDirectory(dir, entry)) enter(join(rel, entry.name));
      else if (isImageName(entry.name, extensions)) files.push(entry.name);
    }
    open.delete(id);
    found.push({ dir: rel, files: files.sort() });
  };
  enter(top);
  found.sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0));
  return found.flatMap(({ dir, files }) => files.map((f) => join(dir, f)));
}

function rootDir(path: string, what: string): string {
  const root = resolve(path);
  let ok = false;
  try {
    ok = statSync(root).isDirectory();
  } catch {
    // reported below
  }
  if (!ok) throw new FileFormatError(`${root}: ${what} root is not a directory`);
  return root;
}

// The dataset of `images` (paths relative to root, with their labels); classes without images are
// noted, no images at all is an error.
function dataset(root: string, classes: string[], images: { path: string; label: number }[], notes: string[], what: string): ImageDataset {
  const counts = new Array<number>(classes.length).fill(0);
  for (const { label } of images) counts[label]++;
  counts.forEach((n, c) => {
    if (n === 0) notes.push(`class ${JSON.stringify(classes[c])} has no images`);
  });
  if (images.length === 0) throw new FileFormatError(`${root}: no images found in ${what} (${classes.length} classes)`);
  const store = FileStore.from(root + sep, images.map((i) => i.path));
  return new ImageDataset(root, classes, Int32Array.from(images, (i) => i.label), store, notes);
}

const labelled = (perClass: string[][]) => perClass.flatMap((paths, label) => paths.map((path) => ({ path, label })));

// root/<class>/**/<image>: classes are the sorted names of root's subdirectories, as torchvision's
// ImageFolder; at least one is required, as the official code requires, and empty ones are allowed
// and noted.
export function imageFolder(path: string, options: FolderOptions = {}): ImageDataset {
  const extensions = options.extensions ?? IMAGE_EXTENSIONS;
  const root = rootDir(path, 'ImageFolder');
  const notes: string[] = [];
  const classes = entries(root, notes)
    .filter((e) => isDirectory(root, e))
    .map((e) => e.name)
    .sort();
  if (classes.length === 0) {
    throw new FileFormatError(`${root}: no class folders; an ImageFolder is root/<class>/<image> (one folder for all images is enough)`);
  }
  const perClass = classes.map((c) => walkImages(root, c, extensions, notes));
  return dataset(root, classes, labelled(perClass), notes, 'ImageFolder');
}

export type TinyImageNetSplit = 'train' | 'val';

// Tiny-ImageNet-200 as distributed (tiny-imagenet-200.zip): wnids.txt lists the classes,
// train/<wnid>/images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt giving each file's wnid
// (tab-separated: file, wnid, box). Labels index the sorted wnids, as ImageFolder on train/ would.
// Validation images are listed in annotation order.
export function tinyImageNet(path: string, split: TinyImageNetSplit, options: FolderOptions = {}): ImageDataset {
  const extensions = options.extensions ?? IMAGE_EXTENSIONS;
  const root = rootDir(path, 'Tiny-ImageNet');
  const notes: string[] = [];
  const read = (name: string) => {
    try {
      return readFileSync(join(root, name), 'utf8');
    } catch (e) {
      throw new FileFormatError(`${join(root, name)}: cannot read (${(e as Error).message}); is ${root} a Tiny-ImageNet directory?`);
    }
  };
  const classes = [...new Set(read('wnids.txt').split('\n').map((l) => l.trim()).filter((l) => l !== ''))].sort();
  if (classes.length === 0) throw new FileFormatError(`${join(root, 'wnids.txt')}: no class ids`);
  if (split === 'train') {
    const perClass = classes.map((wnid) => walkImages(root, join('train', wnid, 'images'), extensions, notes));
    return dataset(root, classes, labelled(perClass), notes, 'Tiny-ImageNet train');
  }
  const annotations = join(root, 'val', 'val_annotations.txt');
  const label = new Map(classes.map((w, c) => [w, c]));
  const present = new Set(entries(join(root, 'val', 'images'), notes).map((e) => e.name));
  const annotated = new Set<string>();
  const images: { path: string; label: number }[] = [];
  read(join('val', 'val_annotations.txt'))
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const [file, wnid] = line.split('\t');
      const c = label.get(wnid?.trim() ?? '');
      if (!file || c === undefined) throw new FileFormatError(`${annotations}:${i + 1}: ${JSON.stringify(line)} does not name a file and a class of wnids.txt`);
      annotated.add(file);
      if (present.has(file)) images.push({ path: join('val', 'images', file), label: c });
      else notes.push(`val/images/${file} is annotated but missing`);
    });
  const unlabelled = [...present].filter((f) => !annotated.has(f) && isImageName(f, extensions)).length;
  if (unlabelled > 0) notes.push(`val/images: ${unlabelled} images without an annotation, left out`);
  return dataset(root, classes, images, notes, 'Tiny-ImageNet val');
}
