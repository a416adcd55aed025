import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.js';
import { padBatch, truncateSequences, type BatchEncoding, type PaddingStrategy, type TruncationStrategy } from './batch.js';
import { renderChatTemplate, selectChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat.js';
import {
  isJsonObject,
  layoutSize,
  NO_SPECIALS,
  readSettings,
  SPECIAL_TOKEN_KEYS,
  specialLayout,
  type JsonObject,
  type Side,
  type SpecialLayout,
  type SpecialTokenKey,
  type TokenizerSettings,
  type TokenizerSource,
} from './config.js';
import { readTokenizerDirectory, readTokenizerFiles, type TokenizerFiles } from './load.js';

export interface EncodeOptions {
  /** Add the model's special tokens (BOS, EOS, CLS/SEP...). Default true. */
  readonly addSpecialTokens?: boolean;
  /** Second sequence of a pair. */
  readonly textPair?: string;
  /** `true` means `'longest_first'`. Default: off, unless `maxLength` is given (and, in batches, no padding). */
  readonly truncation?: TruncationStrategy;
  /** Longest result, special tokens included. Default `modelMaxLength`. */
  readonly maxLength?: number;
  /** Which end truncation removes tokens from. Default from tokenizer_config `truncation_side`, else right. */
  readonly truncationSide?: Side;
}

export interface BatchEncodeOptions extends Omit<EncodeOptions, 'textPair'> {
  /** Second sequences, one per text. */
  readonly textPairs?: string | readonly string[];
  /** `true`/`'longest'`: to the longest row; `'max_length'`: to `maxLength`. Default false. */
  readonly padding?: PaddingStrategy;
  readonly padToMultipleOf?: number;
  /** Default from tokenizer_config `padding_side`, else right. Use left for batched generation. */
  readonly paddingSide?: Side;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/PAD and added special tokens). Default false. */
  readonly skipSpecialTokens?: boolean;
  /** Undo spaces before punctuation (" ." → "."). Default from tokenizer_config, else false. */
  readonly cleanUpTokenizationSpaces?: boolean;
}

export type { BatchEncoding, PaddingStrategy, TruncationStrategy } from './batch.js';

interface IdLayout {
  readonly prefix: readonly number[];
  readonly middle: readonly number[];
  readonly suffix: readonly number[];
  readonly tokens: SpecialLayout;
}

function resolveTruncation(t: TruncationStrategy | undefined, maxLength: number | undefined, padding: boolean) {
  if (t === undefined) return maxLength !== undefined && !padding ? 'longest_first' : undefined;
  if (t === true) return 'longest_first';
  return t === false || t === 'do_not_truncate' ? undefined : t;
}

function checkLength(n: number | undefined, what: string): void {
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new TokenizerError(`${what} must be a positive integer, got ${n}.`);
}

/**
 * A Hugging Face fast tokenizer (`tokenizer.json`) with the transformers API in camelCase: encode/decode,
 * batch encoding with padding and truncation, special tokens and chat templates. Built on @huggingface/tokenizers.
 */
export class PreTrainedTokenizer {
  /** Side padding goes on; left for batched generation with decoder-only models. */
  paddingSide: Side;
  truncationSide: Side;
  /** Longest input the model takes (tokenizer_config `model_max_length`); Infinity when unbounded. */
  modelMaxLength: number;
  cleanUpTokenizationSpaces: boolean;
  /** Named chat templates (`default`, `tool_use`, ...). */
  readonly chatTemplates: Map<string, string>;
  /** Base vocabulary size without added tokens, as transformers' `vocab_size`. */
  readonly vocabSize: number;

  private readonly backend: Tokenizer;
  private readonly settings: TokenizerSettings;
  private readonly specials: Partial<Record<SpecialTokenKey, string>>;
  private readonly additionalSpecialTokens: readonly string[];
  private readonly layouts = new Map<boolean, IdLayout>();
  private specialIdCache: Set<number> | undefined;

  constructor(private readonly source: TokenizerSource) {
    const settings = readSettings(source);
    this.settings = settings;
    this.specials = { ...settings.specialTokens };
    this.additionalSpecialTokens = settings.additionalSpecialTokens;
    this.paddingSide = settings.paddingSide;
    this.truncationSide = settings.truncationSide;
    this.modelMaxLength = settings.modelMaxLength;
    this.cleanUpTokenizationSpaces = settings.cleanUpTokenizationSpaces;
    this.chatTemplates = new Map(settings.chatTemplates);
    const json = source.tokenizerJson;
    if (!isJsonObject(json['model'])) throw new TokenizerError('tokenizer.json has no "model" section.');
    // The backend wants every pipeline key present (null when unused) and plain-string special tokens.
    const backendJson = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
    const backendConfig: JsonObject = { ...(source.tokenizerConfig ?? {}), additional_special_tokens: [...this.additionalSpecialTokens] };
    for (const key of SPECIAL_TOKEN_KEYS) backendConfig[`${key}_token`] = this.specials[key] ?? null;
    backendConfig['clean_up_tokenization_spaces'] = this.cleanUpTokenizationSpaces;
    delete backendConfig['chat_template'];
    try {
      this.backend = new Tokenizer(backendJson, backendConfig);
    } catch (err) {
      throw new TokenizerError(`Unsupported tokenizer.json: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const vocab = json['model']['vocab'];
    this.vocabSize = Array.isArray(vocab) ? vocab.length : isJsonObject(vocab) ? Object.keys(vocab).length : this.backend.get_vocab(false).size;
  }

  /** Loads explicit files (paths or parsed objects), e.g. `{ tokenizerJson: 'llama_tokenizer.json', tokenizerConfig: ... }`. */
  static async fromFiles(files: TokenizerFiles): Promise<PreTrainedTokenizer> {
    return new PreTrainedTokenizer(await readTokenizerFiles(files));
  }

  /** Loads a saved tokenizer folder (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`). */
  static async fromDirectory(dir: string): Promise<PreTrainedTokenizer> {
    return new PreTrainedTokenizer(await readTokenizerDirectory(dir));
  }

  // ---- special tokens -------------------------------------------------------------------------------------------

  getSpecialToken(key: SpecialTokenKey): string | undefined {
    return this.specials[key];
  }

  /** Sets (or clears, with undefined) a special token; it must already be in the vocabulary. */
  setSpecialToken(key: SpecialTokenKey, token: string | undefined | null): void {
    if (token !== undefined && token !== null && this.backend.token_to_id(token) === undefined) {
      throw new TokenizerError(`Cannot use "${token}" as ${key}_token: it is not in the vocabulary.`);
    }
    if (token === undefined || token === null) delete this.specials[key];
    else this.specials[key] = token;
    this.specialIdCache = undefined;
  }

  get bosToken(): string | undefined { return this.specials.bos; }
  set bosToken(t: string | undefined) { this.setSpecialToken('bos', t); }
  get eosToken(): string | undefined { return this.specials.eos; }
  set eosToken(t: string | undefined) { this.setSpecialToken('eos', t); }
  get unkToken(): string | undefined { return this.specials.unk; }
  set unkToken(t: string | undefined) { this.setSpecialToken('unk', t); }
  /** The padding token. GPT-2 style tokenizers have none: set `tokenizer.padToken = tokenizer.eosToken` before padding. */
  get padToken(): string | undefined { return this.specials.pad; }
  set padToken(t: string | undefined) { this.setSpecialToken('pad', t); }

  get bosTokenId(): number | undefined { return this.idOf(this.specials.bos); }
  get eosTokenId(): number | undefined { return this.idOf(this.specials.eos); }
  get unkTokenId(): number | undefined { return this.idOf(this.specials.unk); }
  get padTokenId(): number | undefined { return this.idOf(this.specials.pad); }

  /** transformers' `special_tokens_map`: `bos_token`, `eos_token`, ... and `additional_special_tokens`. */
  get specialTokensMap(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const key of SPECIAL_TOKEN_KEYS) if (this.specials[key] !== undefined) out[`${key}_token`] = this.specials[key];
    if (this.additionalSpecialTokens.length) out['additional_special_tokens'] = [...this.additionalSpecialTokens];
    return out;
  }

  /** Ids skipped by `decode(..., { skipSpecialTokens: true })`. */
  get allSpecialIds(): number[] {
    return [...this.specialIds()];
  }

  private specialIds(): Set<number> {
    if (!this.specialIdCache) {
      const ids = new Set<number>();
      for (const [id, t] of this.backend.get_added_tokens_decoder()) if (t.special) ids.add(id);
      for (const t of [...Object.values(this.specials), ...this.additionalSpecialTokens]) {
        const id = this.idOf(t);
        if (id !== undefined) ids.add(id);
      }
      this.specialIdCache = ids;
    }
    return this.specialIdCache;
  }

  private idOf(token: string | undefined): number | undefined {
    return token === undefined ? undefined : this.backend.token_to_id(token);
  }

  // ---- vocabulary -----------------------------------------------------------------------------------------------

  /** Vocabulary size including added tokens (Python's `len(tokenizer)`). */
  get length(): number {
    return this.backend.get_vocab(true).size;
  }

  getVocab(): Map<string, number> {
    return this.backend.get_vocab(true);
  }

  /** Token → id; unknown tokens map to the unk token's id (an error when there is none). */
  convertTokensToIds(token: string): number;
  convertTokensToIds(tokens: readonly string[]): number[];
  convertTokensToIds(tokens: string | readonly string[]): number | number[] {
    const one = (t: string): number => {
      const id = this.backend.token_to_id(t) ?? this.unkTokenId;
      if (id === undefined) throw new TokenizerError(`Token "${t}" is not in the vocabulary and there is no unk token.`);
      return id;
    };
    return typeof tokens === 'string' ? one(tokens) : tokens.map(one);
  }

  convertIdsToTokens(id: number): string;
  convertIdsToTokens(ids: ArrayLike<number>): string[];
  convertIdsToTokens(ids: number | ArrayLike<number>): string | string[] {
    const one = (id: number): string => {
      const t = Number.isInteger(id) ? this.backend.id_to_token(id) : undefined;
      if (t === undefined) throw new TokenizerError(`Token id ${id} is outside the vocabulary (size ${this.length}).`);
      return t;
    };
    return typeof ids === 'number' ? one(ids) : Array.from(ids, one);
  }

  // ---- encoding -------------------------------------------------------------------------------------------------

  /** Splits text into tokens, without special tokens unless asked. */
  tokenize(text: string, options: { addSpecialTokens?: boolean; textPair?: string } = {}): string[] {
    const a = this.backend.encode(text, { add_special_tokens: false }).tokens;
    const b = options.textPair === undefined ? undefined : this.backend.encode(options.textPair, { add_special_tokens: false }).tokens;
    const l = options.addSpecialTokens ? this.layout(b !== undefined).tokens : NO_SPECIALS;
    return [...l.prefix, ...a, ...l.middle, ...(b ?? []), ...l.suffix];
  }

  /** Text (or a text pair) to token ids, with special tokens by default. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    checkLength(options.maxLength, 'maxLength');
    return this.encodeRow(text, options.textPair, options, resolveTruncation(options.truncation, options.maxLength, false));
  }

  /** Encodes a batch with optional truncation and padding; the attention mask marks real tokens with 1. */
  encodeBatch(texts: string | readonly string[], options: BatchEncodeOptions = {}): BatchEncoding {
    const list = typeof texts === 'string' ? [texts] : texts;
    const pairs = typeof options.textPairs === 'string' ? [options.textPairs] : options.textPairs;
    if (pairs && pairs.length !== list.length) throw new TokenizerError(`Got ${list.length} texts but ${pairs.length} text pairs.`);
    checkLength(options.maxLength, 'maxLength');
    checkLength(options.padToMultipleOf, 'padToMultipleOf');
    const padding = options.padding === true ? 'longest' : options.padding === false || options.padding === 'do_not_pad' ? undefined : options.padding;
    const truncation = resolveTruncation(options.truncation, options.maxLength, padding !== undefined);
    const rows = list.map((t, i) => this.encodeRow(t, pairs?.[i], options, truncation));
    if (!padding) return { inputIds: rows, attentionMask: rows.map((r) => r.map(() => 1)) };
    return padBatch(rows, {
      strategy: padding,
      maxLength: options.maxLength ?? this.modelMaxLength,
      padToMultipleOf: options.padToMultipleOf,
      side: options.paddingSide ?? this.paddingSide,
      padId: this.padTokenId,
    });
  }

  private encodeRow(text: string, pair: string | undefined, o: EncodeOptions, truncation: ReturnType<typeof resolveTruncation>): number[] {
    if (typeof text !== 'string' || (pair !== undefined && typeof pair !== 'string')) throw new TokenizerError('Texts to encode must be strings.');
    let a = this.backend.encode(text, { add_special_tokens: false }).ids;
    let b = pair === undefined ? undefined : this.backend.encode(pair, { add_special_tokens: false }).ids;
    const l = o.addSpecialTokens === false ? undefined : this.layout(b !== undefined);
    const limit = o.maxLength ?? this.modelMaxLength;
    if (truncation && Number.isFinite(limit)) {
      [a, b] = truncateSequences(a, b, limit - (l ? layoutSize(l.tokens) : 0), truncation, o.truncationSide ?? this.truncationSide);
    }
    if (!l) return b ? [...a, ...b] : a;
    return [...l.prefix, ...a, ...l.middle, ...(b ?? []), ...l.suffix];
  }

  private layout(pair: boolean): IdLayout {
    let l = this.layouts.get(pair);
    if (!l) {
      const tokens = specialLayout(this.source, this.settings, pair);
      const ids = (ts: readonly string[]) => ts.map((t) => {
        const id = this.backend.token_to_id(t);
        if (id === undefined) throw new TokenizerError(`Special token "${t}" used by the post-processor is not in the vocabulary.`);
        return id;
      });
      l = { prefix: ids(tokens.prefix), middle: ids(tokens.middle), suffix: ids(tokens.suffix), tokens };
      this.layouts.set(pair, l);
    }
    return l;
  }

  // ---- decoding -------------------------------------------------------------------------------------------------

  /** Token ids to text. Ids outside the vocabulary are skipped, as the Rust tokenizers do. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ? this.specialIds() : undefined;
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id)) throw new TokenizerError(`decode expects integer token ids, got ${id} at position ${i}.`);
      if (skip?.has(id) || this.backend.id_to_token(id) === undefined) continue;
      kept.push(id);
    }
    if (kept.length === 0) return '';
    return this.backend.decode(kept, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces,
    });
  }

  batchDecode(sequences: readonly ArrayLike<number>[], options: DecodeOptions = {}): string[] {
    return sequences.map((ids) => this.decode(ids, options));
  }

  // ---- chat -----------------------------------------------------------------------------------------------------

  /** The default chat template, if any; assigning replaces it. */
  get chatTemplate(): string | undefined {
    return this.chatTemplates.get('default');
  }
  set chatTemplate(template: string | undefined) {
    if (template === undefined) this.chatTemplates.delete('default');
    else this.chatTemplates.set('default', template);
  }

  /**
   * Renders messages with the tokenizer's chat template (or `options.chatTemplate`), passing `messages`,
   * `add_generation_prompt`, `tools`, `documents` and the special tokens (`bos_token`, `eos_token`, ...) as
   * transformers does. Returns token ids (special tokens come from the template, none are added) or, with
   * `tokenize: false`, the string.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string | number[] {
    const template = selectChatTemplate(this.chatTemplates, options.chatTemplate, (options.tools?.length ?? 0) > 0);
    const rendered = renderChatTemplate(template, messages, options, this.specialTokensMap);
    return options.tokenize === false ? rendered : this.encode(rendered, { addSpecialTokens: false });
  }
}
