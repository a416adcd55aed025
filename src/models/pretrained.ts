import type { tf } from '../engine/tf.js';
import { Module } from '../nn/module.js';
import type { ForwardContext } from '../nn/context.js';
import { generate } from '../generation/generate.js';
import type { GenerationOptions } from '../generation/config.js';
import type { RawConfig } from './config-fields.js';
import type { CausalLMInput, CausalLMOutput, IdsInput } from './outputs.js';

/** Fields every architecture's parsed config has. */
export interface BaseModelConfig {
  readonly modelType: string;
  readonly eosTokenId: number[] | undefined;
  readonly padTokenId: number[] | undefined;
  readonly bosTokenId: number[] | undefined;
  readonly tieWordEmbeddings: boolean;
  readonly raw: RawConfig;
}

/** A decoder-only language model: forward with cache and loss, and `generate`. */
export abstract class PreTrainedCausalLM<C extends BaseModelConfig = BaseModelConfig> extends Module {
  abstract readonly config: C;
  /** Defaults for `generate`, from `generation_config.json` (or the model config) when loaded from a folder. */
  generationConfig: GenerationOptions = {};

  abstract forward(input: CausalLMInput, ctx?: ForwardContext): CausalLMOutput;

  /** Decoder layers (the KV cache holds one entry per layer). */
  abstract get numLayers(): number;

  /** See `generate` in `peft-ts/generation`: returns each prompt followed by its new tokens. */
  generate(inputIds: IdsInput, options: GenerationOptions = {}, ctx?: ForwardContext): Promise<number[][]> {
    return generate(this, inputIds, { ...this.configDefaults(), ...options }, ctx);
  }

  private configDefaults(): GenerationOptions {
    const eos = this.generationConfig.eosTokenId ?? this.config.eosTokenId;
    const pad = this.generationConfig.padTokenId ?? this.config.padTokenId?.[0];
    return {
      ...(eos !== undefined ? { eosTokenId: eos } : {}),
      ...(pad !== undefined ? { padTokenId: pad } : {}),
    };
  }
}

/** Constructor and checkpoint conventions of one causal-LM architecture (the registry's entries). */
export interface CausalLMClass {
  readonly modelType: string;
  /** transformers' `base_model_prefix`: checkpoints of the bare model lack it. */
  readonly baseModelPrefix: string;
  /** Checkpoint keys that carry no learnt values and are dropped on load. */
  readonly ignoredCheckpointKeys: readonly RegExp[];
  new (config: RawConfig, options?: { seed?: number }): PreTrainedCausalLM;
}

/** Helper type for tensors keyed by name while loading. */
export type TensorMap = Map<string, tf.Tensor>;
