import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';

/** transformers' `GPT2Config`, with its defaults, in camelCase. */
export interface GPT2Config {
  readonly modelType: 'gpt2';
  readonly vocabSize: number;
  readonly nPositions: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  /** MLP width; `n_inner: null` in config.json means 4 * nEmbd. */
  readonly nInner: number;
  readonly activationFunction: string;
  readonly residPdrop: number;
  readonly embdPdrop: number;
  readonly attnPdrop: number;
  readonly layerNormEpsilon: number;
  readonly scaleAttnWeights: boolean;
  readonly scaleAttnByInverseLayerIdx: boolean;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number[] | undefined;
  readonly eosTokenId: number[] | undefined;
  readonly padTokenId: number[] | undefined;
  /** The file as read, unknown keys included, so saving reproduces it. */
  readonly raw: RawConfig;
}

export function parseGPT2Config(raw: RawConfig = {}): GPT2Config {
  const r = new ConfigReader(raw, 'GPT-2 config.json');
  const nEmbd = r.size('n_embd', 768);
  const nHead = r.size('n_head', 12);
  const nInner = raw['n_inner'] === null || raw['n_inner'] === undefined ? 4 * nEmbd : r.size('n_inner');
  const config: GPT2Config = {
    modelType: 'gpt2',
    vocabSize: r.size('vocab_size', 50257),
    nPositions: r.size('n_positions', 1024),
    nEmbd,
    nLayer: r.size('n_layer', 12),
    nHead,
    nInner,
    activationFunction: r.string('activation_function', 'gelu_new'),
    residPdrop: r.number('resid_pdrop', 0.1, { min: 0, max: 1 }),
    embdPdrop: r.number('embd_pdrop', 0.1, { min: 0, max: 1 }),
    attnPdrop: r.number('attn_pdrop', 0.1, { min: 0, max: 1 }),
    layerNormEpsilon: r.number('layer_norm_epsilon', 1e-5, { min: 0 }),
    scaleAttnWeights: r.boolean('scale_attn_weights', true),
    scaleAttnByInverseLayerIdx: r.boolean('scale_attn_by_inverse_layer_idx', false),
    tieWordEmbeddings: r.boolean('tie_word_embeddings', true),
    bosTokenId: r.tokenIds('bos_token_id'),
    eosTokenId: r.tokenIds('eos_token_id'),
    padTokenId: r.tokenIds('pad_token_id'),
    raw: { model_type: 'gpt2', ...raw },
  };
  r.check(nEmbd % nHead === 0, 'n_head', `must divide n_embd (${nEmbd}), got ${nHead}`);
  r.done();
  return config;
}
