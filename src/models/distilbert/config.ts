import { isActivationName } from '../../nn/index.js';
import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';
import { readClassificationConfig } from '../encoder.js';
import type { ClassificationConfig } from '../encoder.js';

/** transformers' `DistilBertConfig`, with its defaults, in camelCase (plus the label fields every config has). */
export interface DistilBertConfig extends ClassificationConfig {
  readonly modelType: 'distilbert';
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
  /** Fixed sin/cos position embeddings (still a saved parameter, as in transformers). */
  readonly sinusoidalPosEmbds: boolean;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly dim: number;
  /** FFN width. */
  readonly hiddenDim: number;
  readonly dropout: number;
  readonly attentionDropout: number;
  readonly activation: string;
  readonly initializerRange: number;
  readonly qaDropout: number;
  readonly seqClassifDropout: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number[] | undefined;
  readonly eosTokenId: number[] | undefined;
  /** Also the `padding_idx` of `word_embeddings`. */
  readonly padTokenId: number[] | undefined;
  /** The file as read, unknown keys included, so saving reproduces it. */
  readonly raw: RawConfig;
}

export function parseDistilBertConfig(raw: RawConfig = {}): DistilBertConfig {
  // transformers' attribute_map: hidden_size -> dim, num_attention_heads -> n_heads, num_hidden_layers -> n_layers.
  const aliased: Record<string, unknown> = { ...raw };
  for (const [alias, key] of [['hidden_size', 'dim'], ['num_attention_heads', 'n_heads'], ['num_hidden_layers', 'n_layers']] as const) {
    if (aliased[key] === undefined && aliased[alias] !== undefined) aliased[key] = aliased[alias];
  }
  const r = new ConfigReader(aliased, 'DistilBERT config.json');
  const dim = r.size('dim', 768);
  const nHeads = r.size('n_heads', 12);
  const padTokenId = raw['pad_token_id'] === undefined ? [0] : r.tokenIds('pad_token_id');
  const config: DistilBertConfig = {
    modelType: 'distilbert',
    vocabSize: r.size('vocab_size', 30522),
    maxPositionEmbeddings: r.size('max_position_embeddings', 512),
    sinusoidalPosEmbds: r.boolean('sinusoidal_pos_embds', false),
    nLayers: r.size('n_layers', 6),
    nHeads,
    dim,
    hiddenDim: r.size('hidden_dim', 4 * 768),
    dropout: r.number('dropout', 0.1, { min: 0, max: 1 }),
    attentionDropout: r.number('attention_dropout', 0.1, { min: 0, max: 1 }),
    activation: r.string('activation', 'gelu'),
    initializerRange: r.number('initializer_range', 0.02, { min: 0 }),
    qaDropout: r.number('qa_dropout', 0.1, { min: 0, max: 1 }),
    seqClassifDropout: r.number('seq_classif_dropout', 0.2, { min: 0, max: 1 }),
    tieWordEmbeddings: r.boolean('tie_word_embeddings', true),
    bosTokenId: r.tokenIds('bos_token_id'),
    eosTokenId: r.tokenIds('eos_token_id'),
    padTokenId,
    ...readClassificationConfig(r, raw),
    raw: { model_type: 'distilbert', ...raw },
  };
  r.check(dim % nHeads === 0, 'n_heads', `must divide dim (${dim}), got ${nHeads}`);
  r.check(isActivationName(config.activation), 'activation', `unknown activation "${config.activation}"`);
  r.check((padTokenId?.length ?? 1) === 1, 'pad_token_id', 'must be a single token id');
  r.done();
  return config;
}
