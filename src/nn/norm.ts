import { tf } from '../engine/tf.js';
import { fusedLayerNorm } from '../engine/fused/layer-norm.js';
import { fusedRmsNorm } from '../engine/fused/rms-norm.js';
import { ShapeError } from '../errors.js';
import type { ForwardContext } from './context.js';
import { ones, zeros } from './init.js';
import { Module } from './module.js';
import { pyFloat, pyTuple } from './repr.js';
import type { Parameter } from './module.js';

export interface LayerNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Learn `weight` (and `bias`, unless `bias: false`); default true. */
  elementwiseAffine?: boolean;
  /** Learn an additive bias when affine (default true). */
  bias?: boolean;
}

/**
 * PyTorch's `nn.LayerNorm`: normalises over the trailing `normalizedShape` dims with the biased variance, then
 * `* weight + bias` (weight ones, bias zeros).
 */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  private readonly biasOption: boolean;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.biasOption = options.bias ?? true;
    this.weight = affine ? this.registerParameter('weight', ones(this.normalizedShape)) : null;
    this.bias = affine && (options.bias ?? true) ? this.registerParameter('bias', zeros(this.normalizedShape)) : null;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    const k = this.normalizedShape.length;
    const tail = x.shape.slice(x.rank - k);
    if (x.rank < k || tail.some((d, i) => d !== this.normalizedShape[i])) {
      throw new ShapeError(
        `LayerNorm expects input ending in [${this.normalizedShape.join(', ')}], got shape [${x.shape.join(', ')}].`,
      );
    }
    return layerNorm(x, k, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `${pyTuple(this.normalizedShape)}, eps=${pyFloat(this.eps)}, elementwise_affine=${this.weight ? 'True' : 'False'}, bias=${this.biasOption ? 'True' : 'False'}`;
  }
}

/** PyTorch's `F.layer_norm` over the last `numDims` dimensions. */
export function layerNorm(
  x: tf.Tensor,
  numDims: number,
  weight: tf.Tensor | null,
  bias: tf.Tensor | null,
  eps = 1e-5,
): tf.Tensor {
  const fused = fusedLayerNorm(x, numDims, weight, bias, eps);
  if (fused) return fused;
  return tf.tidy(() => {
    const axes = Array.from({ length: numDims }, (_, i) => x.rank - numDims + i);
    const xf = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const { mean, variance } = tf.moments(xf, axes, true);
    let y = tf.mul(tf.sub(xf, mean), tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

export interface RMSNormOptions {
  /** Added to the mean square (default 1e-6, Llama's `rms_norm_eps`). */
  eps?: number;
}

/**
 * Llama's `LlamaRMSNorm` (also Mistral, Qwen2, ...): `weight * x * rsqrt(mean(x^2, -1) + eps)`, computed in
 * float32, weight initialised to ones.
 */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;

  constructor(dim: number, options: RMSNormOptions = {}) {
    super();
    this.dim = dim;
    this.eps = options.eps ?? 1e-6;
    this.weight = this.registerParameter('weight', ones([dim]));
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new ShapeError(`RMSNorm expects the last input dimension to be ${this.dim}, got shape [${x.shape.join(', ')}].`);
    }
    return rmsNorm(x, this.weight, this.eps);
  }

  override extraRepr(): string {
    return `(${this.dim},), eps=${pyFloat(this.eps)}`;
  }
}

/** `weight * x * rsqrt(mean(x^2, -1, keepdim) + eps)` in float32. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor | null, eps = 1e-6): tf.Tensor {
  const fused = fusedRmsNorm(x, weight, eps);
  if (fused) return fused;
  return tf.tidy(() => {
    const xf = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const variance = tf.mean(tf.square(xf), -1, true);
    const y = tf.mul(xf, tf.rsqrt(tf.add(variance, eps)));
    return weight ? tf.mul(weight, y) : y;
  });
}
