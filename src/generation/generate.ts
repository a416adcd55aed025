import { tf } from '../engine/tf.js';
import { ShapeError } from '../errors.js';
import type { ForwardContext } from '../nn/context.js';
import type { CausalLMInput, CausalLMOutput, IdsInput } from '../models/outputs.js';
import { beamSearch } from './beam-search.js';
import { KVCache } from './cache.js';
import { resolveGenerationOptions } from './config.js';
import type { GenerationOptions, ResolvedGenerationOptions } from './config.js';
import {
  applyMinNewTokens,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  argmax,
  sampleIndex,
} from './logits-process.js';
import { mulberry32 } from '../nn/dropout.js';

/** What `generate` needs from a model: a causal-LM forward and its generation defaults. */
export interface GenerativeModel {
  forward(input: CausalLMInput, ctx?: ForwardContext): CausalLMOutput;
  readonly generationConfig: GenerationOptions;
  /** A fresh cache for one generate call (X-LoRA keeps one per pass); default a plain KVCache. */
  createCache?(): KVCache;
}

/**
 * Sequences being decoded: token rows, their attention mask, and the KV cache (if any) that already holds
 * every position but the last ones still to be fed.
 */
export class DecodingState {
  constructor(
    readonly rows: number[][],
    readonly mask: number[][],
    readonly cache: KVCache | undefined,
  ) {}

  /** Next-token scores (last-position logits) of every row, running only the uncached positions. */
  async nextScores(model: GenerativeModel, ctx?: ForwardContext): Promise<Float32Array[]> {
    const total = this.rows[0]!.length;
    const fresh = total - (this.cache?.getSeqLength() ?? 0);
    const positions = positionIdsFromMask(this.mask);
    const output = model.forward(
      {
        inputIds: this.rows.map((r) => r.slice(total - fresh)),
        attentionMask: this.mask,
        positionIds: positions.map((r) => r.slice(total - fresh)),
        ...(this.cache ? { pastKeyValues: this.cache } : {}),
      },
      ctx,
    );
    const [batch, seq, vocab] = output.logits.shape;
    const last = tf.tidy(() => tf.slice(output.logits, [0, seq - 1, 0], [batch, 1, vocab]));
    output.logits.dispose();
    output.loss?.dispose();
    const data = (await last.data()) as Float32Array;
    last.dispose();
    return Array.from({ length: batch }, (_, b) => data.slice(b * vocab, (b + 1) * vocab));
  }

  append(tokens: readonly number[]): void {
    this.rows.forEach((row, b) => row.push(tokens[b]!));
    for (const m of this.mask) m.push(1);
  }

  dispose(): void {
    this.cache?.dispose();
  }
}

/** The model's cache for one generate call, sized for prompt plus new tokens; undefined without `useCache`. */
export function createDecodingCache(model: GenerativeModel, o: ResolvedGenerationOptions, promptLength: number): KVCache | undefined {
  if (!o.useCache) return undefined;
  const cache = model.createCache?.() ?? new KVCache();
  cache.reserve(promptLength + o.maxNewTokens);
  return cache;
}

/**
 * transformers' `generate` for decoder-only models: greedy, sampling (temperature, top-k, top-p, seeded) or
 * beam search, with left-padded batches and a KV cache. Returns each prompt row followed by its new tokens;
 * rows that finish early are padded with the pad (or EOS) token, as transformers does.
 */
export async function generate(
  model: GenerativeModel,
  inputIds: IdsInput,
  options: GenerationOptions = {},
  ctx?: ForwardContext,
): Promise<number[][]> {
  const prompts = await idsToRows(inputIds, 'inputIds');
  const mask = options.attentionMask ? await idsToRows(options.attentionMask, 'attentionMask') : prompts.map((r) => r.map(() => 1));
  if (mask.length !== prompts.length || mask.some((m, i) => m.length !== prompts[i]!.length)) {
    throw new ShapeError('attentionMask must have the same shape as inputIds.');
  }
  const resolved = resolveGenerationOptions(prompts[0]!.length, options, model.generationConfig);
  if (resolved.numBeams > 1) return beamSearch(model, prompts, mask, resolved, ctx);
  // Several samples per prompt: each prompt repeated, its copies adjacent, as transformers expands inputs.
  const copies = <T>(rows: T[][]) => rows.flatMap((r) => Array.from({ length: resolved.numReturnSequences }, () => [...r]));
  const state = new DecodingState(copies(prompts), copies(mask), createDecodingCache(model, resolved, prompts[0]!.length));
  try {
    await decodeGreedyOrSample(model, state, resolved, ctx);
  } finally {
    state.dispose();
  }
  return state.rows;
}

async function decodeGreedyOrSample(
  model: GenerativeModel,
  state: DecodingState,
  o: ResolvedGenerationOptions,
  ctx?: ForwardContext,
): Promise<void> {
  // Seeded for reproducible sampling; PyTorch's RNG stream cannot be reproduced anyway.
  const random = mulberry32(o.seed ?? Math.floor(Math.random() * 0x100000000));
  const finished = state.rows.map(() => false);
  for (let step = 0; step < o.maxNewTokens; step++) {
    const scores = await state.nextScores(model, ctx);
    const tokens = scores.map((row, b) => {
      if (finished[b] && o.padTokenId !== undefined) return o.padTokenId;
      applyRepetitionPenalty(row, state.rows[b]!, o.repetitionPenalty);
      applyMinNewTokens(row, step, o.minNewTokens, o.eosTokenIds);
      if (!o.doSample) return argmax(row);
      applyTemperature(row, o.temperature);
      applyTopK(row, o.topK);
      applyTopP(row, o.topP);
      return sampleIndex(row, random());
    });
    tokens.forEach((t, b) => {
      if (o.eosTokenIds.includes(t)) finished[b] = true;
    });
    state.append(tokens);
    o.onToken?.({ step, tokens, finished: [...finished] });
    if (finished.every(Boolean)) break;
  }
}

/** transformers' positions for padded batches: cumulative count of attended tokens minus one; 1 at padding. */
export function positionIdsFromMask(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((row) => {
    let seen = 0;
    return row.map((m) => (m ? seen++ : 1));
  });
}

async function idsToRows(ids: IdsInput, name: string): Promise<number[][]> {
  if (ids instanceof tf.Tensor) {
    if (ids.rank !== 2) throw new ShapeError(`${name} must be 2-D [batch, seq], got shape [${ids.shape.join(', ')}].`);
    return (await ids.array()) as number[][];
  }
  if (!Array.isArray(ids) || ids.length === 0 || ids.some((r) => !Array.isArray(r) || r.length !== ids[0]!.length)) {
    throw new ShapeError(`${name} must be a non-empty rectangular number[][] (pad rows to one length; the tokenizer's encodeBatch does).`);
  }
  if (ids[0]!.length === 0) throw new ShapeError(`${name} rows must not be empty.`);
  return ids.map((r) => [...r]);
}
