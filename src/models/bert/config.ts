import { isActivationName } from '../../nn/index.js';
import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';
import { readClassificationConfig } from '../encoder.js';
import type { ClassificationConfig } from '../encoder.js';

/** transformers' `BertConfig`, with its defaults, in camelCase (plus the label fields every config has). */
export interface BertConfig extends ClassificationConfig {
  readonly modelType: 'bert';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly intermediateSize: number;
  readonly hiddenAct: string;
  readonly hiddenDropoutProb: number;
  readonly attentionProbsDropoutProb: number;
  readonly maxPositionEmbeddings: number;
  readonly typeVocabSize: number;
  readonly initializerRange: number;
  readonly layerNormEps: number;
  /** Dropout before the classifier; `classifier_dropout: null` means hiddenDropoutProb. */
  readonly classifierDropout: number;
  /** A causal (decoder) BERT: each token attends to itself and earlier tokens only. */
  readonly isDecoder: boolean;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number[] | undefined;
  readonly eosTokenId: number[] | undefined;
  /** Also the `padding_idx` of `word_embeddings`. */
  readonly padTokenId: number[] | undefined;
  /** The file as read, unknown keys included, so saving reproduces it. */
  readonly raw: RawConfig;
}

export function parseBertConfig(raw: RawConfig = {}): BertConfig {
  const r = new ConfigReader(raw, 'BERT config.json');
  const hiddenSize = r.size('hidden_size', 768);
  const numAttentionHeads = r.size('num_attention_heads', 12);
  const hiddenDropoutProb = r.number('hidden_dropout_prob', 0.1, { min: 0, max: 1 });
  const classifierDropout =
    raw['classifier_dropout'] === null || raw['classifier_dropout'] === undefined
      ? hiddenDropoutProb
      : r.number('classifier_dropout', 0.1, { min: 0, max: 1 });
  const padTokenId = raw['pad_token_id'] === undefined ? [0] : r.tokenIds('pad_token_id');
  const config: BertConfig = {
    modelType: 'bert',
    vocabSize: r.size('vocab_size', 30522),
    hiddenSize,
    numHiddenLayers: r.size('num_hidden_layers', 12),
    numAttentionHeads,
    intermediateSize: r.size('intermediate_size', 3072),
    hiddenAct: r.string('hidden_act', 'gelu'),
    hiddenDropoutProb,
    attentionProbsDropoutProb: r.number('attention_probs_dropout_prob', 0.1, { min: 0, max: 1 }),
    maxPositionEmbeddings: r.size('max_position_embeddings', 512),
    typeVocabSize: r.size('type_vocab_size', 2),
    initializerRange: r.number('initializer_range', 0.02, { min: 0 }),
    layerNormEps: r.number('layer_norm_eps', 1e-12, { min: 0 }),
    classifierDropout,
    isDecoder: r.boolean('is_decoder', false),
    tieWordEmbeddings: r.boolean('tie_word_embeddings', true),
    bosTokenId: r.tokenIds('bos_token_id'),
    eosTokenId: r.tokenIds('eos_token_id'),
    padTokenId,
    ...readClassificationConfig(r, raw),
    raw: { model_type: 'bert', ...raw },
  };
  r.check(hiddenSize % numAttentionHeads === 0, 'num_attention_heads', `must divide hidden_size (${hiddenSize}), got ${numAttentionHeads}`);
  r.check(isActivationName(config.hiddenAct), 'hidden_act', `unknown activation "${config.hiddenAct}"`);
  r.check((padTokenId?.length ?? 1) === 1, 'pad_token_id', 'must be a single token id');
  r.check(!r.boolean('add_cross_attention', false), 'add_cross_attention', 'cross-attention (BERT as a seq2seq decoder) is not supported');
  const positionType = raw['position_embedding_type'];
  r.check(
    positionType === undefined || positionType === null || positionType === 'absolute',
    'position_embedding_type',
    `only "absolute" position embeddings are supported (as in transformers 5), got ${JSON.stringify(positionType)}`,
  );
  r.done();
  return config;
}
