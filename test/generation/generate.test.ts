import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import { generate, positionIdsFromMask } from '../../src/generation/generate.js';
import type { GenerativeModel } from '../../src/generation/generate.js';
import { applyTopK, applyTopP } from '../../src/generation/logits-process.js';
import type { CausalLMInput, CausalLMOutput } from '../../src/models/outputs.js';
import { ConfigError } from '../../src/errors.js';

/** A bigram "model": next-token probabilities depend only on the last token, from a fixed table. */
function bigramModel(table: number[][]): GenerativeModel & { calls: number } {
  return {
    calls: 0,
    generationConfig: {},
    forward(input: CausalLMInput): CausalLMOutput {
      this.calls++;
      const rows = input.inputIds as number[][];
      const logits = rows.map((r) => r.map((token) => (table[token] ?? table[0]!).map((p) => Math.log(Math.max(p, 1e-12)))));
      return { logits: tf.tensor3d(logits) };
    },
  };
}

describe('generate on a hand-built bigram model', () => {
  before(async () => {
    await setBackend();
  });
  const EOS = 3;
  // Greedy takes token 1 (p .5) then 0 (p .3): .15 in all; the beam finds 2 (p .4) then 1 (p .9): .36.
  const table = [
    [0, 0.5, 0.4, 0.1],
    [0.3, 0.3, 0.3, 0.1],
    [0.05, 0.9, 0.04, 0.01],
    [0.25, 0.25, 0.25, 0.25],
  ];

  test('greedy picks the locally best token each step', async () => {
    assert.deepEqual(await generate(bigramModel(table), [[0]], { maxNewTokens: 2 }), [[0, 1, 0]]);
  });

  test('beam search finds the better sequence greedy misses', async () => {
    assert.deepEqual(await generate(bigramModel(table), [[0]], { maxNewTokens: 2, numBeams: 2 }), [[0, 2, 1]]);
    assert.deepEqual(await generate(bigramModel(table), [[0]], { maxNewTokens: 2, numBeams: 1 }), [[0, 1, 0]]);
  });

  // With EOS likeliest first (p .4), a finished hypothesis competes with longer ones; length_penalty decides.
  const eosTable = [
    [0, 0.3, 0.3, 0.4],
    [0.5, 0.3, 0.1, 0.1],
    [0.05, 0.9, 0.04, 0.01],
    [0.25, 0.25, 0.25, 0.25],
  ];

  test('greedy stops at EOS', async () => {
    assert.deepEqual(await generate(bigramModel(eosTable), [[0]], { maxNewTokens: 3, eosTokenId: EOS }), [[0, EOS]]);
  });

  test('beam search: length_penalty 1 prefers the long beam, 0 the short finished one (hand-derived scores)', async () => {
    // [0,2,1,0]: ln(.4*.9*.5)/3 = -0.667 beats [0]+EOS: ln(.4)/1 = -0.916.
    assert.deepEqual(await generate(bigramModel(eosTable), [[0]], { maxNewTokens: 3, numBeams: 2, eosTokenId: EOS }), [[0, 2, 1, 0]]);
    // Unnormalised: ln(.4) = -0.916 beats ln(.18) = -1.715; EOS is appended back to the stored hypothesis.
    assert.deepEqual(
      await generate(bigramModel(eosTable), [[0]], { maxNewTokens: 3, numBeams: 2, eosTokenId: EOS, lengthPenalty: 0 }),
      [[0, EOS]],
    );
  });

  test('finished rows of a batch are padded while others continue', async () => {
    const out = await generate(bigramModel(eosTable), [[0], [2]], { maxNewTokens: 3, eosTokenId: EOS, padTokenId: 9 });
    assert.deepEqual(out, [
      [0, EOS, 9, 9],
      [2, 1, 0, EOS],
    ]);
  });

  test('streaming callback sees every step', async () => {
    const events: number[][] = [];
    await generate(bigramModel(table), [[0], [2]], { maxNewTokens: 2, onToken: (e) => events.push([...e.tokens]) });
    assert.deepEqual(events, [[1, 1], [0, 0]]);
  });

  test('seeded sampling is reproducible and follows the distribution', async () => {
    const a = await generate(bigramModel(table), [[0]], { maxNewTokens: 5, doSample: true, seed: 7, topK: 0 });
    const b = await generate(bigramModel(table), [[0]], { maxNewTokens: 5, doSample: true, seed: 7, topK: 0 });
    assert.deepEqual(a, b);
    // From token 2, p(1) = .9: over 400 draws the frequency must be near .9.
    const draws = await generate(bigramModel(table), Array.from({ length: 400 }, () => [2]), { maxNewTokens: 1, doSample: true, seed: 1, topK: 0 });
    const ones = draws.filter((r) => r[1] === 1).length / 400;
    assert.ok(Math.abs(ones - 0.9) < 0.05, `frequency of token 1 was ${ones}`);
    // topK 1 makes sampling greedy.
    assert.deepEqual(await generate(bigramModel(table), [[0]], { maxNewTokens: 2, doSample: true, topK: 1, seed: 3 }), [[0, 1, 0]]);
  });

  test('invalid options raise ConfigError', async () => {
    await assert.rejects(generate(bigramModel(table), [[0]], { temperature: 0 }), ConfigError);
    await assert.rejects(generate(bigramModel(table), [[0]], { numBeams: 2, doSample: true }), ConfigError);
  });
});

describe('logits warpers (transformers semantics)', () => {
  test('top-k keeps the k best, ties at the threshold included', () => {
    const s = Float32Array.of(1, 3, 2, 3, 0);
    applyTopK(s, 2);
    assert.deepEqual(Array.from(s), [-Infinity, 3, -Infinity, 3, -Infinity]);
  });

  test('top-p removes the tail whose cumulative probability is <= 1 - p', () => {
    // probs .5 .3 .15 .05: ascending cumsum .05 .2 .5 1 -> with p = .75, remove cumsum <= .25 (tokens 3, 2).
    const s = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    applyTopP(s, 0.75);
    assert.deepEqual(Array.from(s).map((v) => v === -Infinity), [false, false, true, true]);
  });

  test('position ids from a left-padded mask', () => {
    assert.deepEqual(positionIdsFromMask([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]), [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]]);
  });
});
