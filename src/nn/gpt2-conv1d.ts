import { tf } from '../engine/tf.js';
import type { ForwardContext } from './context.js';
import { normal, zeros } from './init.js';
import type { LayerInitOptions } from './init.js';
import { assertLastDim, Module } from './module.js';
import type { AdaptableLayer, Parameter } from './module.js';

/**
 * transformers' `pytorch_utils.Conv1D` (also exported as `GPT2Conv1D`; GPT-2's `c_attn`, `c_proj`, `c_fc`): a linear layer whose weight is
 * stored transposed, `[nx (in), nf (out)]`, so `y = x W + b`. Initialised as transformers does: weight
 * N(0, 0.02^2), bias zeros. Argument order follows transformers: `(nf, nx)` = (out, in).
 */
export class Conv1D extends Module implements AdaptableLayer {
  readonly kind = 'gpt2_conv1d' as const;
  /** Output features. */
  readonly nf: number;
  /** Input features. */
  readonly nx: number;
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(nf: number, nx: number, options: LayerInitOptions = {}) {
    super();
    this.nf = nf;
    this.nx = nx;
    this.weight = this.registerParameter('weight', options.skipInit ? zeros([nx, nf]) : normal([nx, nf], 0, 0.02, options));
    this.bias = this.registerParameter('bias', zeros([nf]));
  }

  get inFeatures(): number {
    return this.nx;
  }

  get outFeatures(): number {
    return this.nf;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    assertLastDim(x, this.nx, 'Conv1D');
    return tf.tidy(() => {
      const x2d = x.rank === 2 ? x : tf.reshape(x, [-1, this.nx]);
      const y = tf.add(tf.matMul(x2d as tf.Tensor2D, this.weight as tf.Tensor2D), this.bias);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.nf]);
    });
  }

  override extraRepr(): string {
    return `nf=${this.nf}, nx=${this.nx}`;
  }
}

/**
 * {@link Conv1D} under a name that cannot be confused with PyTorch's `nn.Conv1d` (exported as `Conv1d`). The
 * class keeps transformers' name so `toString()` prints as transformers does.
 */
export { Conv1D as GPT2Conv1D };
