import { ConfigError, UnsupportedLayerError } from '../../errors.js';
import type { LayerKind, AdaptableLayer } from '../../nn/module.js';
import { deriveSeed } from '../../nn/init.js';
import { resolveRankAlpha } from '../matching.js';
import { BaseTuner } from '../tuner-model.js';
import type { BaseTunerLayer } from '../tuner-layer.js';
import type { LoraConfig } from './config.js';
import { DORA_KINDS } from './dora.js';
import { LoraConv, LoraEmbedding, LoraLayer, LoraLinear } from './layer.js';
import type { LoraLayerOptions } from './layer.js';

/** LoRA layer class for each layer kind (PEFT's `dispatch_default`; GPT-2's Conv1D is a Linear with fan_in_fan_out). */
export const loraLayerTable = {
  linear: LoraLinear,
  gpt2_conv1d: LoraLinear,
  embedding: LoraEmbedding,
  conv1d: LoraConv,
  conv2d: LoraConv,
} as const satisfies Partial<Record<LayerKind, new (base: AdaptableLayer, name: string, options: LoraLayerOptions) => LoraLayer>>;

/** PEFT's `LoraModel`: LoRA adapters injected into a model. */
export class LoraModel extends BaseTuner<LoraConfig> {
  readonly method = 'LoRA';
  protected readonly supportedKinds = Object.keys(loraLayerTable) as LayerKind[];

  /** `seed` (peft-ts only) makes the initial adapter weights reproducible: each module draws from its own seed. */
  constructor(model: ConstructorParameters<typeof BaseTuner>[0], config: LoraConfig, adapterName = 'default', private readonly options: { seed?: number } = {}) {
    super(model);
    this.injectAdapter(config, adapterName);
  }

  protected createLayer(target: AdaptableLayer, key: string, config: LoraConfig, adapterName: string): BaseTunerLayer {
    const Layer = loraLayerTable[target.kind as keyof typeof loraLayerTable];
    return new Layer(target, adapterName, this.optionsFor(config, key, adapterName));
  }

  protected updateLayer(layer: BaseTunerLayer, key: string, config: LoraConfig, adapterName: string): void {
    (layer as LoraLayer).updateLayer(adapterName, this.optionsFor(config, key, adapterName));
  }

  private optionsFor(config: LoraConfig, key: string, adapterName: string): LoraLayerOptions {
    const seed = this.options.seed;
    return { ...layerOptions(config, key), ...(seed === undefined ? {} : { seed: deriveSeed(seed, `${adapterName}:${key}`) }) };
  }

  protected ownsLayer(layer: BaseTunerLayer): boolean {
    return layer instanceof LoraLayer;
  }

  /**
   * Refuses, before any layer is touched, what PEFT refuses while injecting (DoRA or `lora_bias` on a layer kind
   * without them, a second adapter with a trainable `bias`); then corrects `fan_in_fan_out` to the targeted layers
   * (true for GPT-2's Conv1D), with a warning, as PEFT does.
   */
  protected override finalizeConfig(config: LoraConfig, targets: readonly { key: string; layer: AdaptableLayer }[]): LoraConfig {
    for (const { key, layer } of targets) {
      if (config.useDora && !DORA_KINDS.includes(layer.kind)) throw new UnsupportedLayerError(key, layer.kind, DORA_KINDS, 'DoRA in peft-ts');
      if (config.loraBias && layer.kind === 'embedding') {
        throw new UnsupportedLayerError(key, layer.kind, this.supportedKinds.filter((k) => k !== 'embedding'), 'lora_bias');
      }
      const groups = (layer as { groups?: number }).groups ?? 1;
      const { r } = layerOptions(config, key);
      if (groups > 1 && r % groups !== 0) {
        const message = `${key} is a convolution with groups=${groups}: LoRA needs a rank divisible by groups, got r=${r}.`;
        throw new ConfigError([{ code: 'invalid_value', path: ['r'], message }], 'LoraConfig');
      }
    }
    if (config.bias !== 'none' && [...this.peftConfig.values()].some((c) => c.bias !== 'none')) {
      const message = 'LoRA supports only 1 adapter with bias; when using several adapters, set bias to "none" for all but one.';
      throw new ConfigError([{ code: 'invalid_value', path: ['bias'], message }], 'LoraConfig');
    }
    const conv1d = targets.some((t) => t.layer.kind === 'gpt2_conv1d');
    const linear = targets.some((t) => t.layer.kind === 'linear');
    if (conv1d && !config.fanInFanOut) {
      console.warn('fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.');
      return config.with({ fanInFanOut: true });
    }
    if (linear && !conv1d && config.fanInFanOut) {
      console.warn('fan_in_fan_out is set to True but the target module is `torch.nn.Linear`. Setting fan_in_fan_out to False.');
      return config.with({ fanInFanOut: false });
    }
    return config;
  }

  /** `bias: "all"` trains every bias of the model, `"lora_only"` the biases of LoRA-wrapped layers. */
  protected override afterMarkTrainable(trainable: boolean): void {
    if (!trainable) return;
    for (const name of this.activeAdapters) {
      const bias = this.peftConfig.get(name)?.bias ?? 'none';
      if (bias === 'all') {
        for (const [key, param] of this.model.namedParameters()) if (key === 'bias' || key.endsWith('.bias')) param.trainable = true;
      } else if (bias === 'lora_only') {
        for (const [, layer] of this.tunerLayers()) {
          const b = (layer.base_layer as { bias?: { trainable: boolean } | null }).bias;
          if (b) b.trainable = true;
        }
      }
    }
  }
}

/** The options of one targeted module, after `rankPattern`/`alphaPattern`. */
export function layerOptions(config: LoraConfig, key: string): LoraLayerOptions {
  const { r, alpha } = resolveRankAlpha(config, key);
  return {
    r,
    loraAlpha: alpha,
    loraDropout: config.loraDropout,
    initLoraWeights: config.initLoraWeights as boolean | 'gaussian',
    useRslora: config.useRslora,
    useDora: config.useDora,
    loraBias: config.loraBias,
  };
}
