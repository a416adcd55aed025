import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import type { IdsInput } from '../models/outputs.js';

/** What the streaming callback receives after each decoding step (greedy and sampling). */
export interface StreamEvent {
  /** 0 for the first new token. */
  readonly step: number;
  /** The token chosen for each batch row at this step (pad for rows already finished). */
  readonly tokens: readonly number[];
  /** Whether each row has produced an EOS token (this step included). */
  readonly finished: readonly boolean[];
}

/** transformers' `GenerationConfig` fields that peft-ts implements, in camelCase. */
export interface GenerationOptions {
  /** New tokens to generate at most. Takes precedence over `maxLength`. */
  maxNewTokens?: number;
  /** Total length (prompt + new) at most; default 20 as in transformers when neither is set. */
  maxLength?: number;
  minNewTokens?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed for sampling; unseeded sampling differs run to run. */
  seed?: number;
  numBeams?: number;
  /** Sequences returned per prompt: the best beams, or independent samples (rows grouped by prompt). */
  numReturnSequences?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  repetitionPenalty?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
  /** 1 for real tokens, 0 for (left) padding; defaults to all ones. */
  attentionMask?: IdsInput;
  /** Keep a KV cache so each step runs only the new token (default true); false recomputes the prefix. */
  useCache?: boolean;
  /** Called after every step of greedy or sampled decoding. */
  onToken?: (event: StreamEvent) => void;
}

/** Options after defaults: everything decoding needs, nothing optional except the callback and mask. */
export interface ResolvedGenerationOptions {
  maxNewTokens: number;
  minNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  seed: number | undefined;
  numBeams: number;
  numReturnSequences: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  repetitionPenalty: number;
  eosTokenIds: number[];
  padTokenId: number | undefined;
  useCache: boolean;
  onToken: ((event: StreamEvent) => void) | undefined;
}

const snakeToCamel: Record<string, keyof GenerationOptions> = {
  max_new_tokens: 'maxNewTokens',
  max_length: 'maxLength',
  min_new_tokens: 'minNewTokens',
  do_sample: 'doSample',
  temperature: 'temperature',
  top_k: 'topK',
  top_p: 'topP',
  num_beams: 'numBeams',
  num_return_sequences: 'numReturnSequences',
  length_penalty: 'lengthPenalty',
  early_stopping: 'earlyStopping',
  repetition_penalty: 'repetitionPenalty',
  eos_token_id: 'eosTokenId',
  pad_token_id: 'padTokenId',
  use_cache: 'useCache',
};

/**
 * Generation defaults from a `generation_config.json` (or a model `config.json`): the known keys, camelCased.
 * Keys peft-ts does not implement are ignored here; they never change decoding silently because only the
 * listed ones are read.
 */
export function generationDefaultsFromJson(raw: Readonly<Record<string, unknown>>): GenerationOptions {
  const out: Record<string, unknown> = {};
  for (const [snake, camel] of Object.entries(snakeToCamel)) {
    const value = raw[snake];
    if (value !== undefined && value !== null) out[camel] = value;
  }
  return out as GenerationOptions;
}

/** Merges call options over model defaults over transformers' defaults, and validates. */
export function resolveGenerationOptions(
  promptLength: number,
  options: GenerationOptions,
  defaults: GenerationOptions = {},
): ResolvedGenerationOptions {
  const o = { ...defaults, ...stripUndefined(options) };
  const issues: ConfigIssue[] = [];
  const check = (ok: boolean, key: string, message: string) => {
    if (!ok) issues.push({ code: 'invalid_value', path: [key], message });
  };
  // maxNewTokens given at call time beats a maxLength default, and vice versa.
  let maxNewTokens: number;
  if (options.maxNewTokens !== undefined) maxNewTokens = options.maxNewTokens;
  else if (options.maxLength !== undefined) maxNewTokens = options.maxLength - promptLength;
  else if (o.maxNewTokens !== undefined) maxNewTokens = o.maxNewTokens;
  else maxNewTokens = (o.maxLength ?? 20) - promptLength;
  check(Number.isInteger(maxNewTokens) && maxNewTokens >= 0, 'maxNewTokens', `must be a non-negative integer (prompt length ${promptLength}), got ${maxNewTokens}`);
  const eos = o.eosTokenId === undefined ? [] : Array.isArray(o.eosTokenId) ? o.eosTokenId : [o.eosTokenId];
  const resolved: ResolvedGenerationOptions = {
    maxNewTokens,
    minNewTokens: o.minNewTokens ?? 0,
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 50,
    topP: o.topP ?? 1,
    seed: o.seed,
    numBeams: o.numBeams ?? 1,
    numReturnSequences: o.numReturnSequences ?? 1,
    lengthPenalty: o.lengthPenalty ?? 1,
    earlyStopping: o.earlyStopping ?? false,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    eosTokenIds: eos,
    // transformers falls back to the (first) EOS id for padding finished rows.
    padTokenId: o.padTokenId ?? eos[0],
    useCache: o.useCache ?? true,
    onToken: o.onToken,
  };
  check(resolved.temperature > 0, 'temperature', `must be > 0, got ${resolved.temperature}`);
  check(Number.isInteger(resolved.topK) && resolved.topK >= 0, 'topK', `must be a non-negative integer, got ${resolved.topK}`);
  check(resolved.topP > 0 && resolved.topP <= 1, 'topP', `must be in (0, 1], got ${resolved.topP}`);
  check(Number.isInteger(resolved.numBeams) && resolved.numBeams >= 1, 'numBeams', `must be a positive integer, got ${resolved.numBeams}`);
  const n = resolved.numReturnSequences;
  check(Number.isInteger(n) && n >= 1, 'numReturnSequences', `must be a positive integer, got ${n}`);
  check(
    n === 1 || resolved.doSample || n <= resolved.numBeams,
    'numReturnSequences',
    resolved.numBeams > 1 ? `must be <= numBeams (${resolved.numBeams}), got ${n}` : `greedy decoding returns one sequence per prompt; set doSample or numBeams to return ${n}`,
  );
  check(resolved.repetitionPenalty > 0, 'repetitionPenalty', `must be > 0, got ${resolved.repetitionPenalty}`);
  check(!(resolved.numBeams > 1 && resolved.doSample), 'doSample', 'beam sampling (doSample with numBeams > 1) is not supported; use one or the other');
  check(!(resolved.numBeams > 1 && resolved.onToken), 'onToken', 'streaming is not available with beam search (as in transformers)');
  if (issues.length) throw new ConfigError(issues, 'generation options');
  return resolved;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
