/**
 * Small SVG-writing helpers shared by the heatmap and the training curves: escaping, a text-width estimate (no font
 * metrics at hand, so a conservative per-character width for DejaVu Sans / sans-serif), number formatting, "nice"
 * axis ticks and the viridis colour map.
 */

/** Font stack used in every picture. DejaVu Sans first: it ships with most Linux images and has wide coverage. */
export const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";

/** Escapes text for use in SVG element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/**
 * A token as a label: control characters shown as escapes (`\n`, `\t`, `\x01`), characters XML 1.0 forbids
 * dropped, and long tokens cut to `maxChars` with an ellipsis. Spaces are kept (rendered with `xml:space`).
 */
export function displayLabel(text: string, maxChars: number): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp === 0xfffe || cp === 0xffff || (cp >= 0xd800 && cp <= 0xdfff)) continue;
    else out += ch;
  }
  const chars = [...out];
  return chars.length > maxChars ? chars.slice(0, Math.max(1, maxChars - 1)).join('') + '…' : out;
}

/** Estimated rendered width of `text` at `fontSize` px (DejaVu Sans averages ~0.6 em; wide glyphs count double). */
export function textWidth(text: string, fontSize: number): number {
  let em = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    em += cp >= 0x1100 ? 1.0 : /[mwMW@%]/.test(ch) ? 0.85 : /[il.,:;'|!]/.test(ch) ? 0.32 : 0.62;
  }
  return em * fontSize;
}

/** Rounds for SVG coordinates (keeps the files small and deterministic). */
export function r2(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** A short human label for an axis tick or legend value. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(1).replace('e+', 'e');
  if (a >= 100) return String(Math.round(x));
  return String(Number(x.toPrecision(3)));
}

/** Up to about `count` evenly spaced round numbers covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9) * step;
  for (let t = first; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  return ticks;
}

// Viridis, 9 samples of matplotlib's table (perceptually uniform, readable in greyscale and by most colour-blind
// viewers). Low = dark purple, high = yellow.
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Viridis colour for t in [0, 1] (clamped; NaN maps to grey) as `[r, g, b]`. */
export function viridisRgb(t: number): [number, number, number] {
  if (Number.isNaN(t)) return [128, 128, 128];
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

/** Viridis colour for t in [0, 1] as `#rrggbb`. */
export function viridis(t: number): string {
  return '#' + viridisRgb(t).map((v) => v.toString(16).padStart(2, '0')).join('');
}
