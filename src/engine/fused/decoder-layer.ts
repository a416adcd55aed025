import type { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

/**
 * A projection as the fused decoder layer takes it: `x Wᵀ + b + ((x Aᵀ) ⊙ s) Bᵀ`. Plain Linear layers give
 * W and b; LoRA and X-LoRA layers add their (stacked) A `[R, in]`, B `[out, R]` and the per-column scale s,
 * `[B|1, S|1, R]` (γ for LoRA, each token's scaling times γ·g for X-LoRA).
 */
export interface FusedProjection {
  weight: tf.Tensor;
  bias?: tf.Tensor | null;
  lowRank?: { a: tf.Tensor; b: tf.Tensor; scale: tf.Tensor } | undefined;
}

export interface FusedDecoderLayerSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Attention score scale (head_dim^-0.5). */
  scale: number;
  inputNormEps: number;
  postNormEps: number;
}

export interface FusedDecoderLayerInputs {
  hidden: tf.Tensor3D;
  inputNorm: tf.Tensor;
  postNorm: tf.Tensor;
  /** Rotary cos/sin, `[B|1, S, headDim]`. */
  cos: tf.Tensor;
  sin: tf.Tensor;
  /** Additive attention mask, `[B|1, 1, S, past + S]`. */
  bias: tf.Tensor4D;
  /**
   * The cached keys/values before this step, `[B, kvHeads, capacity, headDim]` of which the first `length`
   * positions count (absent when nothing is cached).
   */
  past?: { key: tf.Tensor4D; value: tf.Tensor4D; length: number } | undefined;
  /** Return this step's keys/values (after rotary), `[B, kvHeads, S, headDim]`, for the cache. */
  withCache: boolean;
  projections: Record<'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down', FusedProjection>;
}

/**
 * A pre-norm SwiGLU decoder layer (Llama's) as one kernel, for inference: returns the layer's output and, with
 * `withCache`, this step's keys/values to append to the cache; undefined where the backend has no fused kernels, a gradient tape
 * records (training composes the ops) or an input is not float32.
 */
export function fusedDecoderLayer(
  spec: FusedDecoderLayerSpec,
  inputs: FusedDecoderLayerInputs,
): { hidden: tf.Tensor3D; key?: tf.Tensor4D; value?: tf.Tensor4D } | undefined {
  if (!fusedKernelsActive() || recordingGradients()) return undefined;
  const named: Record<string, tf.Tensor> = {
    h: inputs.hidden,
    ln1: inputs.inputNorm,
    ln2: inputs.postNorm,
    cos: inputs.cos,
    sin: inputs.sin,
    bias: inputs.bias,
  };
  const pastLength = inputs.past?.length ?? 0;
  if (inputs.past && pastLength > 0) {
    named['past_key'] = inputs.past.key;
    named['past_value'] = inputs.past.value;
  }
  for (const [p, proj] of Object.entries(inputs.projections)) {
    named[`${p}_w`] = proj.weight;
    if (proj.bias) named[`${p}_b`] = proj.bias;
    if (proj.lowRank) {
      named[`${p}_a`] = proj.lowRank.a;
      named[`${p}_bb`] = proj.lowRank.b;
      named[`${p}_s`] = proj.lowRank.scale;
    }
  }
  if (Object.values(named).some((t) => t.dtype !== 'float32')) return undefined;
  const attrs = {
    heads: spec.heads,
    kvHeads: spec.kvHeads,
    headDim: spec.headDim,
    scale: spec.scale,
    eps1: spec.inputNormEps,
    eps2: spec.postNormEps,
    withCache: inputs.withCache,
    pastLength,
  };
  const [hidden, key, value] = runFusedKernel('PeftTsDecoderLayer', named, attrs);
  if (!inputs.withCache) return { hidden: hidden as tf.Tensor3D };
  return { hidden: hidden as tf.Tensor3D, key: key as tf.Tensor4D, value: value as tf.Tensor4D };
}
