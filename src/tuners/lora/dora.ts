// DoRA (weight-decomposed LoRA, PEFT's `DoraLinearLayer`): the adapted weight W + sBA is rescaled row by row
// to a learnt magnitude m: W' = (m / ||W + sBA||_row) ⊙ (W + sBA), with the norm treated as a constant in the
// backward pass, as PEFT detaches it. Implemented for Linear and GPT-2 Conv1D.
import { tf } from '../../engine/tf.js';
import { stopGradient } from '../../engine/ops.js';
import { UnsupportedLayerError } from '../../errors.js';
import type { LoraLayer } from './layer.js';

/** Layer kinds peft-ts implements DoRA for (PEFT also has Embedding and ConvNd). */
export const DORA_KINDS: readonly string[] = ['linear', 'gpt2_conv1d'];

/** The base weight (plus an optional delta) as `[out, in]`, whatever the storage order. */
function orientedWeight(layer: LoraLayer, delta?: tf.Tensor): tf.Tensor2D {
  const w = delta ? tf.add(layer.base_layer.weight, delta) : layer.base_layer.weight;
  return (layer.kind === 'gpt2_conv1d' ? tf.transpose(w) : w) as tf.Tensor2D;
}

/** ||W + sBA|| over the input axis, `[out]`. */
function rowNorm(layer: LoraLayer, name: string): tf.Tensor1D {
  return tf.tidy(() => tf.norm(orientedWeight(layer, layer.getDeltaWeight(name)), 'euclidean', 1) as tf.Tensor1D);
}

function assertSupported(layer: LoraLayer): void {
  if (!DORA_KINDS.includes(layer.kind)) throw new UnsupportedLayerError('(DoRA)', layer.kind, DORA_KINDS, 'DoRA in peft-ts');
}

/** Initial magnitude: the row norms of W + sBA (equal to those of W when B is zero). */
export function doraMagnitude(layer: LoraLayer, name: string): tf.Tensor {
  assertSupported(layer);
  return rowNorm(layer, name);
}

/**
 * The DoRA adapter's addition to the base output: (m/n - 1) ⊙ (x_d Wᵀ) + (m/n) ⊙ s·B(A(x_d)), with x_d the
 * dropped-out input. Without active dropout x_d Wᵀ is the base output minus its bias, so no extra matmul runs.
 */
export function doraForward(layer: LoraLayer, name: string, x: tf.Tensor, dropped: tf.Tensor, baseOutput: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const magnitude = layer.lora_magnitude_vector.get(name)!;
    const scale = tf.div(magnitude, stopGradient(rowNorm(layer, name)));
    const bias = (layer.base_layer as { bias?: tf.Tensor | null }).bias;
    const withoutBias =
      dropped === x ? (bias ? tf.sub(baseOutput, bias) : baseOutput) : tf.matMul(dropped.reshape([-1, dropped.shape.at(-1)!]), orientedWeight(layer), false, true).reshape(baseOutput.shape);
    const lora = tf.mul(layer.loraBranch(dropped, name), layer.scaling.get(name)!);
    return tf.add(tf.mul(tf.sub(scale, 1), withoutBias), tf.mul(scale, lora));
  });
}

/** ||W + ΔW|| per output row, `[out]`: what a merge divides by, kept by the layer so unmerging can undo it. */
export function doraWeightNorm(layer: LoraLayer, name: string): tf.Tensor1D {
  return rowNorm(layer, name);
}

/** W' = (m / ||W + ΔW||) ⊙ (W + ΔW), in storage orientation. Changes nothing (the caller caches the norm). */
export function doraMerged(layer: LoraLayer, name: string): tf.Tensor {
  return tf.tidy(() => {
    const norm = rowNorm(layer, name);
    const scale = tf.div(layer.lora_magnitude_vector.get(name)!, norm).reshape([-1, 1]);
    const merged = tf.mul(scale, orientedWeight(layer, layer.getDeltaWeight(name)));
    return layer.kind === 'gpt2_conv1d' ? tf.transpose(merged) : merged;
  });
}

/** W = W' / (m / n) - ΔW, using the norm cached at merge time. */
export function doraUnmerged(layer: LoraLayer, name: string): tf.Tensor {
  return tf.tidy(() => {
    const norm = layer.doraWeightNorm.get(name)!;
    const scale = tf.div(layer.lora_magnitude_vector.get(name)!, norm).reshape([-1, 1]);
    const unscaled = tf.div(orientedWeight(layer), scale);
    const restored = layer.kind === 'gpt2_conv1d' ? tf.transpose(unscaled) : unscaled;
    return tf.sub(restored, layer.getDeltaWeight(name));
  });
}
