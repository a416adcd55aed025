import type { AdaptableLayer, LayerKind, Module } from '../../nn/module.js';
import { deriveSeed } from '../../nn/init.js';
import { resolveRankAndAlpha } from '../lycoris.js';
import { BaseTuner } from '../tuner-model.js';
import type { BaseTunerLayer } from '../tuner-layer.js';
import type { LoHaConfig } from './config.js';
import { LoHaConv1d, LoHaConv2d, LoHaLayer, LoHaLinear } from './layer.js';
import type { LoHaLayerOptions } from './layer.js';

/**
 * LoHa layer class for each layer kind (PEFT's `LoHaModel.layers_mapping`: `nn.Conv2d`, `nn.Conv1d`,
 * `nn.Linear`). Anything else, GPT-2's `Conv1D` and `Embedding` included, is an `UnsupportedLayerError` (PEFT
 * raises `TypeError`).
 */
export const lohaLayerTable = {
  linear: LoHaLinear,
  conv1d: LoHaConv1d,
  conv2d: LoHaConv2d,
} as const satisfies Partial<Record<LayerKind, new (base: AdaptableLayer, name: string, options: LoHaLayerOptions) => LoHaLayer>>;

export interface LoHaModelOptions {
  /**
   * PEFT's `low_cpu_mem_usage`: create the adapter tensors without drawing initial values (zeros, so the adapter
   * is an identity until weights are loaded into it). TF.js has no meta device, so memory use is the same; only
   * the random draws are skipped.
   */
  lowCpuMemUsage?: boolean;
  /**
   * Makes the initial adapter tensors and the rank/module dropout masks reproducible: each adapted module gets
   * its own seed derived from this one, the module path and the adapter name. (peft-ts only; PEFT draws from
   * torch's global generator.)
   */
  seed?: number;
}

/**
 * PEFT's `LoHaModel`: LoHa (low-rank Hadamard product, FedPara) adapters injected into a model, in place.
 *
 * ```ts
 * const config = new LoHaConfig({ r: 8, alpha: 32, targetModules: ['k_proj', 'q_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] });
 * const textEncoder = new LoHaModel(new CLIPTextModel(clipConfig), config, 'default');
 * textEncoder.forward({ inputIds });                   // or: getPeftModel(model, config) for save/load and adapter management
 * ```
 */
export class LoHaModel extends BaseTuner<LoHaConfig> {
  readonly method = 'LoHa';
  /** PEFT's `prefix`: every LoHa tensor name starts with it. */
  static readonly prefix = 'hada_';
  protected readonly supportedKinds = Object.keys(lohaLayerTable) as LayerKind[];
  private readonly lohaOptions: LoHaModelOptions;

  constructor(model: Module, config: LoHaConfig, adapterName = 'default', options: LoHaModelOptions = {}) {
    super(model);
    this.lohaOptions = { ...options };
    this.injectAdapter(config, adapterName);
  }

  protected createLayer(target: AdaptableLayer, key: string, config: LoHaConfig, adapterName: string): BaseTunerLayer {
    const Layer = lohaLayerTable[target.kind as keyof typeof lohaLayerTable];
    return new Layer(target, adapterName, this.layerOptions(config, key, adapterName));
  }

  protected updateLayer(layer: BaseTunerLayer, key: string, config: LoHaConfig, adapterName: string): void {
    (layer as LoHaLayer).updateLayer(adapterName, this.layerOptions(config, key, adapterName));
  }

  protected ownsLayer(layer: BaseTunerLayer): boolean {
    return layer instanceof LoHaLayer;
  }

  /** The options of one targeted module, after `rankPattern` / `alphaPattern`. */
  layerOptions(config: LoHaConfig, key: string, adapterName: string): LoHaLayerOptions {
    return lohaLayerOptions(config, key, {
      ...(this.lohaOptions.seed === undefined ? {} : { seed: deriveSeed(this.lohaOptions.seed, `${adapterName}:${key}`) }),
      ...(this.lohaOptions.lowCpuMemUsage ? { skipInit: true } : {}),
    });
  }
}

/** `LoHaLayerOptions` for module `key` (rank/alpha patterns applied as PEFT's `_create_and_replace` does). */
export function lohaLayerOptions(config: LoHaConfig, key: string, extra: { seed?: number; skipInit?: boolean } = {}): LoHaLayerOptions {
  return {
    ...resolveRankAndAlpha(config, key),
    rankDropout: config.rankDropout,
    moduleDropout: config.moduleDropout,
    initWeights: config.initWeights,
    useEffectiveConv2d: config.useEffectiveConv2d,
    ...extra,
  };
}
