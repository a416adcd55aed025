import { tf } from '../engine/tf.js';

/**
 * Key/value cache for decoder self-attention, one entry per layer, each `[batch, heads, seq, headDim]` — the
 * equivalent of transformers' `DynamicCache`. The cache owns its tensors: `update` frees the previous ones, and
 * `dispose` frees the rest.
 */
export class KVCache {
  private readonly keys: (tf.Tensor4D | undefined)[] = [];
  private readonly values: (tf.Tensor4D | undefined)[] = [];

  /** Tokens already cached (the past length new positions are counted from). */
  getSeqLength(layer = 0): number {
    return this.keys[layer]?.shape[2] ?? 0;
  }

  get numLayers(): number {
    return this.keys.length;
  }

  /** Appends this step's keys/values for `layer` and returns the full keys/values to attend over. */
  update(layer: number, key: tf.Tensor4D, value: tf.Tensor4D): { key: tf.Tensor4D; value: tf.Tensor4D } {
    const oldKey = this.keys[layer];
    const oldValue = this.values[layer];
    const newKey = tf.keep(oldKey ? tf.concat([oldKey, key], 2) : key.clone());
    const newValue = tf.keep(oldValue ? tf.concat([oldValue, value], 2) : value.clone());
    oldKey?.dispose();
    oldValue?.dispose();
    this.keys[layer] = newKey;
    this.values[layer] = newValue;
    return { key: newKey, value: newValue };
  }

  /** Reorders the batch dimension (beam search): row i becomes old row `indices[i]`. */
  reorder(indices: readonly number[]): void {
    const idx = tf.tensor1d(Array.from(indices), 'int32');
    const reorderOne = (list: (tf.Tensor4D | undefined)[]) => {
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        if (!t) continue;
        list[i] = tf.keep(tf.gather(t, idx, 0));
        t.dispose();
      }
    };
    reorderOne(this.keys);
    reorderOne(this.values);
    idx.dispose();
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.length = 0;
    this.values.length = 0;
  }
}
