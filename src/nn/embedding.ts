import { tf } from '../engine/tf.js';
import { ConfigError } from '../errors.js';
import type { ForwardContext } from './context.js';
import { normal, zeros } from './init.js';
import type { LayerInitOptions } from './init.js';
import { Module } from './module.js';
import type { AdaptableLayer, Parameter } from './module.js';

export interface EmbeddingOptions extends LayerInitOptions {
  /**
   * Index whose row starts as zeros and never receives a gradient, as PyTorch's `padding_idx` (negative values
   * count from the end).
   */
  paddingIdx?: number | null;
}

/**
 * PyTorch's `nn.Embedding`: a lookup table `[numEmbeddings, embeddingDim]` initialised N(0, 1) (the padding
 * row zeroed). `forward(ids)` takes integer ids of any shape and returns `[...ids.shape, embeddingDim]`.
 */
export class Embedding extends Module implements AdaptableLayer {
  readonly kind = 'embedding' as const;
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;
  readonly weight: Parameter;

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    let paddingIdx = options.paddingIdx ?? null;
    if (paddingIdx !== null) {
      if (!Number.isInteger(paddingIdx) || paddingIdx >= numEmbeddings || paddingIdx < -numEmbeddings) {
        throw new ConfigError(
          [{ code: 'invalid_value', path: ['paddingIdx'], message: `must be an integer within num_embeddings (${numEmbeddings}), got ${paddingIdx}` }],
          'Embedding arguments',
        );
      }
      if (paddingIdx < 0) paddingIdx += numEmbeddings;
    }
    this.paddingIdx = paddingIdx;
    const shape = [numEmbeddings, embeddingDim];
    let weight = options.skipInit ? zeros(shape) : normal(shape, 0, 1, options);
    if (paddingIdx !== null && !options.skipInit) {
      const drawn = weight;
      weight = tf.tidy(() => {
        const isPad = tf.reshape(tf.equal(tf.range(0, numEmbeddings, 1, 'int32'), paddingIdx), [numEmbeddings, 1]);
        return tf.where(tf.broadcastTo(isPad, shape), tf.zerosLike(drawn), drawn);
      });
      drawn.dispose();
    }
    this.weight = this.registerParameter('weight', weight);
  }

  forward(ids: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return embedding(ids, this.weight, this.paddingIdx);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}` + (this.paddingIdx === null ? '' : `, padding_idx=${this.paddingIdx}`);
  }
}

/**
 * PyTorch's `F.embedding`: rows of `weight` at `ids` (cast to int32). With `paddingIdx`, that row gets no
 * gradient, as in PyTorch.
 */
export function embedding(ids: tf.Tensor, weight: tf.Tensor, paddingIdx: number | null = null): tf.Tensor {
  return tf.tidy(() => {
    const idx = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
    if (paddingIdx === null) return tf.gather(weight, idx);
    const [num, dim] = weight.shape as [number, number];
    const gatherSkippingPadding = tf.customGrad((...args) => {
      const [w, i, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([i]);
      return {
        value: tf.gather(w, i),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const flatIds = tf.reshape(saved[0]!, [-1]);
          const keep = tf.cast(tf.reshape(tf.notEqual(flatIds, paddingIdx), [-1, 1]), dy.dtype);
          const dw = tf.unsortedSegmentSum(tf.mul(tf.reshape(dy, [-1, dim]), keep), flatIds as tf.Tensor1D, num);
          // ids are integers: their gradient is never asked for (the tape prunes them), but one is required.
          return [dw, tf.zerosLike(saved[0]!)];
        },
      };
    });
    return gatherSkippingPadding(weight, idx);
  });
}
