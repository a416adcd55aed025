import { sharesTypedArrays } from '../engine/ops.js';
import { tf } from '../engine/tf.js';

/**
 * One layer's keys and values, `[batch, heads, capacity, headDim]`, of which the first `length` positions are
 * filled. `slab` holds the arrays behind the tensors when this cache allocated them with room to append in
 * place; tensors from kernels (`update`, `reorder`) have `capacity === length` and no slab.
 */
interface Entry {
  key: tf.Tensor4D;
  value: tf.Tensor4D;
  length: number;
  slab?: { key: Float32Array; value: Float32Array };
}

/**
 * Key/value cache for decoder self-attention, one entry per layer, each `[batch, heads, seq, headDim]` — the
 * equivalent of transformers' `DynamicCache`. The cache owns its tensors: `update` frees the previous ones, and
 * `dispose` frees the rest. Fused decoder kernels read the past as it is stored (`past`) and `append` the new
 * positions in place, so a decoding step copies only the new keys/values, not the whole past.
 */
export class KVCache {
  private readonly entries: (Entry | undefined)[] = [];
  private reserved = 0;

  /** Tokens already cached (the past length new positions are counted from). */
  getSeqLength(layer = 0): number {
    return this.entries[layer]?.length ?? 0;
  }

  get numLayers(): number {
    return this.entries.length;
  }

  /** Appends this step's keys/values for `layer` and returns the full keys/values to attend over (owned by the cache). */
  update(layer: number, key: tf.Tensor4D, value: tf.Tensor4D): { key: tf.Tensor4D; value: tf.Tensor4D } {
    const full = tf.tidy(() => {
      const past = this.exact(layer);
      return past ? { key: tf.concat([past.key, key], 2), value: tf.concat([past.value, value], 2) } : { key: key.clone(), value: value.clone() };
    });
    this.replace(layer, { key: tf.keep(full.key), value: tf.keep(full.value), length: full.key.shape[2] });
    return full;
  }

  /**
   * The stored keys/values of `layer` as they are (positions from `length` on are zeros, not keys), or undefined
   * before its first update: for fused kernels, which slice the first `length` positions themselves.
   */
  past(layer: number): { key: tf.Tensor4D; value: tf.Tensor4D; length: number } | undefined {
    const entry = this.entries[layer];
    return entry && { key: entry.key, value: entry.value, length: entry.length };
  }

  /**
   * Appends `key`/`value` `[batch, heads, new, headDim]` after the cached positions of `layer`. On backends whose
   * tensors are JavaScript arrays it writes into spare capacity (allocating a larger slab when there is none);
   * elsewhere it concatenates, as `update`.
   */
  append(layer: number, key: tf.Tensor4D, value: tf.Tensor4D): void {
    if (!sharesTypedArrays()) {
      this.update(layer, key, value);
      return;
    }
    const [batch, heads, fresh, headDim] = key.shape;
    let entry = this.entries[layer];
    const length = entry?.length ?? 0;
    const needed = length + fresh;
    if (!entry?.slab || entry.key.shape[2] < needed || entry.key.shape[0] !== batch) {
      // Past a reservation, grow by a quarter: amortised appends with little unused tail.
      const capacity = needed <= this.reserved ? this.reserved : Math.ceil((needed * 1.25 + 32) / 32) * 32;
      entry = this.allocate(layer, [batch, heads, capacity, headDim]);
    }
    const capacity = entry.key.shape[2];
    for (const [source, target] of [[key, entry.slab!.key], [value, entry.slab!.value]] as const) {
      const data = source.dataSync() as Float32Array;
      const rowLength = fresh * headDim;
      for (let row = 0; row < batch * heads; row++) {
        target.set(data.subarray(row * rowLength, (row + 1) * rowLength), (row * capacity + length) * headDim);
      }
    }
    entry.length = needed;
  }

  /** Sizes slabs for `length` positions from the start (generation knows its final length), so none regrows. */
  reserve(length: number): void {
    this.reserved = length;
  }

  /** Reorders the batch dimension (beam search): row i becomes old row `indices[i]`. */
  reorder(indices: readonly number[]): void {
    const idx = tf.tensor1d(Array.from(indices), 'int32');
    for (let layer = 0; layer < this.entries.length; layer++) {
      const entry = this.entries[layer];
      if (!entry) continue;
      const length = entry.length;
      this.replace(layer, { key: tf.keep(tf.gather(entry.key, idx, 0)), value: tf.keep(tf.gather(entry.value, idx, 0)), length });
    }
    idx.dispose();
  }

  dispose(): void {
    for (const entry of this.entries) tf.dispose([entry?.key, entry?.value].filter((t): t is tf.Tensor4D => t !== undefined));
    this.entries.length = 0;
  }

  /** `layer`'s filled positions as tensors of exactly that length (slices of a slab; the caller's tidy frees them). */
  private exact(layer: number): { key: tf.Tensor4D; value: tf.Tensor4D } | undefined {
    const entry = this.entries[layer];
    if (!entry) return undefined;
    if (entry.key.shape[2] === entry.length) return { key: entry.key, value: entry.value };
    const size = [-1, -1, entry.length, -1];
    return { key: tf.slice(entry.key, [0, 0, 0, 0], size), value: tf.slice(entry.value, [0, 0, 0, 0], size) };
  }

  /** A zeroed slab of `shape` holding `layer`'s filled positions; it replaces the layer's entry. */
  private allocate(layer: number, shape: [number, number, number, number]): Entry {
    const [batch, heads, capacity, headDim] = shape;
    const old = this.entries[layer];
    const slab = { key: new Float32Array(batch * heads * capacity * headDim), value: new Float32Array(batch * heads * capacity * headDim) };
    const length = old?.length ?? 0;
    if (old && length > 0) {
      const oldCapacity = old.key.shape[2];
      for (const [source, target] of [[old.key, slab.key], [old.value, slab.value]] as const) {
        const data = source.dataSync() as Float32Array;
        for (let row = 0; row < batch * heads; row++) {
          target.set(data.subarray(row * oldCapacity * headDim, (row * oldCapacity + length) * headDim), row * capacity * headDim);
        }
      }
    }
    const entry: Entry = { key: tf.keep(tf.tensor4d(slab.key, shape)), value: tf.keep(tf.tensor4d(slab.value, shape)), length, slab };
    this.replace(layer, entry);
    return entry;
  }

  private replace(layer: number, entry: Entry): void {
    const old = this.entries[layer];
    if (old) tf.dispose([old.key, old.value]);
    this.entries[layer] = entry;
  }
}
