/**
 * SVG → PNG through `@resvg/resvg-js` (resvg, a Rust SVG renderer, shipped as prebuilt napi binaries in per-platform
 * npm packages: nothing is downloaded or compiled at install or run time).
 *
 * Fonts: resvg draws no text without a font, and silently. It is given the system fonts (`loadSystemFonts`, on
 * Linux whatever fontconfig's usual folders hold, e.g. Debian's `fonts-dejavu-core`), plus any font files or
 * folders named in `options.fonts` or in the `PEFT_TS_VIZ_FONTS` environment variable (paths separated by the
 * platform's path delimiter, `:` on Linux). On a machine with no fonts at all, pictures still render, without
 * their text; {@link textRenderingAvailable} tells whether text will show.
 *
 * The native module is loaded lazily, on the first PNG, so `peft-ts/viz`'s SVG functions work even where the
 * platform package is missing; a PNG then throws a {@link VizError} with reason `renderer_unavailable`.
 */
import { mkdir } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, extname } from 'node:path';
import { VizError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { FONT_FAMILY } from './svg.js';
import type * as ResvgNs from '@resvg/resvg-js';

type ResvgModule = typeof ResvgNs;

/** How PNGs are rendered. */
export interface PngRenderOptions {
  /** Extra font files (`.ttf`, `.otf`, `.ttc`) or folders of them, added to the system fonts. */
  readonly fonts?: readonly string[];
  /** Whether to load the system's fonts (default true). */
  readonly loadSystemFonts?: boolean;
  /** Scale factor for the output (default 1: one PNG pixel per SVG unit). */
  readonly scale?: number;
}

let resvgModule: ResvgModule | undefined;

function loadResvg(): ResvgModule {
  if (resvgModule) return resvgModule;
  try {
    resvgModule = createRequire(import.meta.url)('@resvg/resvg-js') as ResvgModule;
  } catch (e) {
    throw new VizError(
      'renderer_unavailable',
      `PNG output needs @resvg/resvg-js and its prebuilt package for ${process.platform}-${process.arch}, which could ` +
        'not be loaded. Reinstall with optional dependencies enabled (npm install --include=optional), or write .svg.',
      { cause: e },
    );
  }
  return resvgModule;
}

/** Font files and folders from `options.fonts` and `PEFT_TS_VIZ_FONTS`, split into files and dirs. */
function extraFonts(options: PngRenderOptions): { fontFiles: string[]; fontDirs: string[] } {
  const env = process.env['PEFT_TS_VIZ_FONTS'];
  const paths = [...(options.fonts ?? []), ...(env ? env.split(delimiter) : [])].filter((p) => p.length > 0);
  const fontFiles: string[] = [];
  const fontDirs: string[] = [];
  for (const p of paths) {
    try {
      (statSync(p).isDirectory() ? fontDirs : fontFiles).push(p);
    } catch {
      // a font path that does not exist is skipped, as fontconfig does
    }
  }
  return { fontFiles, fontDirs };
}

/** Renders an SVG document to PNG bytes. */
export function svgToPng(svg: string, options: PngRenderOptions = {}): Uint8Array {
  const { Resvg } = loadResvg();
  const { fontFiles, fontDirs } = extraFonts(options);
  const scale = options.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new VizError('input', `scale must be a positive number, got ${scale}`);
  const resvg = new Resvg(svg, {
    font: {
      loadSystemFonts: options.loadSystemFonts ?? true,
      fontFiles,
      fontDirs,
      defaultFontFamily: 'DejaVu Sans',
      sansSerifFamily: 'DejaVu Sans',
    },
    fitTo: scale === 1 ? { mode: 'original' } : { mode: 'zoom', value: scale },
    shapeRendering: 2,
    textRendering: 1,
    imageRendering: 0,
  });
  const png = resvg.render().asPng();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Decoded RGBA pixels of an SVG render (for checks without a PNG decoder). */
export function svgToRgba(svg: string, options: PngRenderOptions = {}): { width: number; height: number; pixels: Uint8Array } {
  const { Resvg } = loadResvg();
  const { fontFiles, fontDirs } = extraFonts(options);
  const img = new Resvg(svg, {
    font: { loadSystemFonts: options.loadSystemFonts ?? true, fontFiles, fontDirs, defaultFontFamily: 'DejaVu Sans' },
  }).render();
  const px = img.pixels;
  return { width: img.width, height: img.height, pixels: new Uint8Array(px.buffer, px.byteOffset, px.byteLength) };
}

/**
 * Whether PNGs will show text with these options: renders a word on white and checks that some pixel got ink.
 * False when no usable font is found (or the renderer is missing).
 */
export function textRenderingAvailable(options: PngRenderOptions = {}): boolean {
  try {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="24"><rect width="80" height="24" fill="#fff"/>' +
      `<text x="4" y="18" font-family="${FONT_FAMILY.replace(/"/g, '&quot;')}" font-size="16" fill="#000">Text</text></svg>`;
    const { pixels } = svgToRgba(svg, options);
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i]! < 128) return true;
    return false;
  } catch {
    return false;
  }
}

/** Writes `svg` or its PNG render to `path`, chosen by extension (`.svg` or `.png`), atomically. */
export async function writePicture(path: string, svg: string, options: PngRenderOptions = {}): Promise<void> {
  const ext = extname(path).toLowerCase();
  if (ext === '.svg' || ext === '.png') await mkdir(dirname(path), { recursive: true });
  if (ext === '.svg') await writeFileAtomic(path, svg);
  else if (ext === '.png') await writeFileAtomic(path, svgToPng(svg, options));
  else throw new VizError('format', `cannot tell the picture format from extension "${ext}": use .svg or .png`, { path });
}
