import { isActivationName } from '../../nn/activations.js';
import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';
import type { BaseModelConfig } from '../pretrained.js';
import { parseRopeParameters } from './rope.js';
import type { RopeParameters } from './rope.js';

/** Attention kind of one decoder layer (transformers' `layer_types` entries). */
export type AttentionLayerType = 'full_attention' | 'sliding_attention';

/**
 * transformers' `LlamaConfig`, with its defaults, in camelCase. It is also the shape of the Mistral and Qwen2
 * configs: one decoder implementation (`LlamaModel`) serves the three, and the fields where their Python classes
 * differ (projection biases, sliding windows) are explicit here.
 */
export interface LlamaConfig extends BaseModelConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** Key/value heads (grouped-query attention); defaults to `numAttentionHeads`. */
  readonly numKeyValueHeads: number;
  /** Per-head width; defaults to `hiddenSize / numAttentionHeads`. */
  readonly headDim: number;
  readonly hiddenAct: string;
  readonly maxPositionEmbeddings: number;
  readonly initializerRange: number;
  readonly rmsNormEps: number;
  /** RoPE settings, standardised from `rope_parameters` / `rope_scaling` / `rope_theta`. */
  readonly ropeParameters: RopeParameters;
  /** Bias on q_proj, k_proj and v_proj (Llama's `attention_bias`; always on for Qwen2, off for Mistral). */
  readonly attentionBias: boolean;
  /** Bias on o_proj (Llama's `attention_bias` too; off for Qwen2 and Mistral). */
  readonly oProjBias: boolean;
  /** Bias on the MLP projections (Llama's `mlp_bias`). */
  readonly mlpBias: boolean;
  readonly attentionDropout: number;
  /** Window of the `sliding_attention` layers, or null when no layer slides. */
  readonly slidingWindow: number | null;
  /** Attention kind of each layer. */
  readonly layerTypes: readonly AttentionLayerType[];
  /** `embed_tokens.padding_idx` (transformers passes `pad_token_id`; negative values count from the end). */
  readonly paddingIdx: number | null;
}

/** Defaults and field names of one architecture's config class, for {@link readDecoderConfig}. */
export interface DecoderConfigDefaults {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** null: same as the number of attention heads. */
  readonly numKeyValueHeads: number | null;
  readonly maxPositionEmbeddings: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Whether `hidden_size % num_attention_heads` must be 0 even with an explicit `head_dim` (Llama's check). */
  readonly requireDivisibleHidden: boolean;
}

/** The fields every Llama-family config reads the same way; the caller adds biases and attention layout. */
export type DecoderConfigBase = Omit<LlamaConfig, 'modelType' | 'attentionBias' | 'oProjBias' | 'mlpBias' | 'slidingWindow' | 'layerTypes' | 'raw'>;

/** Reads the fields shared by Llama, Mistral and Qwen2 configs, recording problems on `r`. */
export function readDecoderConfig(raw: RawConfig, r: ConfigReader, d: DecoderConfigDefaults, layerTypeNames: readonly string[] = []): DecoderConfigBase {
  const vocabSize = r.size('vocab_size', d.vocabSize);
  const hiddenSize = r.size('hidden_size', d.hiddenSize);
  const numAttentionHeads = r.size('num_attention_heads', d.numAttentionHeads);
  const kvRaw = raw['num_key_value_heads'];
  const numKeyValueHeads = kvRaw === null || (kvRaw === undefined && d.numKeyValueHeads === null) ? numAttentionHeads : r.size('num_key_value_heads', d.numKeyValueHeads ?? numAttentionHeads);
  const headDimGiven = raw['head_dim'] !== undefined && raw['head_dim'] !== null;
  const headDim = headDimGiven ? r.size('head_dim') : Math.floor(hiddenSize / numAttentionHeads);
  // Llama checks divisibility even with an explicit head_dim (`validate_architecture`); Mistral and Qwen2 floor.
  r.check(!d.requireDivisibleHidden || hiddenSize % numAttentionHeads === 0, 'num_attention_heads', `must divide hidden_size (${hiddenSize}), got ${numAttentionHeads}`);
  r.check(headDim > 0, 'head_dim', `hidden_size / num_attention_heads must be at least 1, got ${hiddenSize} / ${numAttentionHeads}`);
  r.check(numAttentionHeads % numKeyValueHeads === 0, 'num_key_value_heads', `must divide num_attention_heads (${numAttentionHeads}), got ${numKeyValueHeads}`);
  r.check(headDim % 2 === 0, 'head_dim', `RoPE needs an even head dimension, got ${headDim}`);
  const hiddenAct = r.string('hidden_act', 'silu');
  r.check(isActivationName(hiddenAct), 'hidden_act', `unknown activation "${hiddenAct}"`);
  const maxPositionEmbeddings = r.size('max_position_embeddings', d.maxPositionEmbeddings);
  const padRaw = raw['pad_token_id'];
  const paddingIdx = typeof padRaw === 'number' && Number.isInteger(padRaw) ? padRaw : null;
  r.check(paddingIdx === null || (paddingIdx < vocabSize && paddingIdx >= -vocabSize), 'pad_token_id', `must be within vocab_size (${vocabSize}) to be the embedding's padding_idx, got ${paddingIdx}`);
  const initializerRange = raw['initializer_range'] === null ? 0.02 : r.number('initializer_range', 0.02, { min: 0, max: 1 });
  return {
    vocabSize,
    hiddenSize,
    intermediateSize: r.size('intermediate_size', d.intermediateSize),
    numHiddenLayers: r.size('num_hidden_layers', d.numHiddenLayers),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct,
    maxPositionEmbeddings,
    // transformers: `std = config.initializer_range or 0.02`.
    initializerRange: initializerRange || 0.02,
    rmsNormEps: r.number('rms_norm_eps', 1e-6, { min: 0 }),
    ropeParameters: parseRopeParameters(raw, r, maxPositionEmbeddings, layerTypeNames),
    attentionDropout: raw['attention_dropout'] === null ? 0 : r.number('attention_dropout', 0, { min: 0, max: 1 }),
    tieWordEmbeddings: r.boolean('tie_word_embeddings', false),
    bosTokenId: raw['bos_token_id'] === undefined ? (d.bosTokenId === null ? undefined : [d.bosTokenId]) : r.tokenIds('bos_token_id'),
    eosTokenId: raw['eos_token_id'] === undefined ? (d.eosTokenId === null ? undefined : [d.eosTokenId]) : r.tokenIds('eos_token_id'),
    // A negative pad id (old Llama conversions use -1) is an embedding index only, not a token to pad with.
    padTokenId: paddingIdx !== null && paddingIdx < 0 ? undefined : r.tokenIds('pad_token_id'),
    paddingIdx,
  };
}

/** An optional size field (`int | None` in transformers): null stays null, absent gives `fallback`. */
export function nullableSize(raw: RawConfig, r: ConfigReader, key: string, fallback: number | null): number | null {
  const value = raw[key];
  if (value === null) return null;
  if (value === undefined) return fallback;
  return r.size(key);
}

export function parseLlamaConfig(raw: RawConfig = {}): LlamaConfig {
  const r = new ConfigReader(raw, 'Llama config.json');
  const base = readDecoderConfig(raw, r, {
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 11008,
    numHiddenLayers: 32,
    numAttentionHeads: 32,
    numKeyValueHeads: null,
    maxPositionEmbeddings: 2048,
    bosTokenId: 1,
    eosTokenId: 2,
    requireDivisibleHidden: true,
  });
  const attentionBias = r.boolean('attention_bias', false);
  const config: LlamaConfig = {
    modelType: 'llama',
    ...base,
    attentionBias,
    oProjBias: attentionBias,
    mlpBias: r.boolean('mlp_bias', false),
    slidingWindow: null,
    layerTypes: Array.from({ length: base.numHiddenLayers }, () => 'full_attention' as const),
    raw: { model_type: 'llama', ...raw },
  };
  r.done();
  return config;
}
