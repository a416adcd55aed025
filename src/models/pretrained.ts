import { tf } from '../engine/tf.js';
import { KVCache } from '../generation/cache.js';
import type { Layer } from '../nn/module.js';
import { idsTensor } from './inputs.js';
import { causalLMLoss } from './loss.js';
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

/** The decoder stack of a causal LM: hidden states from ids, appending to the cache. */
export interface CausalDecoder {
  forward(
    input: Pick<CausalLMInput, 'inputIds' | 'attentionMask' | 'positionIds' | 'outputHiddenStates'>,
    cache: KVCache | undefined,
    ctx?: ForwardContext,
  ): { lastHiddenState: tf.Tensor3D; hiddenStates?: tf.Tensor3D[] };
}

/** A decoder-only language model: forward with cache and loss, and `generate`. */
export abstract class PreTrainedCausalLM<C extends BaseModelConfig = BaseModelConfig> extends Module {
  abstract readonly config: C;
  /** Defaults for `generate`, from `generation_config.json` (or the model config) when loaded from a folder. */
  generationConfig: GenerationOptions = {};

  /** The output projection (tied to the input embedding when the config says so). */
  abstract readonly lm_head: Layer;

  /** The decoder stack (transformers' base model: `transformer` for GPT-2, `model` for Llama). */
  protected abstract get decoder(): CausalDecoder;

  /** transformers' `*ForCausalLM.forward`: decoder, LM head, loss on shifted labels, the cache passed through. */
  forward(input: CausalLMInput, ctx?: ForwardContext): CausalLMOutput {
    const cache = input.pastKeyValues ?? (input.useCache ? new KVCache() : undefined);
    const out = tf.tidy(() => {
      const { lastHiddenState, hiddenStates } = this.decoder.forward(input, cache, ctx);
      const logits = this.lm_head.forward(lastHiddenState, ctx) as tf.Tensor3D;
      const loss = input.labels ? causalLMLoss(logits, idsTensor(input.labels, 'labels')) : undefined;
      return { logits, ...(loss ? { loss } : {}), ...(hiddenStates ? { hiddenStates } : {}) };
    });
    return cache ? { ...out, pastKeyValues: cache } : out;
  }

  /**
   * transformers' base-model forward (`model.model(...)` / `model.transformer(...)`): the decoder's hidden states
   * without the LM head, appending to `pastKeyValues` when given. Tensors returned are the caller's.
   */
  forwardHidden(
    input: Pick<CausalLMInput, 'inputIds' | 'attentionMask' | 'positionIds' | 'outputHiddenStates' | 'pastKeyValues'>,
    ctx?: ForwardContext,
  ): { lastHiddenState: tf.Tensor3D; hiddenStates?: tf.Tensor3D[] } {
    return tf.tidy(() => this.decoder.forward(input, input.pastKeyValues, ctx));
  }

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

/** How checkpoint keys map onto a model's state dict (the loading conventions every model class declares). */
export interface CheckpointConventions {
  /**
   * transformers' `base_model_prefix`: added to the keys of a bare-model checkpoint loaded into a model with a
   * head, stripped from the keys of a checkpoint with a head loaded into the bare model (the head's keys are then
   * dropped, as transformers drops them).
   */
  readonly baseModelPrefix: string;
  /** Checkpoint keys that carry no learnt values and are dropped on load. */
  readonly ignoredCheckpointKeys: readonly RegExp[];
}

/** Arguments of an encoder's `forward` (BERT, DistilBERT, CLIP text), mirroring transformers' keyword arguments. */
export interface EncoderInput {
  inputIds: IdsInput;
  /** 1 for tokens to attend to, 0 for padding. */
  attentionMask?: IdsInput;
  /** Segment ids (BERT's `token_type_ids`, default zeros); models without token type embeddings ignore them. */
  tokenTypeIds?: IdsInput;
  /** Defaults to 0..seq-1 for every row. */
  positionIds?: IdsInput;
  outputHiddenStates?: boolean;
}

export interface EncoderOutput {
  /** `[batch, seq, hidden]`. */
  lastHiddenState: tf.Tensor3D;
  /** `[batch, hidden]`: BERT's pooler (tanh of a dense layer on the first token), CLIP's EOS-token state. */
  poolerOutput?: tf.Tensor2D;
  /** The embedding output, then each layer's output. */
  hiddenStates?: tf.Tensor3D[];
}

/**
 * Targets of a sequence classifier: class ids `[batch]` (a `number[]` or an int32 tensor) for single-label
 * classification, `[batch, numLabels]` floats (a `number[][]` or a float32 tensor) for multi-label
 * classification, floats for regression. Plain arrays carry no dtype, so when the config sets no `problem_type`
 * a 1-D array counts as integer class ids (PyTorch's `long`) and a 2-D array as floats.
 */
export type ClassificationLabels = tf.Tensor | number[] | number[][];

export interface SequenceClassificationInput extends EncoderInput {
  labels?: ClassificationLabels;
}

export interface SequenceClassificationOutput {
  /** `[batch, numLabels]`. */
  logits: tf.Tensor2D;
  /** MSE (regression), cross-entropy (single label) or BCE-with-logits (multi label), as transformers picks it. */
  loss?: tf.Scalar;
  hiddenStates?: tf.Tensor3D[];
}

/** A bare encoder (`AutoModel`): token ids in, hidden states out. */
export abstract class PreTrainedEncoder<C extends BaseModelConfig = BaseModelConfig> extends Module {
  abstract readonly config: C;
  abstract forward(input: EncoderInput, ctx?: ForwardContext): EncoderOutput;
}

/** An encoder with a sequence classification / regression head (`AutoModelForSequenceClassification`). */
export abstract class PreTrainedForSequenceClassification<C extends BaseModelConfig = BaseModelConfig> extends Module {
  abstract readonly config: C;
  abstract get numLabels(): number;
  abstract forward(input: SequenceClassificationInput, ctx?: ForwardContext): SequenceClassificationOutput;
}

/** Constructor and checkpoint conventions of a bare encoder architecture (the `AutoModel` registry's entries). */
export interface EncoderClass<M extends PreTrainedEncoder = PreTrainedEncoder> extends CheckpointConventions {
  readonly modelType: string;
  new (config: RawConfig, options?: { seed?: number }): M;
}

/** Constructor and checkpoint conventions of a sequence classifier (`AutoModelForSequenceClassification`). */
export interface SequenceClassificationClass<M extends PreTrainedForSequenceClassification = PreTrainedForSequenceClassification>
  extends CheckpointConventions {
  readonly modelType: string;
  new (config: RawConfig, options?: { seed?: number }): M;
}

/** Frees every tensor of an encoder or classifier forward output. */
export function disposeEncoderOutput(output: EncoderOutput | SequenceClassificationOutput): void {
  if ('lastHiddenState' in output) {
    output.lastHiddenState.dispose();
    output.poolerOutput?.dispose();
  } else {
    output.logits.dispose();
    output.loss?.dispose();
  }
  for (const h of output.hiddenStates ?? []) h.dispose();
}
