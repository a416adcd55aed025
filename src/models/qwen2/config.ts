import { ConfigReader } from '../config-fields.js';
import type { RawConfig } from '../config-fields.js';
import { nullableSize, readDecoderConfig } from '../llama/config.js';
import type { AttentionLayerType, LlamaConfig } from '../llama/config.js';

const layerTypeNames: readonly AttentionLayerType[] = ['full_attention', 'sliding_attention'];

/**
 * transformers' `Qwen2Config`, with its defaults, in camelCase: a Llama config with biases on q/k/v (not o), and
 * sliding-window attention on the layers from `max_window_layers` on when `use_sliding_window` is set.
 */
export interface Qwen2Config extends LlamaConfig {
  readonly modelType: 'qwen2';
  readonly useSlidingWindow: boolean;
  readonly maxWindowLayers: number;
}

export function parseQwen2Config(raw: RawConfig = {}): Qwen2Config {
  const r = new ConfigReader(raw, 'Qwen2 config.json');
  const base = readDecoderConfig(
    raw,
    r,
    {
      vocabSize: 151936,
      hiddenSize: 4096,
      intermediateSize: 22016,
      numHiddenLayers: 32,
      numAttentionHeads: 32,
      numKeyValueHeads: 32,
      maxPositionEmbeddings: 32768,
      bosTokenId: null,
      eosTokenId: null,
      requireDivisibleHidden: false,
    },
    layerTypeNames,
  );
  const useSlidingWindow = r.boolean('use_sliding_window', false);
  // transformers' __post_init__: the window exists only with use_sliding_window.
  const window = nullableSize(raw, r, 'sliding_window', 4096);
  const slidingWindow = useSlidingWindow ? window : null;
  const maxWindowLayers = r.number('max_window_layers', 28, { integer: true, min: 0 });
  const layerTypes = readLayerTypes(raw, r, base.numHiddenLayers, (i) =>
    slidingWindow !== null && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention',
  );
  r.check(
    slidingWindow !== null || !layerTypes.includes('sliding_attention'),
    'layer_types',
    'has sliding_attention layers but no sliding window (set use_sliding_window and sliding_window)',
  );
  const config: Qwen2Config = {
    modelType: 'qwen2',
    ...base,
    attentionBias: true,
    oProjBias: false,
    mlpBias: false,
    slidingWindow,
    layerTypes,
    useSlidingWindow,
    maxWindowLayers,
    raw: { model_type: 'qwen2', ...raw },
  };
  r.done();
  return config;
}

/** `layer_types` as given (checked), or as transformers derives it when absent or null. */
function readLayerTypes(raw: RawConfig, r: ConfigReader, layers: number, derive: (i: number) => AttentionLayerType): AttentionLayerType[] {
  const given = raw['layer_types'];
  if (given === undefined || given === null) return Array.from({ length: layers }, (_, i) => derive(i));
  const valid =
    Array.isArray(given) && given.length === layers && given.every((t) => (layerTypeNames as readonly unknown[]).includes(t));
  r.check(valid, 'layer_types', `must list ${layers} entries, each one of ${layerTypeNames.join(', ')}; got ${JSON.stringify(given)}`);
  return valid ? (given as AttentionLayerType[]) : Array.from({ length: layers }, (_, i) => derive(i));
}
