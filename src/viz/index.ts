/**
 * `peft-ts/viz`: pictures. X-LoRA scalings heatmaps and training curves, as SVG strings or PNG bytes, or written to
 * `.svg` / `.png` files. A separate entry point so the PNG renderer (`@resvg/resvg-js`, a native module loaded only
 * when a PNG is made) stays out of `peft-ts`'s main import.
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
