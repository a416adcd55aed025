import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { AutoModelForCausalLM } from '../../../src/models/auto.js';
import { GPT2LMHeadModel } from '../../../src/models/gpt2/modeling.js';
import type { PreTrainedCausalLM } from '../../../src/models/pretrained.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';
import { realdataPath, skipReason } from '../../helpers/realdata.js';

interface GreedyCase {
  input_ids: number[];
  expected: number[];
}

const tinyDir = realdataPath('tiny-random-gpt2');
const skip = skipReason('tiny-random-gpt2');

describe('tiny-random-gpt2 (real checkpoint, recorded by onnxruntime-genai)', { skip }, () => {
  let model: PreTrainedCausalLM;
  let cases: GreedyCase[];

  before(async () => {
    await setBackend();
    model = await AutoModelForCausalLM.fromPretrained(tinyDir!);
    cases = (JSON.parse(readFileSync(join(tinyDir!, 'reference-greedy.json'), 'utf8')) as { cases: GreedyCase[] }).cases;
  });
  after(() => model.dispose());

  test('loads every key strictly, with lm_head tied to wte', () => {
    assert.ok(model instanceof GPT2LMHeadModel);
    const sd = model.stateDict();
    assert.equal(sd['lm_head.weight'], sd['transformer.wte.weight']);
    assert.deepEqual(sd['transformer.h.4.attn.c_attn.weight']!.shape, [32, 96]);
    assert.equal(model.numParameters(), 1000 * 32 + 512 * 32 + 5 * (32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32 + 4 * 32) + 2 * 32);
  });

  for (const useCache of [true, false]) {
    test(`greedy decoding reproduces the reference (useCache: ${useCache})`, async () => {
      for (const c of cases) {
        const out = await model.generate([c.input_ids], { maxLength: 10, useCache, eosTokenId: [] });
        assert.deepEqual(out, [c.expected]);
      }
    });
  }

  test('greedy decoding of both references as one batch of two', async () => {
    for (const useCache of [true, false]) {
      const out = await model.generate(cases.map((c) => c.input_ids), { maxLength: 10, useCache, eosTokenId: [] });
      assert.deepEqual(out, cases.map((c) => c.expected));
    }
  });

  test('a left-padded batch decodes each row as it decodes alone', async () => {
    const short = [195, 731];
    const long = [0, 0, 0, 52];
    const alone = await model.generate([short], { maxNewTokens: 6, eosTokenId: [] });
    const padded = await model.generate([[98, 98, ...short], long], {
      maxNewTokens: 6,
      eosTokenId: [],
      attentionMask: [[0, 0, 1, 1], [1, 1, 1, 1]],
    });
    assert.deepEqual(padded[0]!.slice(2), alone[0]);
    assert.deepEqual(padded[1], cases[0]!.expected);
  });

  test('incremental decoding with the cache gives the logits of full recomputation', () => {
    const ids = [[0, 0, 195, 731, 731, 114]];
    const full = model.forward({ inputIds: ids });
    const first = model.forward({ inputIds: [ids[0]!.slice(0, 4)], useCache: true });
    const next = model.forward({ inputIds: [ids[0]!.slice(4)], pastKeyValues: first.pastKeyValues! });
    const fullTail = tf.slice(full.logits, [0, 4, 0], [1, 2, -1]);
    assertAllClose(next.logits, fullTail, { atol: 1e-5, rtol: 1e-5 });
    fullTail.dispose();
    disposeOutput(full);
    disposeOutput(first, { keepCache: true });
    disposeOutput(next);
  });

  test('loss with labels equals cross-entropy computed by hand from the logits', async () => {
    const ids = [[5, 17, 300, 42, 9], [7, 7, 7, 1, 2]];
    const labels = [[5, 17, -100, 42, 9], [7, 7, 7, 1, -100]];
    const out = model.forward({ inputIds: ids, labels });
    const logits = (await out.logits.array()) as number[][][];
    let total = 0;
    let count = 0;
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 4; t++) {
        const target = labels[b]![t + 1]!;
        if (target === -100) continue;
        const row = logits[b]![t]!;
        const max = Math.max(...row);
        const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        total += logZ - row[target]!;
        count++;
      }
    }
    assertAllClose(out.loss!, total / count, { atol: 1e-5, rtol: 1e-5 });
    disposeOutput(out);
  });

  test('hidden states: embeddings, each block, and the final norm output', () => {
    const out = model.forward({ inputIds: [[1, 2, 3]], outputHiddenStates: true });
    assert.equal(out.hiddenStates!.length, 6);
    // The last hidden state times wteᵀ is the logits (tied head).
    const viaHead = tf.matMul(out.hiddenStates![5]!.reshape([3, 32]), model.stateDict()['transformer.wte.weight']!, false, true);
    assertAllClose(viaHead, out.logits.reshape([3, 1000]), { atol: 1e-5, rtol: 1e-5 });
    viaHead.dispose();
    disposeOutput(out);
  });

  test('no tensors leak across 20 generate calls (cached, uncached, sampled, beam)', async () => {
    await model.generate([[1, 2]], { maxNewTokens: 3 }); // warm-up allocations of kernels
    await assertNoLeak(async () => {
      for (let i = 0; i < 5; i++) {
        await model.generate([[1, 2, 3]], { maxNewTokens: 4 });
        await model.generate([[1, 2, 3]], { maxNewTokens: 4, useCache: false });
        await model.generate([[1, 2, 3]], { maxNewTokens: 4, doSample: true, seed: i });
        await model.generate([[1, 2, 3]], { maxNewTokens: 4, numBeams: 3 });
      }
    }, '20 generate calls');
  });
});

describe('GPT2LMHeadModel module tree', () => {
  test('namedModules matches transformers named_modules() order', async () => {
    await setBackend();
    const model = new GPT2LMHeadModel({ n_layer: 1, n_embd: 8, n_head: 2, vocab_size: 11, n_positions: 16 });
    const names = [...model.namedModules()].map(([n]) => n);
    // From PyTorch: [n for n, _ in GPT2LMHeadModel(GPT2Config(n_layer=1, ...)).named_modules()]
    assert.deepEqual(names, [
      '', 'transformer', 'transformer.wte', 'transformer.wpe', 'transformer.drop', 'transformer.h', 'transformer.h.0',
      'transformer.h.0.ln_1', 'transformer.h.0.attn', 'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj',
      'transformer.h.0.attn.attn_dropout', 'transformer.h.0.attn.resid_dropout', 'transformer.h.0.ln_2',
      'transformer.h.0.mlp', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj', 'transformer.h.0.mlp.act',
      'transformer.h.0.mlp.dropout', 'transformer.ln_f', 'lm_head',
    ]);
    model.dispose();
  });
});
