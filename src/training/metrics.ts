/**
 * Training metrics: records appended to `<outputDir>/metrics.jsonl` (one JSON object a line), trimmed back to the
 * checkpoint's step on resume, and the optional progress bar on stderr.
 */
import { existsSync } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { writeFileAtomic } from '../io/index.js';

export interface MetricsRecord {
  step: number;
  epoch: number;
  loss?: number;
  learningRate?: number;
  gradNorm?: number;
  tokensPerSecond?: number;
  evalLoss?: number;
  elapsedSeconds: number;
  remainingSeconds?: number;
}

export const METRICS_NAME = 'metrics.jsonl';

export async function appendMetrics(outputDir: string, record: MetricsRecord): Promise<void> {
  await appendFile(join(outputDir, METRICS_NAME), JSON.stringify(record) + '\n');
}

/**
 * After a resume from step `step`: drops the records past it (written by the interrupted run), so the file reads
 * as if the run had never stopped. Unparseable lines go too.
 */
export async function truncateMetrics(outputDir: string, step: number): Promise<void> {
  const path = join(outputDir, METRICS_NAME);
  if (!existsSync(path)) return;
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  if (kept.length !== lines.length) await writeFileAtomic(path, kept.map((l) => l + '\n').join(''));
}

/** A started progress bar over `total` optimizer steps; `update` takes `loss`, `lr` and `tps` (tokens/s). */
export function startProgressBar(total: number, startStep: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar({
    format: '{bar} {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | {duration_formatted} < {eta_formatted}',
    hideCursor: true,
    etaBuffer: 20,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, startStep, { loss: '-', lr: '-', tps: '-' });
  return bar;
}

/** `x` rounded to `digits` decimals (keeps metrics records short). */
export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
