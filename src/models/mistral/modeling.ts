import type { RawConfig } from '../config-fields.js';
import type { LlamaConfig } from '../llama/config.js';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel, LlamaRMSNorm, LlamaRotaryEmbedding } from '../llama/modeling.js';
import type { LlamaModuleClasses } from '../llama/modeling.js';
import { parseMistralConfig } from './config.js';
import type { MistralConfig } from './config.js';

// transformers' Mistral classes are Llama's with bias-free projections and a sliding-window mask; both come from
// the config here, so these classes only carry the names.

export class MistralRMSNorm extends LlamaRMSNorm {}
export class MistralRotaryEmbedding extends LlamaRotaryEmbedding {}
export class MistralMLP extends LlamaMLP {}
export class MistralAttention extends LlamaAttention {}

export class MistralDecoderLayer extends LlamaDecoderLayer {
  constructor(config: LlamaConfig, layerIdx: number, classes: LlamaModuleClasses = mistralModuleClasses) {
    super(config, layerIdx, classes);
  }
}

export class MistralModel extends LlamaModel {
  constructor(config: LlamaConfig, classes: LlamaModuleClasses = mistralModuleClasses) {
    super(config, classes);
  }
}

export const mistralModuleClasses: LlamaModuleClasses = {
  Model: MistralModel,
  DecoderLayer: MistralDecoderLayer,
  Attention: MistralAttention,
  MLP: MistralMLP,
  RMSNorm: MistralRMSNorm,
  RotaryEmbedding: MistralRotaryEmbedding,
};

/** transformers' `MistralForCausalLM`. */
export class MistralForCausalLM extends LlamaForCausalLM {
  static override readonly modelType: string = 'mistral';
  static override readonly moduleClasses: LlamaModuleClasses = mistralModuleClasses;

  static override parseConfig(raw: RawConfig): MistralConfig {
    return parseMistralConfig(raw);
  }

  declare readonly config: MistralConfig;
  declare model: MistralModel;

  constructor(config: MistralConfig | RawConfig = {}, options: { seed?: number } = {}) {
    super(config, options);
  }
}
