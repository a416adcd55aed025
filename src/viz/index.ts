/**
 * `peft-ts/viz`: pictures. X-LoRA scalings heatmaps and training curves, as SVG strings or PNG bytes, or written to
 * `.svg` / `.png` files. A separate entry point so the PNG renderer (`@resvg/resvg-js`, a native module loaded only
 * when a PNG is made) stays out of `peft-ts`'s main import.
 *
 * ```ts
 * import { writeScalingsHeatmap, writeTrainingCurves } from 'peft-ts/viz';
 * const scalings = model.scalingsLog.latest!;          // [B, S, L, C], logging enabled
 * await writeScalingsHeatmap('scalings.png', scalings, tokens, ['code', 'math'], { layer: 'mean' });
 * await writeTrainingCurves('curves.svg', 'out/metrics.jsonl');
 * ```
 *
 * PNG text needs a font: the system's fonts are used (e.g. Debian's `fonts-dejavu-core`), plus font files or
 * folders given as `{ fonts: [...] }` or in `PEFT_TS_VIZ_FONTS` (`:`-separated). With none, PNGs render without
 * text; `textRenderingAvailable()` tells. SVG output needs no font and no native code.
 */
export {
  scalingsHeatmapSvg,
  scalingsHeatmapPng,
  writeScalingsHeatmap,
  scalingsMatrix,
} from './heatmap.js';
export type { ScalingsHeatmapOptions, ScalingsInput, ScalingsMatrix, TensorLike, ShapedArray, NestedNumbers } from './heatmap.js';
export { trainingCurvesSvg, trainingCurvesPng, writeTrainingCurves, parseMetricsJsonl, readMetricsJsonl } from './curves.js';
export type { MetricsRecord, TrainingCurvesOptions } from './curves.js';
export { svgToPng, textRenderingAvailable, writePicture } from './render.js';
export type { PngRenderOptions } from './render.js';
export { viridis, viridisRgb } from './svg.js';
export { VizError } from '../errors.js';
export type { VizErrorReason } from '../errors.js';
