// The onnxruntime backend's pool of float32 output arrays (src/engine/onnx/buffer-pool.ts): unit tests of
// BufferPool's bookkeeping, then the backend's use of it: an array goes back to the pool only when the last
// tensor holding it (or a view of its buffer) is disposed, and what callers read (dataSync, data, arraySync)
// are copies that later kernels writing into the recycled array cannot change.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import type { OnnxRuntimeBackend } from '../../../src/engine/onnx/backend.js';
import { BufferPool, bucketOf } from '../../../src/engine/onnx/buffer-pool.js';
import { setOrtMinElements } from '../../../src/engine/onnx/kernels/define.js';
import { tf } from '../../../src/engine/tf.js';
import { ortAvailable, randoms } from '../fused/_fused.js';

/** A pool that also takes small arrays (the backend's pools only arrays of 4096 floats and more). */
function smallPool(maxFreeBytes: number): BufferPool {
  const pool = new BufferPool(maxFreeBytes);
  pool.minPooled = 0;
  return pool;
}

describe('bucketOf', () => {
  test('rounds up to one of eight steps per power of two', () => {
    assert.deepEqual([5, 8, 9, 10, 17, 4096, 4097, 4608, 4609, 8191].map(bucketOf), [5, 8, 9, 10, 18, 4096, 4608, 4608, 5120, 8192]);
  });
  test('a large pooled array is a view of its bucket, and comes back for any length in that bucket', () => {
    const pool = new BufferPool(1 << 24);
    const a = pool.take(4100);
    assert.equal(a.length, 4100);
    assert.equal(a.buffer.byteLength, 4608 * 4);
    pool.retain(a);
    pool.release(a);
    const b = pool.take(4500);
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.length, 4500);
    assert.equal(pool.take(100).buffer.byteLength, 400, 'small arrays are plain allocations');
  });
});

describe('BufferPool', () => {
  test('take gives arrays of the asked length that the pool owns', () => {
    const pool = smallPool(1 << 20);
    const a = pool.take(10);
    assert.ok(a instanceof Float32Array);
    assert.equal(a.length, 10);
    assert.ok(pool.owns(a));
    assert.ok(pool.owns(a.subarray(3, 5)), 'a view of a pooled buffer');
    assert.equal(pool.owns(new Float32Array(10)), false);
    assert.equal(pool.owns([1, 2, 3]), false);
    assert.equal(pool.owns(undefined), false);
    assert.notEqual(pool.take(10), a, 'a taken array is not handed out twice');
    assert.equal(pool.pooledBytes, 0);
  });

  test('an array returns to the pool when its last user releases it, and is reused for the same length', () => {
    const pool = smallPool(1 << 20);
    const a = pool.take(8);
    pool.retain(a);
    pool.retain(a); // a second tensor holding the same array
    pool.release(a);
    assert.equal(pool.pooledBytes, 0, 'still held by one tensor');
    assert.notEqual(pool.take(8), a);
    pool.release(a);
    assert.equal(pool.pooledBytes, 32);
    assert.notEqual(pool.take(9), a, 'another length gets another array');
    assert.equal(pool.take(8), a);
    assert.equal(pool.pooledBytes, 0);
    assert.ok(pool.owns(a), 'owned again once taken');
  });

  test('a view of the buffer keeps it out of the pool until the view is released too', () => {
    const pool = smallPool(1 << 20);
    const a = pool.take(16);
    const view = a.subarray(4, 12);
    pool.retain(a);
    pool.retain(view);
    pool.release(a);
    assert.equal(pool.pooledBytes, 0);
    assert.notEqual(pool.take(16), a);
    pool.release(view);
    assert.equal(pool.pooledBytes, 64);
    assert.equal(pool.take(16), a, 'the whole array comes back, not the view');
  });

  test('a released array is no longer owned; releasing it again, or arrays the pool never made, is a no-op', () => {
    const pool = smallPool(1 << 20);
    const a = pool.take(4);
    pool.retain(a);
    pool.release(a);
    assert.equal(pool.owns(a), false, 'free arrays are nobody\'s');
    pool.release(a);
    pool.release(a.subarray(1));
    assert.equal(pool.pooledBytes, 16, 'not pooled twice');
    assert.equal(pool.take(4), a);
    assert.notEqual(pool.take(4), a, 'handed out once only');
    const foreign = new Float32Array(4);
    pool.retain(foreign);
    pool.release(foreign);
    pool.retain([1, 2]);
    pool.release('not an array');
    assert.equal(pool.pooledBytes, 0);
    assert.notEqual(pool.take(4), foreign);
  });

  test('maxFreeBytes caps what is kept; arrays over the cap are dropped', () => {
    const pool = smallPool(100);
    const arrays = [pool.take(10), pool.take(10), pool.take(10)]; // 40 bytes each
    for (const a of arrays) pool.retain(a);
    for (const a of arrays) pool.release(a);
    assert.equal(pool.pooledBytes, 80, 'the third would pass 100 bytes');
    assert.equal(pool.owns(arrays[2]!), false);
    const back = new Set([pool.take(10), pool.take(10)]);
    assert.deepEqual(back, new Set(arrays.slice(0, 2)));
    assert.equal(pool.pooledBytes, 0);
    const fresh = pool.take(10);
    assert.ok(!arrays.includes(fresh));
    const big = pool.take(30); // 120 bytes: never kept
    pool.retain(big);
    pool.release(big);
    assert.equal(pool.pooledBytes, 0);
    assert.notEqual(pool.take(30), big);
  });

  test('a zero cap keeps nothing', () => {
    const pool = smallPool(0);
    const a = pool.take(3);
    pool.retain(a);
    pool.release(a);
    assert.equal(pool.pooledBytes, 0);
    assert.notEqual(pool.take(3), a);
  });

  test('clear empties the pool; arrays still in use return to it when released', () => {
    const pool = smallPool(1 << 20);
    const free = pool.take(5);
    const used = pool.take(6);
    pool.retain(free);
    pool.retain(used);
    pool.release(free);
    assert.equal(pool.pooledBytes, 20);
    pool.clear();
    assert.equal(pool.pooledBytes, 0);
    assert.notEqual(pool.take(5), free);
    assert.ok(pool.owns(used));
    pool.release(used);
    assert.equal(pool.pooledBytes, 24);
    assert.equal(pool.take(6), used);
  });
});

describe('onnxruntime backend output pool', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  let minElements = 0;
  let minPooled = 0;
  let backend: OnnxRuntimeBackend;
  before(async () => {
    // Every size through ONNX Runtime and the pool, so small tensors exercise it too.
    minElements = setOrtMinElements(0);
    await setBackend('onnxruntime');
    backend = tf.backend() as OnnxRuntimeBackend;
    minPooled = backend.pool.minPooled;
    backend.pool.minPooled = 0;
  });
  after(() => {
    setOrtMinElements(minElements);
    backend.pool.minPooled = minPooled;
  });

  const shape = [8, 64];
  const n = 8 * 64;
  const input = (seed: number): tf.Tensor => tf.tensor(randoms(n, seed), shape);

  test('kernel outputs come from the pool and are recycled after dispose', () => {
    const x = input(1);
    const y = tf.exp(x);
    const raw = backend.values(y);
    assert.ok(backend.pool.owns(raw));
    y.dispose();
    const z = tf.neg(x);
    assert.equal(backend.values(z), raw, 'the freed array is reused');
    tf.dispose([x, z]);
  });

  test('dataSync, data and arraySync results survive dispose of the tensor and later kernels', async () => {
    const x = input(2);
    const y = tf.exp(x);
    const raw = backend.values(y);
    const sync = y.dataSync();
    const async = await y.data();
    const nested = y.arraySync() as number[][];
    assert.notEqual(sync, raw, 'a copy, not the pooled array');
    const expected = Float32Array.from(randoms(n, 2), Math.exp);
    y.dispose();
    // Kernels of the same size now write into the recycled array.
    const outs = [tf.neg(x), tf.sqrt(tf.abs(x)), tf.mul(x, x)];
    assert.ok(outs.some((t) => backend.values(t) === raw), 'the array was reused');
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(sync[i]! - expected[i]!) < 1e-6, `dataSync ${i}`);
      assert.equal(async[i], sync[i]);
    }
    assert.equal(nested[1]![3], sync[64 + 3]);
    tf.dispose([x, ...outs]);
  });

  test('a contiguous slice (a view of the parent\'s array) stays correct after the parent is disposed', () => {
    const x = input(3);
    const parent = tf.exp(x);
    const parentRaw = backend.values(parent);
    const view = tf.slice(parent, [2, 0], [3, -1]);
    const viewRaw = backend.values(view);
    assert.equal(viewRaw.buffer, parentRaw.buffer, 'the cpu slice kernel made a view');
    const expected = Float32Array.from(randoms(n, 3).subarray(2 * 64, 5 * 64), Math.exp);
    parent.dispose();
    // New outputs of the parent's size must not land in the array the view still reads.
    const others = [tf.neg(x), tf.sigmoid(x), tf.tanh(x), tf.add(x, x)];
    for (const t of others) assert.notEqual(backend.values(t).buffer, parentRaw.buffer);
    const got = view.dataSync();
    for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-6, `view ${i}`);
    // Also through a kernel that reads the view.
    const doubled = tf.mul(view, 2).dataSync();
    for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(doubled[i]! - 2 * expected[i]!) < 1e-5);
    tf.dispose(others);
    // With the view gone, the parent's array is free again.
    view.dispose();
    const next = tf.exp(x);
    assert.equal(backend.values(next), parentRaw);
    tf.dispose([x, next]);
  });

  test('tensors sharing a data id (reshape, clone) keep the array until the last is disposed', () => {
    const x = input(4);
    const y = tf.exp(x);
    const raw = backend.values(y);
    const r = tf.reshape(y, [n]);
    const c = tf.clone(y);
    const expected = y.dataSync();
    y.dispose();
    r.dispose();
    const z = tf.neg(x);
    assert.notEqual(backend.values(z), raw);
    assert.deepEqual(c.dataSync(), expected);
    c.dispose();
    const w = tf.sigmoid(x);
    assert.equal(backend.values(w), raw);
    tf.dispose([x, z, w]);
  });

  test('split views along axis 0 keep their parent\'s array alive', () => {
    const x = input(5);
    const y = tf.exp(x);
    const raw = backend.values(y);
    const [top, bottom] = tf.split(y, [3, 5], 0) as [tf.Tensor, tf.Tensor];
    const expected = bottom.dataSync();
    y.dispose();
    top.dispose();
    const z = tf.neg(x);
    assert.notEqual(backend.values(z), raw);
    assert.deepEqual(bottom.dataSync(), expected);
    tf.dispose([x, z, bottom]);
  });

  test('a pooled tensor moved to another backend keeps its values', async () => {
    const x = input(6);
    const y = tf.exp(x);
    const raw = backend.values(y);
    const expected = y.dataSync();
    await setBackend('cpu');
    try {
      // Using y on cpu moves its data there (a copy) and frees the pooled array on onnxruntime.
      const sum = tf.add(y, 0);
      await setBackend('onnxruntime');
      const others = [tf.neg(x), tf.sigmoid(x), tf.tanh(x)];
      assert.ok(others.some((t) => backend.values(t) === raw), 'the moved-out array was reused');
      assert.deepEqual(y.dataSync(), expected);
      assert.deepEqual(sum.dataSync(), expected);
      tf.dispose([sum, ...others]);
    } finally {
      await setBackend('onnxruntime');
    }
    tf.dispose([x, y]);
  });

  test('tensor and data-id counts stay steady over repeated training-like steps', () => {
    const w = tf.variable(tf.tensor(randoms(64 * 32, 7), [64, 32]));
    const xs = tf.tensor(randoms(16 * 64, 8), [16, 64]);
    const step = (): void => {
      tf.tidy(() => {
        const f = (): tf.Scalar => tf.mean(tf.square(tf.relu(tf.matMul(xs, w)))) as tf.Scalar;
        const { value, grads } = tf.variableGrads(f);
        w.assign(tf.sub(w, tf.mul(Object.values(grads)[0]!, 0.01)));
        value.dataSync();
      });
    };
    step();
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    const pooled = backend.pool.pooledBytes;
    for (let i = 0; i < 20; i++) step();
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(backend.numDataIds(), dataIds);
    assert.ok(backend.pool.pooledBytes <= pooled + 64 * 32 * 4 * 4, `pool grew from ${pooled} to ${backend.pool.pooledBytes} bytes`);
    tf.dispose([w, xs]);
  });
});
