import { tf } from '../engine/tf.js';
import type { ForwardContext } from './context.js';
import { Module, ModuleList } from './module.js';
import type { Layer } from './module.js';

/** PyTorch's `nn.Sequential`: children "0", "1", ... applied in order, intermediates freed. */
export class Sequential extends ModuleList<Layer> {
  constructor(...layers: Layer[]) {
    super(layers);
  }

  /** Printed as PyTorch prints `nn.Sequential` (no folding of repeated children). */
  override toString(): string {
    return Module.prototype.toString.call(this);
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    if (this.length === 0) return tf.clone(x);
    return tf.tidy(() => {
      let y = x;
      for (const layer of this) y = layer.forward(y, ctx);
      return y;
    });
  }
}

/** PyTorch's `nn.Identity`: returns its input (as a new tensor handle sharing the data). */
export class Identity extends Module {
  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return tf.clone(x);
  }
}
