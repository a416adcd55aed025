/**
 * Training curves from a metrics JSON-lines file: a loss panel (training loss, and evaluation loss where logged)
 * above a learning-rate panel, sharing the step axis.
 *
 * Each line is one JSON object with a numeric step and any of the values; camelCase and snake_case keys are both
 * read: `step` (or `global_step`), `loss` (or `train_loss`), `learningRate` (or `learning_rate`, `lr`), `evalLoss`
 * (or `eval_loss`). Blank lines are skipped; a value that is missing, `null` or not finite is left out of its curve.
 */
import { readFile } from 'node:fs/promises';
import { VizError } from '../errors.js';
import { svgToPng, writePicture, type PngRenderOptions } from './render.js';
import { FONT_FAMILY, escapeXml, formatNumber, niceTicks, r2, textWidth } from './svg.js';

/** One metrics record, keys normalised. */
export interface MetricsRecord {
  readonly step: number;
  readonly loss?: number;
  readonly learningRate?: number;
  readonly evalLoss?: number;
}

export interface TrainingCurvesOptions {
  /** Title (default "Training curves"). */
  readonly title?: string;
  /** Picture width in px (default 720). */
  readonly width?: number;
  /** Height of each panel's plot area in px (default 220). */
  readonly panelHeight?: number;
  /** Log-scale loss axis (default false). */
  readonly logLoss?: boolean;
}

const KEYS = {
  step: ['step', 'global_step', 'globalStep'],
  loss: ['loss', 'train_loss', 'trainLoss'],
  learningRate: ['learningRate', 'learning_rate', 'lr'],
  evalLoss: ['evalLoss', 'eval_loss'],
} as const;

function pick(obj: Record<string, unknown>, keys: readonly string[]): number | undefined {
  for (const k of keys) {
    const v = obj[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

/** Parses metrics JSON lines (see the module doc for the keys read). `source` names the file in errors. */
export function parseMetricsJsonl(text: string, source?: string): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      throw new VizError('metrics', `line ${i + 1} is not JSON`, { path: source, cause: e });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new VizError('metrics', `line ${i + 1} is not a JSON object`, { path: source });
    }
    const obj = parsed as Record<string, unknown>;
    const step = pick(obj, KEYS.step);
    if (step === undefined) throw new VizError('metrics', `line ${i + 1} has no numeric "step"`, { path: source });
    const rec: { step: number; loss?: number; learningRate?: number; evalLoss?: number } = { step };
    const loss = pick(obj, KEYS.loss);
    const learningRate = pick(obj, KEYS.learningRate);
    const evalLoss = pick(obj, KEYS.evalLoss);
    if (loss !== undefined) rec.loss = loss;
    if (learningRate !== undefined) rec.learningRate = learningRate;
    if (evalLoss !== undefined) rec.evalLoss = evalLoss;
    records.push(rec);
  });
  return records;
}

/** Reads and parses a metrics JSON-lines file. */
export async function readMetricsJsonl(path: string): Promise<MetricsRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new VizError('metrics', 'cannot read the metrics file', { path, cause: e });
  }
  return parseMetricsJsonl(text, path);
}

type Point = readonly [number, number];

interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: Point[];
  readonly markers: boolean;
}

function series(records: readonly MetricsRecord[], key: 'loss' | 'learningRate' | 'evalLoss'): Point[] {
  const pts: Point[] = [];
  for (const r of records) {
    const v = r[key];
    if (v !== undefined) pts.push([r.step, v]);
  }
  return pts.sort((a, b) => a[0] - b[0]);
}

interface Panel {
  readonly label: string;
  readonly series: Series[];
  readonly log: boolean;
}

function drawPanel(
  out: string[],
  panel: Panel,
  box: { x: number; y: number; w: number; h: number },
  xRange: readonly [number, number],
  kind: string,
): void {
  const all = panel.series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => !panel.log || v > 0);
  const tf = (v: number): number => (panel.log ? Math.log10(v) : v);
  let lo = Math.min(...all.map(tf));
  let hi = Math.max(...all.map(tf));
  if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  } else {
    const m = (hi - lo) * 0.05;
    lo -= m;
    hi += m;
  }
  if (!panel.log && lo < 0 && Math.min(...all) >= 0) lo = 0;
  const [x0, x1] = xRange;
  const sx = (x: number): number => box.x + ((x - x0) / (x1 - x0)) * box.w;
  const sy = (v: number): number => box.y + box.h - ((tf(v) - lo) / (hi - lo)) * box.h;

  out.push(`<g class="panel" data-kind="${kind}">`);
  out.push(`<rect x="${r2(box.x)}" y="${r2(box.y)}" width="${r2(box.w)}" height="${r2(box.h)}" fill="#fafafa" stroke="#444444"/>`);
  // y ticks and grid
  const yTicks = panel.log
    ? niceTicks(Math.ceil(lo), Math.floor(hi), 4).filter(Number.isInteger).map((e) => 10 ** e)
    : niceTicks(lo, hi, 5);
  out.push(`<g class="y-ticks" font-size="11" text-anchor="end">`);
  for (const t of yTicks) {
    const y = sy(t);
    if (y < box.y - 0.5 || y > box.y + box.h + 0.5) continue;
    out.push(`<line x1="${r2(box.x)}" y1="${r2(y)}" x2="${r2(box.x + box.w)}" y2="${r2(y)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${r2(box.x - 6)}" y="${r2(y + 4)}">${escapeXml(formatNumber(t))}</text>`);
  }
  out.push('</g>');
  // x ticks
  out.push(`<g class="x-ticks" font-size="11" text-anchor="middle">`);
  for (const t of niceTicks(x0, x1, 8)) {
    const x = sx(t);
    out.push(`<line x1="${r2(x)}" y1="${r2(box.y + box.h)}" x2="${r2(x)}" y2="${r2(box.y + box.h + 4)}" stroke="#444444"/>`);
    out.push(`<text x="${r2(x)}" y="${r2(box.y + box.h + 16)}">${escapeXml(formatNumber(t))}</text>`);
  }
  out.push('</g>');
  // y label, rotated
  const ly = box.y + box.h / 2;
  out.push(`<text x="14" y="${r2(ly)}" transform="rotate(-90 14 ${r2(ly)})" text-anchor="middle" font-size="12">${escapeXml(panel.label)}</text>`);
  // curves
  for (const s of panel.series) {
    const pts = s.points.filter((p) => !panel.log || p[1] > 0);
    if (pts.length === 0) continue;
    const d = pts.map((p) => `${r2(sx(p[0]))},${r2(sy(p[1]))}`).join(' ');
    out.push(
      `<polyline class="series" data-series="${escapeXml(s.name)}" points="${d}" fill="none" stroke="${s.color}" ` +
        `stroke-width="1.8" stroke-linejoin="round"/>`,
    );
    if (s.markers || pts.length === 1) {
      for (const p of pts) out.push(`<circle cx="${r2(sx(p[0]))}" cy="${r2(sy(p[1]))}" r="3" fill="${s.color}"/>`);
    }
  }
  // legend (top right, inside the plot)
  const shown = panel.series.filter((s) => s.points.length > 0);
  const lw = Math.max(...shown.map((s) => textWidth(s.name, 11))) + 34;
  const lx = box.x + box.w - lw - 8;
  out.push(`<g class="legend" font-size="11">`);
  out.push(`<rect x="${r2(lx)}" y="${r2(box.y + 8)}" width="${r2(lw)}" height="${shown.length * 16 + 6}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>`);
  shown.forEach((s, i) => {
    const y = box.y + 8 + 12 + i * 16;
    out.push(`<line x1="${r2(lx + 6)}" y1="${r2(y - 4)}" x2="${r2(lx + 24)}" y2="${r2(y - 4)}" stroke="${s.color}" stroke-width="2.5"/>`);
    out.push(`<text x="${r2(lx + 28)}" y="${r2(y)}">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  out.push('</g>');
}

/** The curves as an SVG document: a loss panel and a learning-rate panel (each only when it has data). */
export function trainingCurvesSvg(metrics: readonly MetricsRecord[], options: TrainingCurvesOptions = {}): string {
  const loss = series(metrics, 'loss');
  const evalLoss = series(metrics, 'evalLoss');
  const lr = series(metrics, 'learningRate');
  const panels: Panel[] = [];
  const logLoss = options.logLoss ?? false;
  if (loss.length > 0 || evalLoss.length > 0) {
    panels.push({
      label: logLoss ? 'loss (log scale)' : 'loss',
      log: logLoss,
      series: [
        { name: 'train loss', color: '#1f77b4', points: loss, markers: false },
        { name: 'eval loss', color: '#ff7f0e', points: evalLoss, markers: true },
      ].filter((s) => s.points.length > 0),
    });
  }
  if (lr.length > 0) panels.push({ label: 'learning rate', log: false, series: [{ name: 'learning rate', color: '#2ca02c', points: lr, markers: false }] });
  if (panels.length === 0) throw new VizError('metrics', 'the metrics have no loss, eval loss or learning rate to plot');

  const steps = [...loss, ...evalLoss, ...lr].map((p) => p[0]);
  let x0 = Math.min(...steps);
  let x1 = Math.max(...steps);
  if (!(x1 > x0)) {
    x0 -= 1;
    x1 += 1;
  }
  const width = options.width ?? 720;
  const ph = options.panelHeight ?? 220;
  const left = 74;
  const right = 20;
  const titleH = 36;
  const gap = 44;
  const height = titleH + panels.length * (ph + gap) + 10;
  if (width - left - right < 40) throw new VizError('input', `width ${width} is too small for the curves (at least ${left + right + 40})`);

  const title = options.title ?? 'Training curves';
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="${escapeXml(FONT_FAMILY)}" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${r2(width / 2)}" y="24" font-size="15" font-weight="bold" text-anchor="middle">${escapeXml(title)}</text>`);
  panels.forEach((p, i) => {
    const y = titleH + i * (ph + gap);
    drawPanel(out, p, { x: left, y, w: width - left - right, h: ph }, [x0, x1], p.label.startsWith('loss') ? 'loss' : 'learning-rate');
    out.push(`<text x="${r2(left + (width - left - right) / 2)}" y="${r2(y + ph + 32)}" text-anchor="middle" font-size="12">step</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The curves as PNG bytes. */
export function trainingCurvesPng(metrics: readonly MetricsRecord[], options: TrainingCurvesOptions & PngRenderOptions = {}): Uint8Array {
  return svgToPng(trainingCurvesSvg(metrics, options), options);
}

/**
 * Reads a metrics JSON-lines file (or takes parsed records) and writes the curves to `path` as SVG or PNG, chosen
 * by extension, atomically.
 */
export async function writeTrainingCurves(
  path: string,
  metrics: string | readonly MetricsRecord[],
  options: TrainingCurvesOptions & PngRenderOptions = {},
): Promise<void> {
  const records = typeof metrics === 'string' ? await readMetricsJsonl(metrics) : metrics;
  await writePicture(path, trainingCurvesSvg(records, options), options);
}
