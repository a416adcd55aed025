import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';
import { nullableSize, readDecoderConfig } from '../llama/config.js';
import type { AttentionLayerType, LlamaConfig } from '../llama/config.js';

/**
 * transformers' `MistralConfig`, with its defaults, in camelCase: a Llama config without biases whose every layer
 * attends over a sliding window of `sliding_window` positions (none when it is null).
 */
export interface MistralConfig extends LlamaConfig {
  readonly modelType: 'mistral';
}

export function parseMistralConfig(raw: RawConfig = {}): MistralConfig {
  const r = new ConfigReader(raw, 'Mistral config.json');
  const base = readDecoderConfig(raw, r, {
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numHiddenLayers: 32,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    maxPositionEmbeddings: 4096 * 32,
    bosTokenId: 1,
    eosTokenId: 2,
    requireDivisibleHidden: false,
  });
  const slidingWindow = nullableSize(raw, r, 'sliding_window', 4096);
  const config: MistralConfig = {
    modelType: 'mistral',
    ...base,
    attentionBias: false,
    oProjBias: false,
    mlpBias: false,
    slidingWindow,
    // transformers' MistralModel uses the sliding-window mask on every layer when sliding_window is set (a
    // `layer_types` key is ignored with a warning there, and here).
    layerTypes: Array.from({ length: base.numHiddenLayers }, (): AttentionLayerType => (slidingWindow === null ? 'full_attention' : 'sliding_attention')),
    raw: { model_type: 'mistral', ...raw },
  };
  r.done();
  return config;
}
