// DoRA (weight-decomposed LoRA, PEFT's `DoraLinearLayer`): the adapted weight W + sBA is rescaled row by row
// to a learnt magnitude m: W' = (m / ||W + sBA||_row) ⊙ (W + sBA), with the norm treated as a constant in the
// backward pass, as PEFT detaches it. Implemented for Linear and GPT-2 Conv1D.
import { tf } from '../../engine/tf.js';
import { UnsupportedLayerError } from '../../errors.js';
import type { LoraLayer } from './layer.js';

const supportedKinds = ['linear', 'gpt2_conv1d'];

/** The base weight (plus an optional delta) as `[out, in]`, whatever the storage order. */
function orientedWeight(layer: LoraLayer, delta?: tf.Tensor): tf.Tensor2D {
  const w = delta ? tf.add(layer.base_layer.weight, delta) : layer.base_layer.weight;
  return (layer.kind === 'gpt2_conv1d' ? tf.transpose(w) : w) as tf.Tensor2D;
}

/** ||W + sBA|| over the input axis, `[out]`. */
function rowNorm(layer: LoraLayer, name: string): tf.Tensor1D {
  return tf.tidy(() => tf.norm(orientedWeight(layer, layer.getDeltaWeight(name)), 'euclidean', 1) as tf.Tensor1D);
}

/** A copy of `x` through which no gradient flows (PyTorch's `.detach()`). */
const detach = (x: tf.Tensor): tf.Tensor =>
  tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = inputs[0] as tf.Tensor;
    return { value: tf.clone(input), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
  })(x);

function assertSupported(layer: LoraLayer): void {
  if (!supportedKinds.includes(layer.kind)) throw new UnsupportedLayerError('(DoRA)', layer.kind, supportedKinds, 'DoRA in peft-ts');
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
    const scale = tf.div(magnitude, detach(rowNorm(layer, name)));
    const bias = (layer.base_layer as { bias?: tf.Tensor | null }).bias;
    const withoutBias =
      dropped === x ? (bias ? tf.sub(baseOutput, bias) : baseOutput) : tf.matMul(dropped.reshape([-1, dropped.shape.at(-1)!]), orientedWeight(layer), false, true).reshape(baseOutput.shape);
    const lora = tf.mul(layer.loraBranch(dropped, name), layer.scaling.get(name)!);
    return tf.add(tf.mul(tf.sub(scale, 1), withoutBias), tf.mul(scale, lora));
  });
}

/** W' = (m / ||W + ΔW||) ⊙ (W + ΔW), in storage orientation; caches the norm for unmerging. */
export function doraMerged(layer: LoraLayer, name: string): tf.Tensor {
  return tf.tidy(() => {
    const norm = rowNorm(layer, name);
    layer.doraWeightNorm.get(name)?.dispose();
    layer.doraWeightNorm.set(name, tf.keep(norm));
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
