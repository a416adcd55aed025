/**
 * X-LoRA scalings heatmap: one row per token, one column per expert (or transposed), coloured by the scaling the
 * classifier gave that expert at that token, for one layer or averaged over layers, with a colour-scale legend.
 *
 * Input is X-LoRA's scalings, `[S, L, C]` or `[B, S, L, C]` (one batch row is drawn), as a tensor (anything with
 * `shape` and `dataSync()`, e.g. a `tf.Tensor` or an entry of `model.scalingsLog`), a nested number array, or
 * `{ data, shape }`.
 */
import { VizError } from '../errors.js';
import { svgToPng, writePicture, type PngRenderOptions } from './render.js';
import { FONT_FAMILY, displayLabel, escapeXml, formatNumber, r2, textWidth, viridis } from './svg.js';

/** A tensor as far as the heatmap needs one (`tf.Tensor` fits). */
export interface TensorLike {
  readonly shape: readonly number[];
  dataSync(): ArrayLike<number>;
}

/** Row-major values with their shape. */
export interface ShapedArray {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

/** Nested arrays, `[S][L][C]` or `[B][S][L][C]`. */
export type NestedNumbers = readonly number[] | readonly NestedNumbers[];

export type ScalingsInput = TensorLike | ShapedArray | NestedNumbers;

export interface ScalingsHeatmapOptions {
  /** Layer to draw, or `'mean'` (default) for the average over layers. Negative indices count from the end. */
  readonly layer?: number | 'mean';
  /** Batch row for `[B, S, L, C]` input (default 0). */
  readonly batch?: number;
  /** Title; default says which layer. */
  readonly title?: string;
  /** Total picture width in px; sets the cell size to fit (overrides `cellSize`). */
  readonly width?: number;
  /** Side of one cell in px (default 28). */
  readonly cellSize?: number;
  /** `'rows'` (default): tokens down the side, experts across the top. `'columns'`: tokens across the top. */
  readonly tokensAs?: 'rows' | 'columns';
  /** Colour-scale range; default [min, max] of the drawn values (a constant map gets [v - 0.5, v + 0.5]). */
  readonly range?: readonly [number, number];
  /** Longest label shown before cutting with an ellipsis (default 24 characters). */
  readonly maxLabelChars?: number;
  /** Write each value inside its cell (default: only when cells are at least 34 px). */
  readonly showValues?: boolean;
}

/** The matrix a heatmap draws: `values[token][expert]`. */
export interface ScalingsMatrix {
  readonly values: number[][];
  readonly layerLabel: string;
}

function isShapedArray(x: ScalingsInput): x is ShapedArray {
  return typeof x === 'object' && !Array.isArray(x) && 'data' in x && 'shape' in x && typeof x.data !== 'function';
}

function isTensorLike(x: ScalingsInput): x is TensorLike {
  return typeof x === 'object' && !Array.isArray(x) && 'shape' in x && typeof (x as TensorLike).dataSync === 'function';
}

function flattenNested(x: NestedNumbers): ShapedArray {
  const shape: number[] = [];
  let probe: unknown = x;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0];
  }
  const data: number[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new VizError('input', `scalings must be numbers, found ${typeof v}`);
      data.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new VizError('input', `scalings nested arrays are ragged at depth ${depth} (expected length ${shape[depth]})`);
    }
    for (const item of v) walk(item, depth + 1);
  };
  walk(x, 0);
  return { data, shape };
}

function toShaped(x: ScalingsInput): ShapedArray {
  if (Array.isArray(x)) return flattenNested(x as NestedNumbers);
  // Tensor first: a tf.Tensor also has a `data` member (its async reader).
  if (isTensorLike(x)) return { data: x.dataSync(), shape: x.shape };
  if (isShapedArray(x)) return x;
  throw new VizError('input', 'scalings must be a tensor, a nested number array or { data, shape }');
}

/** Picks the batch row and layer (or averages layers): `values[s][c]`. */
export function scalingsMatrix(scalings: ScalingsInput, options: Pick<ScalingsHeatmapOptions, 'layer' | 'batch'> = {}): ScalingsMatrix {
  const { data, shape } = toShaped(scalings);
  if (shape.length !== 3 && shape.length !== 4) {
    throw new VizError('input', `scalings must have shape [S, L, C] or [B, S, L, C], got [${shape.join(', ')}]`);
  }
  const [B, S, L, C] = shape.length === 4 ? (shape as [number, number, number, number]) : [1, ...(shape as [number, number, number])];
  const expected = B * S * L * C;
  if (data.length !== expected) {
    throw new VizError('input', `scalings data has ${data.length} values, shape [${shape.join(', ')}] needs ${expected}`);
  }
  if (S === 0 || L === 0 || C === 0) throw new VizError('input', `scalings shape [${shape.join(', ')}] is empty`);
  const batch = options.batch ?? 0;
  if (!Number.isInteger(batch) || batch < 0 || batch >= B) throw new VizError('input', `batch ${batch} out of range [0, ${B})`);
  const layerOpt = options.layer ?? 'mean';
  let layers: number[];
  let layerLabel: string;
  if (layerOpt === 'mean') {
    layers = Array.from({ length: L }, (_, i) => i);
    layerLabel = L === 1 ? 'layer 0' : `mean of ${L} layers`;
  } else {
    const li = layerOpt < 0 ? L + layerOpt : layerOpt;
    if (!Number.isInteger(layerOpt) || li < 0 || li >= L) throw new VizError('input', `layer ${layerOpt} out of range for ${L} layers`);
    layers = [li];
    layerLabel = `layer ${li}`;
  }
  const values: number[][] = [];
  for (let s = 0; s < S; s++) {
    const row: number[] = [];
    for (let c = 0; c < C; c++) {
      let sum = 0;
      for (const l of layers) sum += Number(data[((batch * S + s) * L + l) * C + c]);
      row.push(sum / layers.length);
    }
    values.push(row);
  }
  return { values, layerLabel };
}

/**
 * The heatmap as an SVG document. Every cell is a `<rect class="cell">` carrying `data-token`, `data-expert` and
 * `data-value`, so the SVG can be inspected or restyled.
 */
export function scalingsHeatmapSvg(
  scalings: ScalingsInput,
  tokens: readonly string[],
  expertNames: readonly string[],
  options: ScalingsHeatmapOptions = {},
): string {
  const { values, layerLabel } = scalingsMatrix(scalings, options);
  const S = values.length;
  const C = values[0]!.length;
  if (tokens.length !== S) throw new VizError('input', `got ${tokens.length} tokens for ${S} positions in the scalings`);
  if (expertNames.length !== C) throw new VizError('input', `got ${expertNames.length} expert names for ${C} experts in the scalings`);

  const tokensAsRows = (options.tokensAs ?? 'rows') === 'rows';
  const maxChars = options.maxLabelChars ?? 24;
  const rowLabels = (tokensAsRows ? tokens : expertNames).map((t) => displayLabel(t, maxChars));
  const colLabels = (tokensAsRows ? expertNames : tokens).map((t) => displayLabel(t, maxChars));
  const nRows = rowLabels.length;
  const nCols = colLabels.length;

  const fontSize = 12;
  const pad = 12;
  const title = options.title ?? `X-LoRA scalings (${layerLabel})`;
  const titleH = 30;
  const rowLabelW = Math.ceil(Math.max(...rowLabels.map((l) => textWidth(l, fontSize)))) + 8;
  const colLabelLen = Math.ceil(Math.max(...colLabels.map((l) => textWidth(l, fontSize))));
  const legendW = 16 + 8 + Math.ceil(Math.max(textWidth('0.000', 11), textWidth('-0.000', 11))) + 14;

  let cell = options.cellSize ?? 28;
  if (options.width !== undefined) {
    cell = (options.width - 2 * pad - rowLabelW - legendW - 12) / nCols;
  }
  if (!(cell >= 2) || !Number.isFinite(cell)) {
    throw new VizError('input', `cells would be ${r2(cell)} px wide: give a larger width or cellSize (at least 2)`);
  }
  // Column labels horizontal when they fit their cell, else rotated 45° (their height then grows with length).
  const rotateCols = colLabels.some((l) => textWidth(l, fontSize) > cell - 2);
  const colLabelH = rotateCols ? Math.ceil(colLabelLen * Math.SQRT1_2 + fontSize) + 6 : fontSize + 10;
  const gridX = pad + rowLabelW;
  const gridY = titleH + colLabelH;
  const gridW = cell * nCols;
  const gridH = cell * nRows;
  // Wide enough for the grid and legend, the title, and the last rotated column label (which leans right).
  const svgW = Math.ceil(
    Math.max(
      options.width ?? 0,
      gridX + gridW + 12 + legendW + pad,
      textWidth(title, 15) + 2 * pad,
      rotateCols ? gridX + (nCols - 0.5) * cell + colLabelLen * Math.SQRT1_2 + pad : 0,
    ),
  );
  const height = Math.ceil(gridY + Math.max(gridH, 120) + pad);

  let lo: number;
  let hi: number;
  if (options.range) {
    [lo, hi] = options.range;
  } else {
    const finite = values.flat().filter(Number.isFinite);
    lo = finite.length ? Math.min(...finite) : 0;
    hi = finite.length ? Math.max(...finite) : 1;
  }
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const norm = (v: number): number => (v - lo) / (hi - lo);
  const showValues = options.showValues ?? cell >= 34;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${svgW}" height="${height}" viewBox="0 0 ${svgW} ${height}" ` +
      `font-family="${escapeXml(FONT_FAMILY)}" font-size="${fontSize}">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${r2(svgW / 2)}" y="20" font-size="15" font-weight="bold" text-anchor="middle">${escapeXml(title)}</text>`);

  // Row labels, right-aligned against the grid.
  out.push(`<g class="row-labels" text-anchor="end" xml:space="preserve">`);
  rowLabels.forEach((l, i) => {
    out.push(`<text x="${r2(gridX - 6)}" y="${r2(gridY + (i + 0.5) * cell + fontSize * 0.35)}">${escapeXml(l)}</text>`);
  });
  out.push('</g>');

  // Column labels above the grid.
  out.push(`<g class="col-labels" xml:space="preserve">`);
  colLabels.forEach((l, j) => {
    const cx = gridX + (j + 0.5) * cell;
    if (rotateCols) {
      const y = gridY - 6;
      out.push(`<text x="${r2(cx)}" y="${r2(y)}" transform="rotate(-45 ${r2(cx)} ${r2(y)})">${escapeXml(l)}</text>`);
    } else {
      out.push(`<text x="${r2(cx)}" y="${r2(gridY - 6)}" text-anchor="middle">${escapeXml(l)}</text>`);
    }
  });
  out.push('</g>');

  // Cells.
  out.push(`<g class="cells" shape-rendering="crispEdges">`);
  for (let i = 0; i < nRows; i++) {
    for (let j = 0; j < nCols; j++) {
      const [t, e] = tokensAsRows ? [i, j] : [j, i];
      const v = values[t]![e]!;
      out.push(
        `<rect class="cell" data-token="${t}" data-expert="${e}" data-value="${v}" x="${r2(gridX + j * cell)}" ` +
          `y="${r2(gridY + i * cell)}" width="${r2(cell)}" height="${r2(cell)}" fill="${viridis(norm(v))}"/>`,
      );
    }
  }
  out.push('</g>');
  if (showValues) {
    out.push(`<g class="values" text-anchor="middle" font-size="${Math.min(11, Math.floor(cell / 3.6))}">`);
    for (let i = 0; i < nRows; i++) {
      for (let j = 0; j < nCols; j++) {
        const [t, e] = tokensAsRows ? [i, j] : [j, i];
        const v = values[t]![e]!;
        const fill = norm(v) > 0.6 ? '#000000' : '#ffffff';
        out.push(`<text x="${r2(gridX + (j + 0.5) * cell)}" y="${r2(gridY + (i + 0.5) * cell + 4)}" fill="${fill}">${Math.abs(v) < 10 ? v.toFixed(2) : formatNumber(v)}</text>`);
      }
    }
    out.push('</g>');
  }
  out.push(`<rect x="${r2(gridX)}" y="${r2(gridY)}" width="${r2(gridW)}" height="${r2(gridH)}" fill="none" stroke="#444444" stroke-width="1"/>`);

  // Colour-scale legend: a vertical gradient bar with ticks at min, mid and max.
  const lx = gridX + gridW + 12;
  const lh = Math.max(gridH, 120);
  const stops = Array.from({ length: 9 }, (_, k) => `<stop offset="${k / 8}" stop-color="${viridis(1 - k / 8)}"/>`).join('');
  out.push(`<defs><linearGradient id="scale" x1="0" y1="0" x2="0" y2="1">${stops}</linearGradient></defs>`);
  out.push(`<g class="legend" font-size="11">`);
  out.push(`<rect x="${r2(lx)}" y="${r2(gridY)}" width="16" height="${r2(lh)}" fill="url(#scale)" stroke="#444444" stroke-width="1"/>`);
  for (const f of [0, 0.5, 1]) {
    const y = gridY + (1 - f) * lh;
    out.push(`<line x1="${r2(lx + 16)}" y1="${r2(y)}" x2="${r2(lx + 20)}" y2="${r2(y)}" stroke="#444444"/>`);
    out.push(`<text x="${r2(lx + 23)}" y="${r2(y + 4)}">${formatNumber(lo + f * (hi - lo))}</text>`);
  }
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The heatmap as PNG bytes (see {@link svgToPng} for fonts). */
export function scalingsHeatmapPng(
  scalings: ScalingsInput,
  tokens: readonly string[],
  expertNames: readonly string[],
  options: ScalingsHeatmapOptions & PngRenderOptions = {},
): Uint8Array {
  return svgToPng(scalingsHeatmapSvg(scalings, tokens, expertNames, options), options);
}

/** Writes the heatmap to `path` as SVG or PNG, chosen by extension, atomically. */
export async function writeScalingsHeatmap(
  path: string,
  scalings: ScalingsInput,
  tokens: readonly string[],
  expertNames: readonly string[],
  options: ScalingsHeatmapOptions & PngRenderOptions = {},
): Promise<void> {
  await writePicture(path, scalingsHeatmapSvg(scalings, tokens, expertNames, options), options);
}
