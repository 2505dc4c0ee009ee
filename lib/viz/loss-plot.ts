// The loss curve of a training run (loss.png in the output directory): every step's loss, each
// epoch's mean, and the collapse level ln(out_dim) as a dashed line when it is in view. Drawn as SVG
// and rasterised by sharp (librsvg), so the figure needs no plotting library.
import sharp from 'sharp';
import { writeFileAtomic } from '../io/file.ts';

export interface LossCurve {
  // Per step.
  iterations: number[];
  losses: number[];
  // Per finished epoch: the iteration it ended at and its mean loss.
  epochEnds: number[];
  epochLosses: number[];
  // ln(out_dim), drawn for reference.
  collapseLoss?: number;
  title?: string;
}

const WIDTH = 800;
const HEIGHT = 450;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };

// About `count` round tick values covering [lo, hi].
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const escape = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

export function lossCurveSvg(curve: LossCurve): string {
  const finite = curve.losses.filter(Number.isFinite);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xMax = Math.max(1, ...curve.iterations.map((i) => i + 1));
  let yLo = Math.min(...finite);
  let yHi = Math.max(...finite);
  if (curve.collapseLoss !== undefined && curve.collapseLoss <= yHi + 0.25 * (yHi - yLo)) yHi = Math.max(yHi, curve.collapseLoss);
  if (!(yHi > yLo)) {
    yLo = (Number.isFinite(yLo) ? yLo : 0) - 0.5;
    yHi = yLo + 1;
  }
  const pad = 0.05 * (yHi - yLo);
  yLo -= pad;
  yHi += pad;
  const x = (i: number) => MARGIN.left + (i / xMax) * plotW;
  const y = (v: number) => MARGIN.top + (1 - (v - yLo) / (yHi - yLo)) * plotH;
  const path = (xs: number[], ys: number[]) =>
    xs
      .map((xi, k) => (Number.isFinite(ys[k]) ? `${x(xi).toFixed(1)},${y(ys[k]).toFixed(1)}` : null))
      .filter((p) => p !== null)
      .join(' ');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${escape(curve.title ?? 'DINO loss')}</text>`,
  ];
  for (const v of niceTicks(yLo, yHi)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  for (const v of niceTicks(0, xMax)) parts.push(`<text x="${x(v).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle">${v}</text>`);
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">iteration</text>`);
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">loss</text>`);
  if (curve.collapseLoss !== undefined && curve.collapseLoss >= yLo && curve.collapseLoss <= yHi) {
    const cy = y(curve.collapseLoss).toFixed(1);
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${cy}" y2="${cy}" stroke="#c0392b" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${WIDTH - MARGIN.right - 4}" y="${(Number(cy) - 5).toFixed(1)}" text-anchor="end" fill="#c0392b">collapse: ln(out_dim) = ${curve.collapseLoss.toFixed(3)}</text>`);
  }
  parts.push(`<polyline points="${path(curve.iterations, curve.losses)}" fill="none" stroke="#7fb3d5" stroke-width="1"/>`);
  if (curve.epochEnds.length > 0) {
    parts.push(`<polyline points="${path(curve.epochEnds, curve.epochLosses)}" fill="none" stroke="#1f4e79" stroke-width="2"/>`);
    for (let k = 0; k < curve.epochEnds.length; k++) {
      if (Number.isFinite(curve.epochLosses[k])) parts.push(`<circle cx="${x(curve.epochEnds[k]).toFixed(1)}" cy="${y(curve.epochLosses[k]).toFixed(1)}" r="3" fill="#1f4e79"/>`);
    }
  }
  // The legend sits at the bottom, clear of the collapse line at the top.
  const legendY = HEIGHT - MARGIN.bottom - 8;
  parts.push(`<text x="${MARGIN.left + 8}" y="${legendY}" fill="#7fb3d5">per step</text>`);
  parts.push(`<text x="${MARGIN.left + 70}" y="${legendY}" fill="#1f4e79">epoch mean</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

// Writes the curve as a PNG, atomically (a viewer never sees half a file).
export async function writeLossPlot(path: string, curve: LossCurve): Promise<void> {
  const png = await sharp(Buffer.from(lossCurveSvg(curve))).png().toBuffer();
  writeFileAtomic(path, (sink) => sink.write(png));
}
