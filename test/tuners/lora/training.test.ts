// Training LoRA on a tiny random Llama with TF.js's Adam: the loss of a fixed next-token task falls below a stated
// threshold, the base weights stay bit-identical, every adapter tensor moves, gradients reach only adapter
// tensors, and repeated steps allocate nothing that stays alive.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { getPeftModel } from '../../../src/peft-model.js';
import type { PeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { adapterTensors, assertBitIdentical, baseWeights, maxAbsDiff, quietly } from '../common.js';

process.env['PEFT_TS_QUIET'] = '1';

const LLAMA = {
  vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  max_position_embeddings: 32, initializer_range: 0.2,
};
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** A fixed next-token rule, t -> 5t + 3 (mod 64): four sequences of 8 tokens that follow it. */
const next = (t: number) => (5 * t + 3) % 64;
const SEQUENCES = [1, 10, 20, 40].map((start) => {
  const seq = [start];
  while (seq.length < 8) seq.push(next(seq.at(-1)!));
  return seq;
});

const STEPS = 40;
const LR = 0.02;
const THRESHOLD = 0.5; // from ~ln(64) = 4.2 at the start

function makePeft(options: { useDora?: boolean } = {}): PeftModel<LlamaForCausalLM> {
  const model = new LlamaForCausalLM(LLAMA, { seed: 7 });
  const peft = getPeftModel(model, new LoraConfig({ targetModules: TARGETS, r: 8, loraAlpha: 16, taskType: 'CAUSAL_LM', ...options }));
  return peft.train();
}

/** One Adam step on the trainable variables; returns the loss before the step. */
function step(peft: PeftModel<LlamaForCausalLM>, optimizer: tf.Optimizer, ids: tf.Tensor, vars: tf.Variable[]): number {
  const loss = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = peft.forward({ inputIds: ids, labels: ids });
      out.logits.dispose();
      return out.loss!;
    }, vars);
    optimizer.applyGradients(grads);
    return value;
  });
  const v = loss.dataSync()[0]!;
  loss.dispose();
  return v;
}

before(async () => {
  await setBackend();
});

describe('training LoRA on a tiny Llama', () => {
  test(`learns a fixed next-token rule: loss < ${THRESHOLD} within ${STEPS} Adam steps (lr ${LR}); the base never moves`, async () => {
    const peft = await quietly(() => makePeft());
    const ids = tf.tensor2d(SEQUENCES, undefined, 'int32');
    const optimizer = tf.train.adam(LR);
    try {
      const adapter = adapterTensors(peft, 'default');
      const vars = peft.parameters().filter((p) => p.trainable);
      assert.equal(adapter.size, 2 * TARGETS.length * LLAMA.num_hidden_layers);
      assert.deepEqual(new Set(vars), new Set(adapter.values()), 'exactly the adapter tensors are trainable');

      // Without a var list, variableGrads takes every trainable variable TF.js knows: only adapter tensors get one.
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => {
          const out = peft.forward({ inputIds: ids, labels: ids });
          return out.loss!;
        });
        assert.deepEqual(new Set(Object.keys(grads)), new Set([...adapter.values()].map((v) => v.name)));
      });

      const base = baseWeights(peft.model);
      const adapterBefore = new Map([...adapter].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
      const losses: number[] = [];
      for (let i = 0; i < STEPS; i++) losses.push(step(peft, optimizer, ids, vars));
      const final = tf.tidy(() => {
        const out = peft.forward({ inputIds: ids, labels: ids });
        return out.loss!.dataSync()[0]!;
      });
      assert.ok(losses[0]! > 3.5, `initial loss ${losses[0]} (an identity adapter on a random model)`);
      assert.ok(final < THRESHOLD, `loss after ${STEPS} steps: ${final} (first ${losses.slice(0, 5).map((l) => l.toFixed(3)).join(', ')})`);

      assertBitIdentical(baseWeights(peft.model), base, 'base weights after training');
      for (const [key, value] of adapter) {
        assert.ok(maxAbsDiff(Float32Array.from(value.dataSync()), adapterBefore.get(key)!) > 0, `${key} was trained`);
      }

      // The trained adapter predicts the rule greedily.
      peft.eval();
      const out = peft.forward({ inputIds: ids });
      const predicted = out.logits.argMax(-1).arraySync() as number[][];
      disposeOutput(out);
      let right = 0;
      for (const [b, seq] of SEQUENCES.entries()) for (let t = 0; t + 1 < seq.length; t++) if (predicted[b]![t] === seq[t + 1]) right++;
      assert.ok(right >= 26, `${right} of 28 next tokens right`);
    } finally {
      optimizer.dispose();
      ids.dispose();
      peft.dispose();
    }
  });

  test('repeated training steps do not grow the live tensor count (LoRA and DoRA)', async () => {
    for (const useDora of [false, true]) {
      const peft = await quietly(() => makePeft({ useDora }));
      const ids = tf.tensor2d(SEQUENCES.slice(0, 2), undefined, 'int32');
      const optimizer = tf.train.adam(LR);
      try {
        const vars = peft.parameters().filter((p) => p.trainable);
        const base = baseWeights(peft.model);
        step(peft, optimizer, ids, vars); // creates Adam's moment variables
        const live = tf.memory().numTensors;
        for (let i = 0; i < 4; i++) step(peft, optimizer, ids, vars);
        assert.equal(tf.memory().numTensors, live, `${useDora ? 'DoRA' : 'LoRA'}: tensors after 4 more steps`);
        assertBitIdentical(baseWeights(peft.model), base, 'base weights');
        if (useDora) {
          const magnitude = peft.model.getSubmodule('model.layers.0.self_attn.q_proj.lora_magnitude_vector');
          assert.ok(magnitude.parameters().every((p) => p.trainable));
        }
      } finally {
        optimizer.dispose();
        ids.dispose();
        peft.dispose();
      }
    }
  });
});
