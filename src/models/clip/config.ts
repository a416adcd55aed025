import { isActivationName } from '../../nn/index.js';
import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';

/** transformers' `CLIPTextConfig`, with its defaults, in camelCase. */
export interface CLIPTextConfig {
  readonly modelType: 'clip_text_model';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly projectionDim: number | undefined;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: string;
  readonly layerNormEps: number;
  readonly attentionDropout: number;
  readonly initializerRange: number;
  readonly initializerFactor: number;
  readonly padTokenId: number[] | undefined;
  readonly bosTokenId: number[] | undefined;
  /**
   * Picks the pooled (EOS) position: `[2]` is the legacy value (pool at the argmax of the ids), any other id pools
   * at its first occurrence; none pools at position 0.
   */
  readonly eosTokenId: number[] | undefined;
  /** CLIP has no output embedding; kept for the common config shape. */
  readonly tieWordEmbeddings: boolean;
  /** The text config as read (`text_config` of a full CLIP config), unknown keys included. */
  readonly raw: RawConfig;
}

/**
 * Parses a `clip_text_model` config, or the `text_config` of a full CLIP config (`model_type: "clip"`), as
 * transformers' `CLIPTextConfig.from_pretrained` does.
 */
export function parseCLIPTextConfig(input: RawConfig = {}): CLIPTextConfig {
  let raw = input;
  if (input['model_type'] === 'clip') {
    const text = input['text_config'];
    raw = typeof text === 'object' && text !== null && !Array.isArray(text) ? (text as RawConfig) : {};
  }
  const r = new ConfigReader(raw, 'CLIP text config');
  const hiddenSize = r.size('hidden_size', 512);
  const numAttentionHeads = r.size('num_attention_heads', 8);
  const hiddenAct = r.string('hidden_act', 'quick_gelu');
  const projectionDim = raw['projection_dim'] === null ? undefined : r.size('projection_dim', 512);
  const eosTokenId = raw['eos_token_id'] === undefined ? [49407] : r.tokenIds('eos_token_id');
  const config: CLIPTextConfig = {
    modelType: 'clip_text_model',
    vocabSize: r.size('vocab_size', 49408),
    hiddenSize,
    intermediateSize: r.size('intermediate_size', 2048),
    projectionDim,
    numHiddenLayers: r.size('num_hidden_layers', 12),
    numAttentionHeads,
    maxPositionEmbeddings: r.size('max_position_embeddings', 77),
    hiddenAct,
    layerNormEps: r.number('layer_norm_eps', 1e-5, { min: 0 }),
    attentionDropout: r.number('attention_dropout', 0, { min: 0, max: 1 }),
    initializerRange: r.number('initializer_range', 0.02, { min: 0 }),
    initializerFactor: r.number('initializer_factor', 1, { min: 0 }),
    padTokenId: raw['pad_token_id'] === undefined ? [1] : r.tokenIds('pad_token_id'),
    bosTokenId: raw['bos_token_id'] === undefined ? [49406] : r.tokenIds('bos_token_id'),
    eosTokenId,
    tieWordEmbeddings: r.boolean('tie_word_embeddings', true),
    raw: { model_type: 'clip_text_model', ...raw },
  };
  r.check(hiddenSize % numAttentionHeads === 0, 'num_attention_heads', `must divide hidden_size (${hiddenSize}), got ${numAttentionHeads}`);
  r.check(isActivationName(hiddenAct), 'hidden_act', `unknown activation "${hiddenAct}"`);
  r.check((eosTokenId?.length ?? 1) === 1, 'eos_token_id', 'must be a single token id (it picks the pooled position)');
  r.done();
  return config;
}
