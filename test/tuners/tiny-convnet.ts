// The TS twin of `TinyConvNet` in tools/parity/generate_adapters.py (the base of the LoHa conv fixtures), with the
// same module names, so PEFT's state-dict and adapter keys apply unchanged:
//   x [B, 4, 16] -> conv1d (Conv1d 4->8, k 3, pad 1) -> relu -> reshape [B, 8, 4, 4] -> conv2d (Conv2d 8->8, k 3x3,
//   pad 1) -> relu -> conv2d_1x1 (Conv2d 8->6, k 1x1) -> flatten (C, H, W order) [B, 96] -> linear (Linear 96->5).
import { join } from 'node:path';
import { tf } from '../../src/engine/tf.js';
import { loadSafetensors } from '../../src/io/index.js';
import type { ForwardContext, Layer } from '../../src/nn/index.js';
import { Conv1d, Conv2d, Linear, Module } from '../../src/nn/index.js';

export const TINY_CONVNET_DIR = join(import.meta.dirname, '../fixtures/parity/models/tiny-convnet');

export class TinyConvNet extends Module {
  /** Read by `savePretrained` for `base_model_name_or_path`, as PEFT reads the Python model's `name_or_path`. */
  nameOrPath?: string;
  conv1d: Layer;
  conv2d: Layer;
  conv2d_1x1: Layer;
  linear: Layer;

  constructor(options: { seed?: number } = {}) {
    super();
    const seed = (k: number) => (options.seed === undefined ? {} : { seed: options.seed + 2 * k });
    this.conv1d = this.registerModule('conv1d', new Conv1d(4, 8, 3, { padding: 1, ...seed(0) }));
    this.conv2d = this.registerModule('conv2d', new Conv2d(8, 8, 3, { padding: 1, ...seed(1) }));
    this.conv2d_1x1 = this.registerModule('conv2d_1x1', new Conv2d(8, 6, 1, seed(2)));
    this.linear = this.registerModule('linear', new Linear(96, 5, seed(3)));
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const batch = x.shape[0]!;
      let h = tf.relu(this.conv1d.forward(x, ctx));
      h = tf.reshape(h, [batch, 8, 4, 4]);
      h = tf.relu(this.conv2d.forward(h, ctx));
      h = this.conv2d_1x1.forward(h, ctx);
      return this.linear.forward(tf.reshape(h, [batch, -1]), ctx);
    });
  }

  /** The fixture's weights (`test/fixtures/parity/models/tiny-convnet/model.safetensors`), in eval mode. */
  static async fromFixture(): Promise<TinyConvNet> {
    const model = new TinyConvNet();
    const weights = await loadSafetensors(join(TINY_CONVNET_DIR, 'model.safetensors'));
    try {
      model.loadStateDict(weights);
    } finally {
      for (const t of weights.values()) t.dispose();
    }
    model.nameOrPath = 'test/fixtures/parity/models/tiny-convnet';
    return model.eval();
  }
}
