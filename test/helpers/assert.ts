import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';

type Numeric = tf.Tensor | ArrayLike<number> | number;

function toArray(x: Numeric): Float64Array {
  if (typeof x === 'number') return Float64Array.of(x);
  if (x instanceof tf.Tensor) return Float64Array.from(x.dataSync());
  return Float64Array.from(x);
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise (shapes checked for tensors). */
export function assertAllClose(actual: Numeric, expected: Numeric, { atol = 1e-5, rtol = 1e-5 } = {}, what = ''): void {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) {
    assert.deepEqual(actual.shape, expected.shape, `${what} shape`);
  }
  const a = toArray(actual);
  const e = toArray(expected);
  assert.equal(a.length, e.length, `${what} length`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i]! - e[i]!) - (atol + rtol * Math.abs(e[i]!));
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      worstAt = i;
    }
  }
  if (worstAt >= 0) {
    assert.fail(`${what} not close at index ${worstAt}: actual ${a[worstAt]} vs expected ${e[worstAt]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Runs `fn` and asserts that it leaves no more live tensors than before. */
export async function assertNoLeak<T>(fn: () => T | Promise<T>, what = 'operation'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  assert.equal(after, before, `${what} leaked ${after - before} tensor(s)`);
  return result;
}
