// Shared by the CLI tests: running the CLI in-process with captured output, and a tiny random Llama saved to a
// folder together with the tiny GPT-2 tokenizer of ../shared/realdata (vocabulary 1000).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/cli/index.js';
import { withoutTiedDuplicates } from '../../src/cli/merge.js';
import { saveCheckpoint } from '../../src/io/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { AutoTokenizer } from '../../src/tokenizers/index.js';
import { realdataPath } from '../helpers/realdata.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `peft-ts <argv>` in this process. */
export async function cli(...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

/** Asserts success, showing the CLI's stderr otherwise. */
export async function cliOk(...argv: string[]): Promise<CliResult> {
  const r = await cli(...argv);
  if (r.code !== 0) throw new Error(`peft-ts ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

export const gpt2TokenizerDir = realdataPath('tiny-random-gpt2');

/** The tiny GPT-2 tokenizer files, or a skip reason. */
export const tokenizerSkip: string | false = gpt2TokenizerDir ? false : '../shared/realdata/tiny-random-gpt2 is absent';

/**
 * Writes a tiny random Llama (vocabulary 1000, the tokenizer's) with `config.json`, `model.safetensors` and the
 * tokenizer files into `dir`. `initializer_range` 0.2 so a few steps visibly move the loss.
 */
export async function writeTinyLlama(dir: string, options: { tied?: boolean; seed?: number; hidden?: number; maxPositions?: number } = {}): Promise<void> {
  const tokenizerDir = gpt2TokenizerDir!;
  const tok = await AutoTokenizer.fromPretrained(tokenizerDir);
  const hidden = options.hidden ?? 32;
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 1000,
    hidden_size: hidden,
    intermediate_size: 2 * hidden,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: options.maxPositions ?? 256,
    initializer_range: 0.2,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: options.tied ?? false,
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
  };
  await mkdir(dir, { recursive: true });
  const model = AutoModelForCausalLM.fromConfig(config, { seed: options.seed ?? 1 });
  try {
    await saveCheckpoint(dir, withoutTiedDuplicates(model.stateDict()).tensors);
  } finally {
    model.dispose();
  }
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(tokenizerDir, f), join(dir, f));
}

/** Writes `n` JSONL `{"text"}` records of a simple repeating pattern (easy to learn). */
export async function writeTinyJsonl(path: string, n: number, offset = 0): Promise<void> {
  const words = ['red', 'green', 'blue', 'cat', 'dog', 'sun', 'moon', 'tree'];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = words[(i + offset) % words.length]!;
    const b = words[(i + offset + 3) % words.length]!;
    lines.push(JSON.stringify({ text: `the ${a} sees the ${b}. the ${a} sees the ${b}.` }));
  }
  await writeFile(path, lines.join('\n') + '\n');
}
