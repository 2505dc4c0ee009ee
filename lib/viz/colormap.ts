// Colours for the attention pictures: matplotlib's default colormap, viridis (plt.imsave's, which
// visualize_attention.py writes its maps with), and visualize_attention.py's random_colors for the
// mask overlays.
import type { Generator } from '../engine/random.ts';
import type { Rgb } from '../augment/image.ts';

// viridis (Nathaniel Smith and Stefan van der Walt, CC0): matplotlib's 256 entries as 8-bit RGB,
// each float truncated as matplotlib does for 8-bit output ((lut * 255).astype(uint8)).
const VIRIDIS_HEX =
  '44015444025544035745055845065a45085b46095c460b5e460c5f460e61470f62471163471265471466471567471669' +
  '47186a48196b481a6c481c6e481d6f481e70482071482172482273482374472575472676472777472878472a79472b7a' +
  '472c7b462d7c462f7c46307d46317e45327f45347f453580453681443781443982433a83433b83433c84423d84423e85' +
  '4240854141864142864043874044873f45873f47883e48883e49893d4a893d4b893d4c893c4d8a3c4e8a3b508a3b518a' +
  '3a528b3a538b39548b39558b38568b38578c37588c37598c365a8c365b8c355c8c355d8c345e8d345f8d33608d33618d' +
  '32628d32638d31648d31658d31668d30678d30688d2f698d2f6a8d2e6b8e2e6c8e2e6d8e2d6e8e2d6f8e2c708e2c718e' +
  '2c728e2b738e2b748e2a758e2a768e2a778e29788e29798e287a8e287a8e287b8e277c8e277d8e277e8e267f8e26808e' +
  '26818e25828e25838d24848d24858d24868d23878d23888d23898d22898d228a8d228b8d218c8d218d8c218e8c208f8c' +
  '20908c20918c1f928c1f938b1f948b1f958b1f968b1e978a1e988a1e998a1e998a1e9a891e9b891e9c891e9d881e9e88' +
  '1e9f881ea0871fa1871fa2861fa38620a48520a58521a68521a78422a78423a88323a98224aa8225ab8126ac8127ad80' +
  '28ae7f29af7f2ab07e2bb17d2cb17d2eb27c2fb37b30b47a32b57a33b67935b77836b87738b97639b9763bba753dbb74' +
  '3ebc7340bd7242be7144be7045bf6f47c06e49c16d4bc26c4dc26b4fc36951c46853c56755c66657c66559c7645bc862' +
  '5ec96160c96062ca5f64cb5d67cc5c69cc5b6bcd596dce5870ce5672cf5574d05477d05279d1517cd24f7ed24e81d34c' +
  '83d34b86d44988d5478bd5468dd64490d64392d74195d73f97d83e9ad83c9dd93a9fd938a2da37a5da35a7db33aadb32' +
  'addc30afdc2eb2dd2cb5dd2bb7dd29bade27bdde26bfdf24c2df22c5df21c7e01fcae01ecde01dcfe11cd2e11bd4e11a' +
  'd7e219dae218dce218dfe318e1e318e4e318e7e419e9e419ece41aeee51bf1e51cf3e51ef6e61ff8e621fae622fde724';
export const VIRIDIS: Uint8Array = Uint8Array.from(VIRIDIS_HEX.match(/../g)!, (b) => parseInt(b, 16));

// Values to RGB through a 256-entry table, min-max scaled as plt.imsave scales them: value v takes
// entry trunc(256 * (v - min) / (max - min)), the maximum the last one; all values equal take the first.
export function colorize(values: ArrayLike<number>, table: Uint8Array = VIRIDIS): Uint8Array {
  const n = table.length / 3;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo) lo = values[i];
    if (values[i] > hi) hi = values[i];
  }
  const range = hi - lo;
  const rgb = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) {
    const k = range > 0 ? 3 * Math.min(n - 1, Math.trunc(((values[i] - lo) / range) * n)) : 0;
    rgb[3 * i] = table[k];
    rgb[3 * i + 1] = table[k + 1];
    rgb[3 * i + 2] = table[k + 2];
  }
  return rgb;
}

// random_colors(n, bright=True): n hues evenly around the wheel at full saturation and value, in an
// order shuffled by `rng`; 8-bit RGB.
export function randomColors(n: number, rng: Generator): Rgb[] {
  const colors = Array.from({ length: n }, (_, i) => hsvToRgb(i / n));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [colors[i], colors[j]] = [colors[j], colors[i]];
  }
  return colors;
}

// colorsys.hsv_to_rgb(h, 1, 1) in 8 bits.
function hsvToRgb(h: number): Rgb {
  const sector = Math.floor(h * 6) % 6;
  const f = h * 6 - Math.floor(h * 6);
  const up = Math.round(255 * f);
  const down = 255 - up;
  const table: Rgb[] = [[255, up, 0], [down, 255, 0], [0, 255, up], [0, down, 255], [up, 0, 255], [255, 0, down]];
  return table[sector];
}
