// `peft-ts generate`: text from a base model, optionally with a LoRA/LoHa adapter or an X-LoRA model, streamed to
// stdout as it is decoded (greedy and sampling; beam search prints the best beam at the end).
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { GenerationOptions, StreamEvent } from '../generation/config.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { PeftModel } from '../peft-model.js';
import { AutoTokenizer } from '../tokenizers/index.js';
import type { PreTrainedTokenizer } from '../tokenizers/index.js';
import { fromPretrained as xloraFromPretrained } from '../tuners/xlora/io.js';
import type { XLoraModel } from '../tuners/xlora/model.js';
import type { CliIo, GlobalOptions } from './common.js';
import { CliError, intOption, numberOption, startBackend, tokenizerDir } from './common.js';

interface GenerateOptions {
  model: string;
  adapter?: string;
  xlora?: string;
  tokenizer?: string;
  prompt: string;
  maxNewTokens: number;
  numBeams: number;
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  seed?: number;
  specialTokens?: boolean;
  scalingsLog?: string;
}

/**
 * Prints the decoded text of a growing token list as it grows: each call prints what was added to the text. A
 * trailing U+FFFD (a byte-level token that ends inside a UTF-8 character) is held back until it resolves.
 */
export class TextStreamer {
  private ids: number[] = [];
  private printed = '';

  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly write: (text: string) => void,
    private readonly skipSpecialTokens = true,
  ) {}

  put(ids: readonly number[]): void {
    this.ids.push(...ids);
    this.emit(false);
  }

  /** Prints whatever is left. */
  end(): void {
    this.emit(true);
  }

  private emit(final: boolean): void {
    let text = this.tokenizer.decode(this.ids, { skipSpecialTokens: this.skipSpecialTokens });
    if (!final && text.endsWith('\uFFFD')) text = text.replace(/\uFFFD+$/, '');
    if (text.startsWith(this.printed)) {
      if (text.length > this.printed.length) this.write(text.slice(this.printed.length));
    } else if (final || text.length > this.printed.length) {
      // The decoded prefix changed (a merge across tokens): print the difference from the common prefix on.
      let i = 0;
      while (i < text.length && text[i] === this.printed[i]) i++;
      this.write(text.slice(i));
    } else {
      return;
    }
    this.printed = text;
  }
}

export function registerGenerate(program: Command, io: CliIo): void {
  program
    .command('generate')
    .description('generate text from a model, optionally with an adapter (--adapter) or an X-LoRA model (--xlora), streaming to stdout')
    .requiredOption('--model <dir>', 'base model folder')
    .option('--adapter <dir>', 'LoRA or LoHa adapter folder (PEFT format)')
    .option('--xlora <dir>', 'X-LoRA model folder (PEFT or original layout)')
    .option('--tokenizer <dir>', 'tokenizer folder (default: the adapter folder when it has one, else the model folder)')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'new tokens at most', intOption(1), 50)
    .option('--num-beams <n>', 'beam search with N beams (no streaming)', intOption(1), 1)
    .option('--do-sample', 'sample instead of greedy decoding')
    .option('--temperature <t>', 'sampling temperature', numberOption({ positive: true }))
    .option('--top-p <p>', 'nucleus sampling: keep the smallest set of tokens with probability >= p', numberOption({ positive: true, max: 1 }))
    .option('--top-k <k>', 'sample among the k most likely tokens (0: all)', intOption(0))
    .option('--repetition-penalty <x>', 'penalise tokens already in the sequence (> 1)', numberOption({ positive: true }))
    .option('--seed <n>', 'seed for sampling', intOption(0))
    .option('--special-tokens', 'print special tokens (EOS, ...) too')
    .option('--scalings-log <path>', 'X-LoRA: write the scalings log (for `peft-ts scalings`) and <path>-tokens.json')
    .action(async (opts: GenerateOptions, command: Command) => {
      if (opts.adapter !== undefined && opts.xlora !== undefined) throw new CliError('--adapter and --xlora cannot be used together.');
      if (opts.scalingsLog !== undefined && opts.xlora === undefined) throw new CliError('--scalings-log needs --xlora.');
      const sampling = opts.temperature !== undefined || opts.topP !== undefined || opts.topK !== undefined;
      if (sampling && !opts.doSample) throw new CliError('--temperature, --top-p and --top-k apply to sampling: add --do-sample.');
      await startBackend(command.optsWithGlobals<GlobalOptions>());
      const base = await AutoModelForCausalLM.fromPretrained(opts.model);
      const tokenizer = await AutoTokenizer.fromPretrained(tokenizerDir(opts.tokenizer, [opts.adapter, opts.xlora, opts.model]));
      let xlora: XLoraModel | undefined;
      let model: { generate(ids: number[][], options: GenerationOptions): Promise<number[][]>; dispose(): void } = base;
      if (opts.adapter !== undefined) model = await PeftModel.fromPretrained(base, opts.adapter);
      if (opts.xlora !== undefined) model = xlora = await xloraFromPretrained(opts.xlora, base);
      try {
        const prompt = tokenizer.encode(opts.prompt);
        if (prompt.length === 0) throw new CliError('the prompt encodes to no tokens.');
        xlora?.enableScalingsLogging();
        const streamer = new TextStreamer(tokenizer, (t) => io.stdout(t), !opts.specialTokens);
        const stream = opts.numBeams === 1;
        const options: GenerationOptions = {
          maxNewTokens: opts.maxNewTokens,
          numBeams: opts.numBeams,
          doSample: opts.doSample ?? false,
          ...(opts.temperature === undefined ? {} : { temperature: opts.temperature }),
          ...(opts.topP === undefined ? {} : { topP: opts.topP }),
          ...(opts.topK === undefined ? {} : { topK: opts.topK }),
          ...(opts.repetitionPenalty === undefined ? {} : { repetitionPenalty: opts.repetitionPenalty }),
          ...(opts.seed === undefined ? {} : { seed: opts.seed }),
          ...(stream ? { onToken: (e: StreamEvent) => streamer.put([e.tokens[0]!]) } : {}),
        };
        const [row] = await model.generate([prompt], options);
        if (!stream) streamer.put(row!.slice(prompt.length));
        streamer.end();
        io.stdout('\n');
        if (xlora && opts.scalingsLog !== undefined) {
          await xlora.flushLogScalings(opts.scalingsLog);
          // The scaling passes saw every token but the last one generated.
          const seen = row!.slice(0, -1).map((id) => tokenizer.decode([id]));
          await writeFile(`${opts.scalingsLog}-tokens.json`, JSON.stringify(seen) + '\n');
          io.stderr(`peft-ts: wrote the scalings log ${opts.scalingsLog} and ${opts.scalingsLog}-tokens.json\n`);
        }
      } finally {
        model.dispose();
      }
    });
}

