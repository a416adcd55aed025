// A small custom model for the tuner tests, named like the toy models of PEFT's `tests/test_custom_models.py`
// (`MLP`: `lin0`, `relu`, `lin1`; `EmbConv1D`: `emb`; `Conv2d`: `conv2d`), with one layer of every kind LoRA
// adapts plus one it cannot (a LayerNorm):
//
//   ids [B, T] -> emb (Embedding 20x6) -> [B, 1, T, 6] -> conv2d (Conv2d 1->2, 3x3, padding 1) -> [B, T, 12]
//     -> lin0 (Linear 12->10) -> relu -> norm (LayerNorm 10) -> lin1 (Linear 10->4) -> [B, T, 4]
//
// Every layer is on the path of every output, so an adapter on any of them changes the output.
import { tf } from '../../src/engine/index.js';
import type { ForwardContext } from '../../src/nn/context.js';
import { Conv2d, Embedding, LayerNorm, Linear, Module, ReLU } from '../../src/nn/index.js';

export const TINY = { vocab: 20, embDim: 6, convOut: 2, hidden: 10, out: 4 } as const;

export class TinyMLP extends Module {
  emb: Embedding;
  conv2d: Conv2d;
  lin0: Linear;
  relu: ReLU;
  norm: LayerNorm;
  lin1: Linear;

  constructor(seed = 1) {
    super();
    this.emb = this.registerModule('emb', new Embedding(TINY.vocab, TINY.embDim, { seed }));
    this.conv2d = this.registerModule('conv2d', new Conv2d(1, TINY.convOut, 3, { padding: 1, seed: seed + 1 }));
    this.lin0 = this.registerModule('lin0', new Linear(TINY.convOut * TINY.embDim, TINY.hidden, { seed: seed + 2 }));
    this.relu = this.registerModule('relu', new ReLU());
    this.norm = this.registerModule('norm', new LayerNorm(TINY.hidden));
    this.lin1 = this.registerModule('lin1', new Linear(TINY.hidden, TINY.out, { seed: seed + 3 }));
    // A LayerNorm at its defaults (ones, zeros) would hide a wrong bias: give it values of its own.
    for (const p of this.norm.parameters()) {
      const v = tf.randomUniform(p.shape, 0.5, 1.5, 'float32', seed + 4);
      p.assign(v);
      v.dispose();
    }
    this.eval();
  }

  forward(ids: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const [b, t] = ids.shape as [number, number];
      const e = this.emb.forward(ids, ctx).reshape([b, 1, t, TINY.embDim]);
      const c = this.conv2d.forward(e, ctx).transpose([0, 2, 1, 3]).reshape([b, t, TINY.convOut * TINY.embDim]);
      const h = this.norm.forward(this.relu.forward(this.lin0.forward(c, ctx)), ctx);
      return this.lin1.forward(h, ctx);
    });
  }
}

/** Parameter counts of the tiny model's layers, for the trainable-parameter formulas. */
export const TINY_PARAMS = {
  emb: TINY.vocab * TINY.embDim,
  conv2d: TINY.convOut * 1 * 3 * 3 + TINY.convOut,
  lin0: TINY.convOut * TINY.embDim * TINY.hidden + TINY.hidden,
  norm: 2 * TINY.hidden,
  lin1: TINY.hidden * TINY.out + TINY.out,
};
export const TINY_TOTAL = Object.values(TINY_PARAMS).reduce((a, b) => a + b, 0);

/** A fixed batch of ids `[2, 5]`. */
export function tinyInput(): tf.Tensor2D {
  return tf.tensor2d(
    [
      [1, 5, 19, 0, 7],
      [3, 3, 12, 8, 2],
    ],
    [2, 5],
    'int32',
  );
}
