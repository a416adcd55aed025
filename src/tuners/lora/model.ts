import type { LayerKind, AdaptableLayer } from '../../nn/module.js';
import { getPatternKey } from '../matching.js';
import { BaseTuner } from '../tuner-model.js';
import type { BaseTunerLayer } from '../tuner-layer.js';
import type { LoraConfig } from './config.js';
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

  constructor(model: ConstructorParameters<typeof BaseTuner>[0], config: LoraConfig, adapterName = 'default') {
    super(model);
    this.injectAdapter(config, adapterName);
  }

  protected createLayer(target: AdaptableLayer, key: string, config: LoraConfig, adapterName: string): BaseTunerLayer {
    const Layer = loraLayerTable[target.kind as keyof typeof loraLayerTable];
    return new Layer(target, adapterName, layerOptions(config, key));
  }

  protected updateLayer(layer: BaseTunerLayer, key: string, config: LoraConfig, adapterName: string): void {
    (layer as LoraLayer).updateLayer(adapterName, layerOptions(config, key));
  }

  protected ownsLayer(layer: BaseTunerLayer): boolean {
    return layer instanceof LoraLayer;
  }

  /** PEFT corrects `fan_in_fan_out` to the targeted layers (true for GPT-2's Conv1D), with a warning. */
  protected override finalizeConfig(config: LoraConfig, targets: readonly { key: string; layer: AdaptableLayer }[]): LoraConfig {
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
        for (const [key, param] of this.model.namedParameters()) if (key.endsWith('bias') || key.includes('.bias')) param.trainable = true;
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
  const rankKey = getPatternKey(Object.keys(config.rankPattern), key);
  const alphaKey = getPatternKey(Object.keys(config.alphaPattern), key);
  return {
    r: config.rankPattern[rankKey] ?? config.r,
    loraAlpha: config.alphaPattern[alphaKey] ?? config.loraAlpha,
    loraDropout: config.loraDropout,
    initLoraWeights: config.initLoraWeights as boolean | 'gaussian',
    useRslora: config.useRslora,
    useDora: config.useDora,
    loraBias: config.loraBias,
  };
}
