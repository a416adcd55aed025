import type { tf } from '../engine/tf.js';
import type { KVCache } from '../generation/cache.js';

/** Token ids or masks as a tensor or as nested arrays (`number[][]`, one row per sequence). */
export type IdsInput = tf.Tensor | number[][];

/** Arguments of a causal LM's `forward`, mirroring transformers' keyword arguments. */
export interface CausalLMInput {
  inputIds: IdsInput;
  /** 1 for tokens to attend to, 0 for padding; covers past and new tokens when a cache is passed. */
  attentionMask?: IdsInput;
  /** Defaults to past length + 0..seq-1. `generate` derives them from the attention mask (left padding). */
  positionIds?: IdsInput;
  /** Targets for the loss, aligned with inputIds (shifted inside); -100 is ignored. */
  labels?: IdsInput;
  outputHiddenStates?: boolean;
  /** Cache to read from and append to. */
  pastKeyValues?: KVCache;
  /** Create a cache when none is passed (default false in forward; generate turns it on). */
  useCache?: boolean;
}

export interface CausalLMOutput {
  /** `[batch, seq, vocab]`. */
  logits: tf.Tensor3D;
  /** Mean cross-entropy when labels were given. */
  loss?: tf.Scalar;
  /** Embedding output, then each layer's output; the last is after the final norm. */
  hiddenStates?: tf.Tensor3D[];
  pastKeyValues?: KVCache;
}

/** Frees every tensor of a forward output (the cache too, unless `keepCache`). */
export function disposeOutput(output: CausalLMOutput, { keepCache = false } = {}): void {
  output.logits.dispose();
  output.loss?.dispose();
  for (const h of output.hiddenStates ?? []) h.dispose();
  if (!keepCache) output.pastKeyValues?.dispose();
}
