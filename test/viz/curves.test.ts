import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { VizError } from '../../src/errors.js';
import { parseMetricsJsonl, trainingCurvesPng, trainingCurvesSvg, writeTrainingCurves } from '../../src/viz/index.js';

const JSONL = [
  '{"step": 10, "loss": 2.3, "learningRate": 1e-4}',
  '{"step": 20, "loss": 1.9, "learning_rate": 9e-5}',
  '',
  '{"step": 20, "eval_loss": 2.0}',
  '{"global_step": 30, "train_loss": 1.5, "lr": 8e-5, "evalLoss": 1.7, "epoch": 1}',
  '{"step": 40, "loss": null, "learning_rate": 7e-5}',
].join('\n');

describe('training curves', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peft-ts-viz-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses camelCase and snake_case metrics lines', () => {
    assert.deepEqual(parseMetricsJsonl(JSONL), [
      { step: 10, loss: 2.3, learningRate: 1e-4 },
      { step: 20, loss: 1.9, learningRate: 9e-5 },
      { step: 20, evalLoss: 2.0 },
      { step: 30, loss: 1.5, learningRate: 8e-5, evalLoss: 1.7 },
      { step: 40, learningRate: 7e-5 },
    ]);
    const bad = (reason: string, line: number) => (e: unknown) =>
      e instanceof VizError && e.reason === reason && e.message.includes(`line ${line}`);
    assert.throws(() => parseMetricsJsonl('{"step": 1}\n{oops'), bad('metrics', 2));
    assert.throws(() => parseMetricsJsonl('{"loss": 1}'), bad('metrics', 1));
    assert.throws(() => parseMetricsJsonl('[1]'), bad('metrics', 1));
  });

  it('SVG has a loss panel with train and eval curves and a learning-rate panel', () => {
    const svg = trainingCurvesSvg(parseMetricsJsonl(JSONL), { title: 'Run 1' });
    assert.ok(svg.includes('>Run 1</text>'));
    assert.equal([...svg.matchAll(/class="panel"/g)].length, 2);
    assert.ok(svg.includes('data-kind="loss"') && svg.includes('data-kind="learning-rate"'));
    const points = (name: string): number => {
      const m = new RegExp(`data-series="${name}" points="([^"]+)"`).exec(svg);
      assert.ok(m, name);
      return m[1]!.split(' ').length;
    };
    assert.equal(points('train loss'), 3);
    assert.equal(points('eval loss'), 2);
    assert.equal(points('learning rate'), 4);
    // only a learning rate: one panel
    const lrOnly = trainingCurvesSvg([{ step: 1, learningRate: 1e-3 }, { step: 2, learningRate: 5e-4 }]);
    assert.equal([...lrOnly.matchAll(/class="panel"/g)].length, 1);
    assert.throws(() => trainingCurvesSvg([{ step: 1 }]), (e: unknown) => e instanceof VizError && e.reason === 'metrics');
  });

  it('PNG decodes at the requested width', () => {
    const records = parseMetricsJsonl(JSONL);
    const svg = trainingCurvesSvg(records, { width: 500 });
    const height = Number(/ height="(\d+)"/.exec(svg)![1]);
    const png = PNG.sync.read(Buffer.from(trainingCurvesPng(records, { width: 500 })));
    assert.equal(png.width, 500);
    assert.equal(png.height, height);
    assert.deepEqual([...png.data.subarray(0, 3)], [255, 255, 255]); // white background in the corner
  });

  it('writeTrainingCurves reads a metrics file and writes PNG or SVG', async () => {
    const metrics = join(dir, 'metrics.jsonl');
    await writeFile(metrics, JSONL);
    await writeTrainingCurves(join(dir, 'c.png'), metrics);
    await writeTrainingCurves(join(dir, 'c.svg'), metrics, { logLoss: true });
    assert.equal((await readFile(join(dir, 'c.png'))).subarray(1, 4).toString('latin1'), 'PNG');
    assert.ok((await readFile(join(dir, 'c.svg'), 'utf8')).includes('loss (log scale)'));
    await assert.rejects(writeTrainingCurves(join(dir, 'c.png'), join(dir, 'missing.jsonl')), (e: unknown) => e instanceof VizError && e.reason === 'metrics');
  });
});
