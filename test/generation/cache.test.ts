// KVCache: the concatenating `update` of the composed attention and the in-place `append` of fused kernels hold
// the same keys/values, on backends that share JavaScript arrays (in place) and on wasm (which concatenates).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import type { BackendName } from '../../src/engine/index.js';
import { KVCache } from '../../src/generation/cache.js';

/** [batch, heads, seq, headDim] with distinct values from `start`. */
function block(shape: [number, number, number, number], start: number): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => start + i), shape);
}

/** The first `length` positions of a stored [B, H, capacity, D] tensor, as nested arrays. */
function filled(t: tf.Tensor4D, length: number): number[][][][] {
  return tf.tidy(() => tf.slice(t, [0, 0, 0, 0], [-1, -1, length, -1]).arraySync() as number[][][][]);
}

const backends: BackendName[] = ['cpu', 'onnxruntime', 'wasm'];

for (const backend of backends) {
  describe(`KVCache on ${backend}`, () => {
    test('append and update build the same keys/values; reserve sizes the slab; nothing leaks', async () => {
      try {
        await setBackend(backend);
      } catch {
        return; // onnxruntime-node absent: its describe has nothing to run
      }
      const before = tf.memory().numTensors;
      const appended = new KVCache();
      const updated = new KVCache();
      appended.reserve(4);
      const steps: [number, number, number, number][] = [[2, 3, 3, 2], [2, 3, 1, 2], [2, 3, 1, 2], [2, 3, 2, 2]];
      let start = 0;
      for (const shape of steps) {
        const key = block(shape, start);
        const value = block(shape, 1000 + start);
        start += 100;
        appended.append(0, key, value);
        updated.update(0, key, value); // the cache owns what update returns
        tf.dispose([key, value]);
        const length = updated.getSeqLength();
        assert.equal(appended.getSeqLength(), length);
        const a = appended.past(0)!;
        const u = updated.past(0)!;
        assert.equal(a.length, length);
        assert.deepEqual(filled(a.key, length), filled(u.key, length));
        assert.deepEqual(filled(a.value, length), filled(u.value, length));
      }
      // 3 + 1 fit the reservation of 4; the next append regrew the slab (to more than 7, with spare room).
      if (backend !== 'wasm') assert.ok(appended.past(0)!.key.shape[2] > 7, 'slab regrown with spare capacity');
      else assert.equal(appended.past(0)!.key.shape[2], 7, 'wasm concatenates to the exact length');
      // A composed step after fused ones: update sees exactly the filled positions.
      const key = block([2, 3, 1, 2], 5000);
      const full = appended.update(0, key, key);
      assert.deepEqual(full.key.shape, [2, 3, 8, 2]);
      assert.deepEqual(filled(full.key, 8), tf.tidy(() => filled(tf.concat([updated.past(0)!.key, key], 2) as tf.Tensor4D, 8)));
      tf.dispose([key]);
      // Beam reordering keeps the filled positions of the chosen rows.
      updated.reorder([1, 1]);
      const rows = filled(updated.past(0)!.key, 7);
      assert.deepEqual(rows[0], rows[1]);
      appended.dispose();
      updated.dispose();
      assert.equal(tf.memory().numTensors, before, 'the caches left tensors behind');
    });
  });
}
