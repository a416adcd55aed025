import type { RawConfig } from '../config-fields.js';
import type { LlamaConfig } from '../llama/config.js';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel, LlamaRMSNorm, LlamaRotaryEmbedding } from '../llama/modeling.js';
import type { LlamaModuleClasses } from '../llama/modeling.js';
import { parseQwen2Config } from './config.js';
import type { Qwen2Config } from './config.js';

// transformers' Qwen2 classes are Llama's with q/k/v biases, a bias-free o_proj and MLP, and per-layer sliding
// windows (`layer_types`); all of that comes from the config here, so these classes only carry the names.

export class Qwen2RMSNorm extends LlamaRMSNorm {}
export class Qwen2RotaryEmbedding extends LlamaRotaryEmbedding {}
export class Qwen2MLP extends LlamaMLP {}
export class Qwen2Attention extends LlamaAttention {}

export class Qwen2DecoderLayer extends LlamaDecoderLayer {
  constructor(config: LlamaConfig, layerIdx: number, classes: LlamaModuleClasses = qwen2ModuleClasses) {
    super(config, layerIdx, classes);
  }
}

export class Qwen2Model extends LlamaModel {
  constructor(config: LlamaConfig, classes: LlamaModuleClasses = qwen2ModuleClasses) {
    super(config, classes);
  }
}

export const qwen2ModuleClasses: LlamaModuleClasses = {
  Model: Qwen2Model,
  DecoderLayer: Qwen2DecoderLayer,
  Attention: Qwen2Attention,
  MLP: Qwen2MLP,
  RMSNorm: Qwen2RMSNorm,
  RotaryEmbedding: Qwen2RotaryEmbedding,
};

/** transformers' `Qwen2ForCausalLM`. */
export class Qwen2ForCausalLM extends LlamaForCausalLM {
  static override readonly modelType: string = 'qwen2';
  static override readonly moduleClasses: LlamaModuleClasses = qwen2ModuleClasses;

  static override parseConfig(raw: RawConfig): Qwen2Config {
    return parseQwen2Config(raw);
  }

  declare readonly config: Qwen2Config;
  declare model: Qwen2Model;

  constructor(config: Qwen2Config | RawConfig = {}, options: { seed?: number } = {}) {
    super(config, options);
  }
}
