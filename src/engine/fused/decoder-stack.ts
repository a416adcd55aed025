import type { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

/**
 * A projection as the fused decoder takes it: `x Wᵀ + b + ((x Aᵀ) ⊙ s) Bᵀ`. Plain Linear layers give W and b;
 * LoRA and X-LoRA layers add their (stacked) A `[R, in]`, B `[out, R]` and the per-column scale s,
 * `[B|1, S|1, R]` (γ for LoRA, each token's scaling times γ·g for X-LoRA).
 */
export interface FusedProjection {
  weight: tf.Tensor;
  bias?: tf.Tensor | null;
  lowRank?: { a: tf.Tensor; b: tf.Tensor; scale: tf.Tensor } | undefined;
}

export interface FusedDecoderSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Attention score scale (head_dim^-0.5). */
  scale: number;
  inputNormEps: number;
  postNormEps: number;
}

/** One pre-norm SwiGLU decoder layer's weights and attention inputs. */
export interface FusedDecoderLayer {
  inputNorm: tf.Tensor;
  postNorm: tf.Tensor;
  /** Additive attention mask, `[B|1, 1, S, past + S]`. */
  bias: tf.Tensor4D;
  /**
   * The cached keys/values before this step, `[B, kvHeads, capacity, headDim]` of which the first `length`
   * positions count (absent when nothing is cached).
   */
  past?: { key: tf.Tensor4D; value: tf.Tensor4D; length: number } | undefined;
  projections: Record<'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down', FusedProjection>;
}

export interface FusedDecoderInputs {
  hidden: tf.Tensor3D;
  /** Rotary cos/sin, `[B|1, S, headDim]`. */
  cos: tf.Tensor;
  sin: tf.Tensor;
  layers: readonly FusedDecoderLayer[];
  /** Return each layer's new keys/values (after rotary), `[B, kvHeads, S, headDim]`, for the cache. */
  withCache: boolean;
  /** Return the hidden states between layers (the inputs of layers 1..n-1). */
  withHiddenStates: boolean;
}

export interface FusedDecoderOutputs {
  hidden: tf.Tensor3D;
  hiddenStates: tf.Tensor3D[];
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
}

/**
 * A model's pre-norm SwiGLU decoder layers (Llama's) as one kernel, for inference: the last layer's output and,
 * as asked, the hidden states between layers and each layer's keys/values to append to the cache. Undefined
 * where the backend has no fused kernels, a gradient tape records (training composes the ops) or an input is not
 * float32.
 */
export function fusedDecoder(spec: FusedDecoderSpec, inputs: FusedDecoderInputs): FusedDecoderOutputs | undefined {
  if (!fusedKernelsActive() || recordingGradients() || inputs.layers.length === 0) return undefined;
  const named: Record<string, tf.Tensor> = { h: inputs.hidden, cos: inputs.cos, sin: inputs.sin };
  const pastLengths: number[] = [];
  inputs.layers.forEach((layer, i) => {
    const set = (name: string, t: tf.Tensor) => (named[`L${i}_${name}`] = t);
    set('ln1', layer.inputNorm);
    set('ln2', layer.postNorm);
    set('bias', layer.bias);
    const pastLength = layer.past?.length ?? 0;
    pastLengths.push(pastLength);
    if (layer.past && pastLength > 0) {
      set('past_key', layer.past.key);
      set('past_value', layer.past.value);
    }
    for (const [p, proj] of Object.entries(layer.projections)) {
      set(`${p}_w`, proj.weight);
      if (proj.bias) set(`${p}_b`, proj.bias);
      if (proj.lowRank) {
        set(`${p}_a`, proj.lowRank.a);
        set(`${p}_bb`, proj.lowRank.b);
        set(`${p}_s`, proj.lowRank.scale);
      }
    }
  });
  if (Object.values(named).some((t) => t.dtype !== 'float32')) return undefined;
  const count = inputs.layers.length;
  const attrs = {
    heads: spec.heads,
    kvHeads: spec.kvHeads,
    headDim: spec.headDim,
    scale: spec.scale,
    eps1: spec.inputNormEps,
    eps2: spec.postNormEps,
    layers: count,
    withCache: inputs.withCache,
    withHiddenStates: inputs.withHiddenStates,
    pastLengths,
  };
  const out = runFusedKernel('PeftTsDecoderStack', named, attrs) as tf.Tensor[];
  const hidden = out.shift() as tf.Tensor3D;
  const hiddenStates = (inputs.withHiddenStates ? out.splice(0, count - 1) : []) as tf.Tensor3D[];
  const keys: tf.Tensor4D[] = [];
  const values: tf.Tensor4D[] = [];
  if (inputs.withCache) {
    for (let i = 0; i < count; i++) {
      keys.push(out[2 * i] as tf.Tensor4D);
      values.push(out[2 * i + 1] as tf.Tensor4D);
    }
  }
  return { hidden, hiddenStates, keys, values };
}
