// Pictures to files through sharp: 8-bit pixel buffers as PNG, and equal-sized frames as an animated
// GIF or WebP (libvips takes the frames stacked vertically, one page each).
import sharp from 'sharp';

// Row-major, channels interleaved: data.length === width * height * channels.
export interface Picture {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

export type AnimationFormat = 'gif' | 'webp';

export interface AnimationOptions {
  format: AnimationFormat;
  // Milliseconds each frame shows.
  delay: number;
}

function checkPicture(p: Picture, what: string): void {
  const { width, height, channels, data } = p;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) throw new RangeError(`${what}: size must be positive integers, got ${width}x${height}`);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new RangeError(`${what}: channels must be 1, 3 or 4, got ${channels}`);
  if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
    throw new RangeError(`${what}: expected ${width}x${height}x${channels} = ${width * height * channels} bytes, got ${data?.length}`);
  }
}

const raw = (width: number, height: number, channels: Picture['channels'], pageHeight = height) => ({ raw: { width, height, channels, pageHeight } });

export async function writePng(path: string, picture: Picture): Promise<void> {
  checkPicture(picture, path);
  const image = sharp(picture.data, raw(picture.width, picture.height, picture.channels));
  // libvips reads one raw band as sRGB and would write three.
  await (picture.channels === 1 ? image.toColourspace('b-w') : image).png().toFile(path);
}

export async function writeAnimation(path: string, frames: readonly Picture[], { format, delay }: AnimationOptions): Promise<void> {
  if (frames.length === 0) throw new RangeError(`${path}: an animation needs at least one frame`);
  frames.forEach((f, i) => checkPicture(f, `${path}: frame ${i}`));
  const [{ width, height, channels }] = frames;
  const odd = frames.findIndex((f) => f.width !== width || f.height !== height || f.channels !== channels);
  if (odd >= 0) throw new RangeError(`${path}: frame ${odd} is ${frames[odd].width}x${frames[odd].height}x${frames[odd].channels}, frame 0 ${width}x${height}x${channels}: frames must be equal in size`);
  if (!Number.isSafeInteger(delay) || delay < 0 || delay > 65535) throw new RangeError(`${path}: delay must be an integer number of milliseconds in [0, 65535], got ${delay}`);
  const stacked = new Uint8Array(frames.length * width * height * channels);
  frames.forEach((f, i) => stacked.set(f.data, i * f.data.length));
  const image = sharp(stacked, raw(width, height * frames.length, channels, height));
  const animation = { loop: 0, delay: frames.map(() => delay) };
  await (format === 'gif' ? image.gif(animation) : image.webp(animation)).toFile(path);
}
