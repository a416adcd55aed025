// `peft-ts merge`: folds a LoRA/LoHa adapter into its base model and saves a plain transformers checkpoint.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { tf } from '../engine/tf.js';
import { saveCheckpoint } from '../io/index.js';
import type { SafetensorsFloatDtype } from '../io/index.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { PeftModel } from '../peft-model.js';
import type { CliIo, GlobalOptions } from './common.js';
import { CliError, TOKENIZER_FILES, copyPresent, formatCount, hasTokenizer, startBackend } from './common.js';

interface MergeCliOptions {
  model: string;
  adapter: string;
  out: string;
  dtype: 'f32' | 'f16' | 'bf16';
  maxShardSize: string;
  safeMerge?: boolean;
}

const DTYPES: Record<MergeCliOptions['dtype'], { st: SafetensorsFloatDtype; torch: string }> = {
  f32: { st: 'F32', torch: 'float32' },
  f16: { st: 'F16', torch: 'float16' },
  bf16: { st: 'BF16', torch: 'bfloat16' },
};

/**
 * The tensors transformers saves for `stateDict`: a tensor shared by several keys (tied weights, e.g. `lm_head.weight`
 * tied to `model.embed_tokens.weight`) is written once, under its first key; loading ties it back.
 */
export function withoutTiedDuplicates(stateDict: Readonly<Record<string, tf.Tensor>>): { tensors: Map<string, tf.Tensor>; dropped: string[] } {
  const seen = new Set<tf.Tensor>();
  const tensors = new Map<string, tf.Tensor>();
  const dropped: string[] = [];
  for (const [key, tensor] of Object.entries(stateDict)) {
    if (seen.has(tensor)) {
      dropped.push(key);
      continue;
    }
    seen.add(tensor);
    tensors.set(key, tensor);
  }
  return { tensors, dropped };
}

export function registerMerge(program: Command, io: CliIo): void {
  program
    .command('merge')
    .description('merge a LoRA or LoHa adapter into its base model and save the full model (safetensors, config, tokenizer)')
    .requiredOption('--model <dir>', 'base model folder')
    .requiredOption('--adapter <dir>', 'adapter folder (PEFT format)')
    .requiredOption('--out <dir>', 'output folder for the merged model')
    .addOption(new Option('--dtype <dtype>', 'dtype of the saved weights').choices(['f32', 'f16', 'bf16']).default('f32'))
    .option('--max-shard-size <size>', 'shard the weights above this size (e.g. 5GB, 500MB)', '5GB')
    .option('--safe-merge', 'check that the merged weights are finite before replacing the base weights')
    .action(async (opts: MergeCliOptions, command: Command) => {
      if (resolve(opts.out) === resolve(opts.model)) throw new CliError('--out must differ from --model (the base checkpoint would be overwritten).');
      await startBackend(command.optsWithGlobals<GlobalOptions>());
      const base = await AutoModelForCausalLM.fromPretrained(opts.model);
      const peft = await PeftModel.fromPretrained(base, opts.adapter);
      const merged = peft.mergeAndUnload(opts.safeMerge ? { safeMerge: true } : {});
      try {
        const { tensors, dropped } = withoutTiedDuplicates(merged.stateDict());
        const dtype = DTYPES[opts.dtype];
        await saveCheckpoint(opts.out, tensors, { dtype: dtype.st, maxShardSize: opts.maxShardSize });
        const config = JSON.parse(await readFile(join(opts.model, 'config.json'), 'utf8')) as Record<string, unknown>;
        if (opts.dtype !== 'f32' || 'torch_dtype' in config || 'dtype' in config) {
          if ('torch_dtype' in config) config['torch_dtype'] = dtype.torch;
          config['dtype'] = dtype.torch;
        }
        await writeFile(join(opts.out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
        await copyPresent(opts.model, opts.out, ['generation_config.json']);
        const tokenizerFrom = hasTokenizer(opts.adapter) ? opts.adapter : opts.model;
        const copied = await copyPresent(tokenizerFrom, opts.out, TOKENIZER_FILES);
        const count = [...tensors.values()].reduce((s, t) => s + t.size, 0);
        io.stdout(
          `merged ${opts.adapter} into ${opts.model}: ${tensors.size} tensors, ${formatCount(count)} parameters (${opts.dtype})` +
            `${dropped.length ? `; tied, not written: ${dropped.join(', ')}` : ''}\n` +
            `saved to ${opts.out}${copied.length ? ` (tokenizer: ${copied.join(', ')})` : existsSync(join(opts.out, 'tokenizer.json')) ? '' : ' (no tokenizer files found)'}\n`,
        );
      } finally {
        merged.dispose();
      }
    });
}
