import { resolvePretrained } from '../hub/resolve.js';
import type { HubOptions } from '../hub/options.js';
import { TOKENIZER_PATTERNS } from '../hub/patterns.js';
import type { Side } from './config.js';
import { PreTrainedTokenizer } from './tokenizer.js';

export interface TokenizerLoadOptions extends HubOptions {
  /** Overrides tokenizer_config `padding_side`. */
  readonly paddingSide?: Side;
  /** Overrides tokenizer_config `truncation_side`. */
  readonly truncationSide?: Side;
  /** Overrides tokenizer_config `model_max_length`. */
  readonly modelMaxLength?: number;
  /** Overrides the default chat template. */
  readonly chatTemplate?: string;
}

/** Loads the tokenizer saved with a model: a local folder or a hub repo id (only tokenizer files are downloaded). */
export class AutoTokenizer {
  private constructor() {}

  static async fromPretrained(pathOrRepoId: string, options: TokenizerLoadOptions = {}): Promise<PreTrainedTokenizer> {
    const dir = await resolvePretrained(pathOrRepoId, { ...options, allowPatterns: options.allowPatterns ?? TOKENIZER_PATTERNS });
    const tokenizer = await PreTrainedTokenizer.fromDirectory(dir);
    if (options.paddingSide) tokenizer.paddingSide = options.paddingSide;
    if (options.truncationSide) tokenizer.truncationSide = options.truncationSide;
    if (options.modelMaxLength !== undefined) tokenizer.modelMaxLength = options.modelMaxLength;
    if (options.chatTemplate !== undefined) tokenizer.chatTemplate = options.chatTemplate;
    return tokenizer;
  }
}
