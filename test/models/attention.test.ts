import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import { MASK_MIN, causalAttentionBias } from '../../src/models/attention.js';

describe('causalAttentionBias', () => {
  before(async () => {
    await setBackend();
  });

  test('query i (cache position past + i) sees keys j <= past + i that the mask keeps', () => {
    // Row 0 left-padded by two, row 1 not padded; two new queries after a past of 3.
    const mask = tf.tensor2d([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [2, 5], 'int32');
    const bias = causalAttentionBias(2, 3, mask);
    const X = MASK_MIN;
    assert.deepEqual(bias.shape, [2, 1, 2, 5]);
    assert.deepEqual(bias.arraySync(), [
      [[[X, X, 0, 0, X], [X, X, 0, 0, 0]]],
      [[[0, 0, 0, 0, X], [0, 0, 0, 0, 0]]],
    ]);
    const unmasked = causalAttentionBias(3, 0);
    assert.deepEqual(unmasked.arraySync(), [[[[0, X, X], [0, 0, X], [0, 0, 0]]]]);
    tf.dispose([mask, bias, unmasked]);
  });

  test('a mask that does not span past + new positions is a RangeError', () => {
    const mask = tf.tensor2d([[1, 1, 1]], [1, 3], 'int32');
    assert.throws(() => causalAttentionBias(1, 3, mask), /attentionMask covers 3 positions but attention spans 4 \(past 3 \+ new 1\)/);
    mask.dispose();
  });
});
