import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenizerError } from '../../src/errors.js';
import { padBatch, truncateSequences } from '../../src/tokenizers/batch.js';

const seq = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i);
const lens = ([a, b]: [number[], number[] | undefined]) => [a.length, b?.length];

describe('truncateSequences (Rust tokenizers semantics)', () => {
  it('longest_first keeps the shorter sequence whole when the longer can absorb the cut', () => {
    assert.deepEqual(lens(truncateSequences(seq(10), seq(2), 6, 'longest_first', 'right')), [4, 2]);
    assert.deepEqual(lens(truncateSequences(seq(2), seq(10), 6, 'longest_first', 'right')), [2, 4]);
  });

  it('longest_first halves when both are long; the longer (or the pair on ties) gets the odd token', () => {
    assert.deepEqual(lens(truncateSequences(seq(5), seq(4), 5, 'longest_first', 'right')), [3, 2]);
    assert.deepEqual(lens(truncateSequences(seq(4), seq(5), 5, 'longest_first', 'right')), [2, 3]);
    assert.deepEqual(lens(truncateSequences(seq(3), seq(3), 3, 'longest_first', 'right')), [1, 2]);
  });

  it('only_first / only_second / single sequences, from either side', () => {
    assert.deepEqual(truncateSequences(seq(5), undefined, 3, 'longest_first', 'right'), [[0, 1, 2], undefined]);
    assert.deepEqual(truncateSequences(seq(5), undefined, 3, 'only_first', 'left'), [[2, 3, 4], undefined]);
    assert.deepEqual(truncateSequences(seq(3), seq(3, 10), 4, 'only_second', 'right'), [[0, 1, 2], [10]]);
    assert.throws(() => truncateSequences(seq(5), undefined, 3, 'only_second', 'right'), TokenizerError);
    assert.throws(() => truncateSequences(seq(3), seq(5), 2, 'only_first', 'right'), TokenizerError);
    assert.throws(() => truncateSequences(seq(3), undefined, -1, 'longest_first', 'right'), TokenizerError);
  });
});

describe('padBatch', () => {
  it('pads to the longest row or a multiple, on either side, with masks', () => {
    const opts = { strategy: 'longest', maxLength: undefined, padToMultipleOf: undefined, side: 'right', padId: 9 } as const;
    assert.deepEqual(padBatch([[1, 2, 3], [4]], opts), { inputIds: [[1, 2, 3], [4, 9, 9]], attentionMask: [[1, 1, 1], [1, 0, 0]] });
    assert.deepEqual(padBatch([[1, 2, 3], [4]], { ...opts, side: 'left', padToMultipleOf: 4 }).inputIds, [[9, 1, 2, 3], [9, 9, 9, 4]]);
  });

  it('max_length needs a finite length; a missing pad token only fails when padding is needed', () => {
    const opts = { strategy: 'max_length', maxLength: Infinity, padToMultipleOf: undefined, side: 'right', padId: 0 } as const;
    assert.throws(() => padBatch([[1]], opts), /needs maxLength/);
    assert.deepEqual(padBatch([[1, 2], [3, 4]], { ...opts, strategy: 'longest', padId: undefined }).attentionMask, [[1, 1], [1, 1]]);
    assert.throws(() => padBatch([[1, 2], [3]], { ...opts, strategy: 'longest', padId: undefined }), /padToken = tokenizer\.eosToken/);
  });
});
