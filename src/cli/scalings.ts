// `peft-ts scalings LOG --out heatmap.png|svg`: an X-LoRA scalings log drawn as a token x expert heatmap.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Option } from 'commander';
import { tf } from '../engine/tf.js';
import { loadScalingsLog } from '../tuners/xlora/scalings-log.js';
import { writeScalingsHeatmap } from '../viz/index.js';
import type { CliIo, GlobalOptions } from './common.js';
import { CliError, intOption, layerOption, listOption, startBackend } from './common.js';

interface ScalingsOptions {
  out: string;
  tokens?: string;
  experts?: string[];
  layer: number | 'mean';
  entry: string;
  batch: number;
  title?: string;
  width?: number;
  tokensAs: 'rows' | 'columns';
}

/** The log entries (`[1, B, S, L, C]` each) as one `[B, S, L, C]` tensor: one entry, or all joined along S. */
export function selectScalings(entries: readonly tf.Tensor[], entry: string): tf.Tensor4D {
  if (entries.length === 0) throw new CliError('the scalings log is empty.');
  if (entry !== 'all') {
    const i = Number(entry);
    if (!Number.isInteger(i) || i < -entries.length || i >= entries.length) throw new CliError(`--entry ${entry}: the log has ${entries.length} entries (0..${entries.length - 1}, or "all").`);
    const t = entries.at(i)!;
    if (t.rank !== 5) throw new CliError(`log entry ${i} has shape [${t.shape.join(', ')}], expected [1, B, S, L, C].`);
    return tf.squeeze(t, [0]) as tf.Tensor4D;
  }
  const [first] = entries;
  const key = (t: tf.Tensor) => (t.rank === 5 ? `${t.shape[1]},${t.shape[3]},${t.shape[4]}` : 'bad');
  const bad = entries.findIndex((t) => t.rank !== 5 || key(t) !== key(first!));
  if (bad >= 0) {
    throw new CliError(`log entry ${bad} has shape [${entries[bad]!.shape.join(', ')}], which does not continue entry 0's [${first!.shape.join(', ')}]: choose one with --entry N.`);
  }
  return tf.tidy(() => tf.squeeze(entries.length === 1 ? first! : tf.concat(entries as tf.Tensor[], 2), [0]) as tf.Tensor4D);
}

async function readTokens(path: string): Promise<string[]> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new CliError(`cannot read --tokens ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string')) throw new CliError(`--tokens ${path} must hold a JSON array of strings.`);
  return value as string[];
}

export function registerScalings(program: Command, io: CliIo): void {
  program
    .command('scalings')
    .description('draw an X-LoRA scalings log (from flush_log_scalings / generate --scalings-log) as a token x expert heatmap')
    .argument('<log>', 'scalings log path as given to flush (reads <log>-mapping.json, <log> or <log>.npy)')
    .requiredOption('--out <file>', 'output picture: .svg or .png')
    .option('--tokens <file>', 'JSON array of token strings labelling the positions (default: 0, 1, ...)')
    .option('--experts <names>', 'comma-separated expert names (default: 0, 1, ...)', listOption)
    .option('--layer <n|mean>', 'adapted layer to draw, or "mean" over layers', layerOption, 'mean' as const)
    .option('--entry <n|all>', 'log entry (one forward pass) to draw, or "all" joined along the sequence', 'all')
    .option('--batch <n>', 'batch row to draw', intOption(0), 0)
    .option('--title <text>', 'picture title')
    .option('--width <px>', 'picture width in pixels', intOption(100))
    .addOption(new Option('--tokens-as <axis>', 'tokens down the side (rows) or across the top (columns)').choices(['rows', 'columns']).default('rows'))
    .action(async (log: string, opts: ScalingsOptions, command: Command) => {
      if (!/\.(svg|png)$/i.test(opts.out)) throw new CliError(`--out ${opts.out}: the picture must be a .svg or .png file.`);
      await startBackend(command.optsWithGlobals<GlobalOptions>());
      const entries = await loadScalingsLog(log);
      let scalings: tf.Tensor4D | undefined;
      try {
        scalings = selectScalings(entries, opts.entry);
        const [B, S, L, C] = scalings.shape;
        if (opts.batch >= B) throw new CliError(`--batch ${opts.batch}: the log has ${B} batch row(s).`);
        const tokens = opts.tokens === undefined ? Array.from({ length: S }, (_, i) => String(i)) : await readTokens(opts.tokens);
        if (tokens.length !== S) throw new CliError(`--tokens has ${tokens.length} tokens but the scalings cover ${S} positions.`);
        const experts = opts.experts ?? Array.from({ length: C }, (_, i) => String(i));
        if (experts.length !== C) throw new CliError(`--experts names ${experts.length} experts but the scalings have ${C}.`);
        if (typeof opts.layer === 'number' && (opts.layer >= L || opts.layer < -L)) throw new CliError(`--layer ${opts.layer}: the scalings have ${L} layers.`);
        // Passed as { data, shape }: the heatmap reads anything with a `data` member as a ShapedArray.
        await writeScalingsHeatmap(opts.out, { data: scalings.dataSync(), shape: scalings.shape }, tokens, experts, {
          layer: opts.layer,
          batch: opts.batch,
          tokensAs: opts.tokensAs,
          ...(opts.title === undefined ? {} : { title: opts.title }),
          ...(opts.width === undefined ? {} : { width: opts.width }),
        });
        io.stdout(`wrote ${opts.out}: ${S} tokens x ${C} experts, layer ${opts.layer} of ${L}, from ${entries.length} log entr${entries.length === 1 ? 'y' : 'ies'}\n`);
      } finally {
        scalings?.dispose();
        for (const t of entries) t.dispose();
      }
    });
}
