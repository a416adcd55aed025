import { tf } from '../engine/tf.js';
import type { ForwardContext } from './context.js';
import type { FusedProjection } from '../engine/fused/decoder-stack.js';
import { defaultLayerInit, zeros } from './init.js';
import type { LayerInitOptions } from './init.js';
import { assertLastDim, Module } from './module.js';
import type { AdaptableLayer, Parameter } from './module.js';

export interface LinearOptions extends LayerInitOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
}

/**
 * PyTorch's `nn.Linear`: `y = x W^T + b`, weight stored `[outFeatures, inFeatures]` as in PyTorch checkpoints.
 * Accepts any input `[..., inFeatures]`.
 */
export class Linear extends Module implements AdaptableLayer {
  readonly kind = 'linear' as const;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const hasBias = options.bias ?? true;
    const init = options.skipInit
      ? { weight: zeros([outFeatures, inFeatures]), bias: hasBias ? zeros([outFeatures]) : null }
      : defaultLayerInit([outFeatures, inFeatures], hasBias ? [outFeatures] : null, options);
    this.weight = this.registerParameter('weight', init.weight);
    this.bias = init.bias ? this.registerParameter('bias', init.bias) : null;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    assertLastDim(x, this.inFeatures, 'Linear');
    return linear(x, this.weight, this.bias);
  }

  /** W and b, for fused kernels; undefined for a subclass whose forward computes something else. */
  fusedProjection(): FusedProjection | undefined {
    return isPlainLinear(this) ? { weight: this.weight, bias: this.bias } : undefined;
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? 'True' : 'False'}`;
  }
}

/** Whether `m` is a Linear computing exactly `x Wᵀ + b` (no subclass overriding forward): fused kernels may inline it. */
export function isPlainLinear(m: unknown): m is Linear {
  return m instanceof Linear && m.forward === Linear.prototype.forward;
}

/** PyTorch's `F.linear`: `x [..., in] @ weight[out, in]^T + bias[out]`. */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | null = null): tf.Tensor {
  return tf.tidy(() => {
    const inFeatures = weight.shape[1]!;
    const outFeatures = weight.shape[0]!;
    const x2d = x.rank === 2 ? x : tf.reshape(x, [-1, inFeatures]);
    let y: tf.Tensor = tf.matMul(x2d as tf.Tensor2D, weight as tf.Tensor2D, false, true);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outFeatures]);
  });
}
