import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { tf } from '../../src/engine/tf.js';
import { VizError } from '../../src/errors.js';
import {
  scalingsHeatmapPng,
  scalingsHeatmapSvg,
  scalingsMatrix,
  textRenderingAvailable,
  viridisRgb,
  writeScalingsHeatmap,
} from '../../src/viz/index.js';

// [S=3, L=2, C=2]: token 0 → expert 0 high in both layers; token 1 → expert 1; token 2 differs per layer.
const S = 3;
const L = 2;
const C = 2;
const DATA = [
  // s0: l0, l1
  1, 0, 1, 0,
  // s1
  0, 1, 0, 1,
  // s2
  1, 0, 0, 1,
];
const TOKENS = ['<s>', '▁Hello', ' a&b'];
const EXPERTS = ['code', 'math'];

function cellRects(svg: string): { token: number; expert: number; value: number; x: number; y: number; w: number }[] {
  const re = /<rect class="cell" data-token="(\d+)" data-expert="(\d+)" data-value="([^"]+)" x="([^"]+)" y="([^"]+)" width="([^"]+)"/g;
  return [...svg.matchAll(re)].map((m) => ({
    token: Number(m[1]),
    expert: Number(m[2]),
    value: Number(m[3]),
    x: Number(m[4]),
    y: Number(m[5]),
    w: Number(m[6]),
  }));
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /<svg[^>]* width="(\d+)" height="(\d+)"/.exec(svg);
  assert.ok(m, 'svg has width and height');
  return { width: Number(m[1]), height: Number(m[2]) };
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (Math.round(y) * png.width + Math.round(x)) * 4;
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

function assertNear(actual: readonly number[], expected: readonly number[], tol: number, what: string): void {
  const ok = actual.every((v, k) => Math.abs(v - expected[k]!) <= tol);
  assert.ok(ok, `${what}: got rgb(${actual.join(',')}), expected about rgb(${expected.join(',')})`);
}

describe('scalings heatmap', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peft-ts-viz-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('picks a layer or averages layers, and a batch row', () => {
    assert.deepEqual(scalingsMatrix({ data: DATA, shape: [S, L, C] }, { layer: 0 }).values, [[1, 0], [0, 1], [1, 0]]);
    assert.deepEqual(scalingsMatrix({ data: DATA, shape: [S, L, C] }, { layer: -1 }).values, [[1, 0], [0, 1], [0, 1]]);
    assert.deepEqual(scalingsMatrix({ data: DATA, shape: [S, L, C] }).values, [[1, 0], [0, 1], [0.5, 0.5]]);
    const batched = [...DATA.map(() => 0.25), ...DATA];
    assert.deepEqual(scalingsMatrix({ data: batched, shape: [2, S, L, C] }, { batch: 1, layer: 0 }).values, [[1, 0], [0, 1], [1, 0]]);
    assert.deepEqual(scalingsMatrix({ data: batched, shape: [2, S, L, C] }, { layer: 1 }).values[2], [0.25, 0.25]);
  });

  it('takes tf tensors and nested arrays', () => {
    const t = tf.tensor(DATA, [1, S, L, C]);
    try {
      assert.deepEqual(scalingsMatrix(t, { layer: 1 }).values, [[1, 0], [0, 1], [0, 1]]);
    } finally {
      t.dispose();
    }
    const nested = [[[1, 0], [1, 0]], [[0, 1], [0, 1]], [[1, 0], [0, 1]]];
    assert.deepEqual(scalingsMatrix(nested).values, [[1, 0], [0, 1], [0.5, 0.5]]);
  });

  it('SVG has the token labels, expert names, a legend, a title and one cell per token × expert', () => {
    const svg = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { layer: 0, title: 'My <title>' });
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.includes('>&lt;s&gt;</text>'));
    assert.ok(svg.includes('>▁Hello</text>'));
    assert.ok(svg.includes('> a&amp;b</text>'));
    for (const e of EXPERTS) assert.ok(svg.includes(`>${e}</text>`), e);
    assert.ok(svg.includes('My &lt;title&gt;'));
    assert.ok(svg.includes('class="legend"') && svg.includes('linearGradient'));
    const cells = cellRects(svg);
    assert.equal(cells.length, S * C);
    assert.equal(cells.find((c) => c.token === 2 && c.expert === 0)?.value, 1);
    // tokens as rows: a token's cells share a y, an expert's cells share an x
    const t1 = cells.filter((c) => c.token === 1);
    assert.equal(new Set(t1.map((c) => c.y)).size, 1);
    const cols = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { tokensAs: 'columns' });
    assert.equal(new Set(cellRects(cols).filter((c) => c.token === 1).map((c) => c.x)).size, 1);
    assert.ok(svg.includes('X-LoRA') === false && cols.includes('mean of 2 layers'));
  });

  it('width sets the cell size; bad input throws VizError', () => {
    const narrow = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { width: 300 });
    const wide = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { width: 600 });
    assert.ok(cellRects(wide)[0]!.w > cellRects(narrow)[0]!.w);
    assert.equal(svgSize(wide).width, 600);
    const isViz = (reason: string) => (e: unknown) => e instanceof VizError && e.code === 'viz' && e.reason === reason;
    assert.throws(() => scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, ['a'], EXPERTS), isViz('input'));
    assert.throws(() => scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, ['x']), isViz('input'));
    assert.throws(() => scalingsMatrix({ data: DATA, shape: [S, L * C] }), isViz('input'));
    assert.throws(() => scalingsMatrix({ data: DATA, shape: [S, L, C] }, { layer: 2 }), isViz('input'));
    assert.throws(() => scalingsMatrix([[[1, 0]], [[1]]]), isViz('input'));
  });

  it('PNG decodes to the SVG size, high cells yellow and low cells purple', () => {
    const svg = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { layer: 0, range: [0, 1] });
    const bytes = scalingsHeatmapPng({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS, { layer: 0, range: [0, 1] });
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const png = PNG.sync.read(Buffer.from(bytes));
    assert.deepEqual({ width: png.width, height: png.height }, svgSize(svg));
    const cells = cellRects(svg);
    const centre = (token: number, expert: number): [number, number, number] => {
      const c = cells.find((r) => r.token === token && r.expert === expert)!;
      return pixel(png, c.x + c.w / 2, c.y + c.w / 2);
    };
    const high = viridisRgb(1);
    const low = viridisRgb(0);
    assertNear(centre(0, 0), high, 3, 'token 0 / code');
    assertNear(centre(0, 1), low, 3, 'token 0 / math');
    assertNear(centre(1, 1), high, 3, 'token 1 / math');
    assertNear(centre(2, 1), low, 3, 'token 2 / math');
  });

  it('PNG draws the labels when a font is available', (t) => {
    if (!textRenderingAvailable()) {
      t.skip('no font found for text rendering (install fonts-dejavu-core or set PEFT_TS_VIZ_FONTS)');
      return;
    }
    const svg = scalingsHeatmapSvg({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS);
    const png = PNG.sync.read(Buffer.from(scalingsHeatmapPng({ data: DATA, shape: [S, L, C] }, TOKENS, EXPERTS)));
    // Ink in the row-label strip, left of the grid, on token 1's row.
    const c = cellRects(svg).find((r) => r.token === 1 && r.expert === 0)!;
    let ink = 0;
    for (let x = 2; x < c.x - 2; x++) for (let y = c.y; y < c.y + c.w; y++) if (pixel(png, x, y)[0] < 128) ink++;
    assert.ok(ink > 10, `expected label pixels, found ${ink}`);
  });

  it('writeScalingsHeatmap picks the format by extension', async () => {
    const input = { data: DATA, shape: [S, L, C] };
    await writeScalingsHeatmap(join(dir, 'h.svg'), input, TOKENS, EXPERTS);
    await writeScalingsHeatmap(join(dir, 'h.PNG'), input, TOKENS, EXPERTS, { layer: 1 });
    assert.ok((await readFile(join(dir, 'h.svg'), 'utf8')).includes('class="cell"'));
    assert.equal((await readFile(join(dir, 'h.PNG'))).subarray(1, 4).toString('latin1'), 'PNG');
    await assert.rejects(
      writeScalingsHeatmap(join(dir, 'h.jpg'), input, TOKENS, EXPERTS),
      (e: unknown) => e instanceof VizError && e.reason === 'format',
    );
  });
});
