// The fused decoder (all of a Llama's layers in one ONNX graph at inference) against the same model composing its
// modules (fused kernels off), which the parity suites check against transformers: forward, cached decoding with
// the in-place cache, LoRA and X-LoRA folded into the projections, beam search, and the cases that must fall back.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, setFusedKernels, tf } from '../../../src/engine/index.js';
import { KVCache } from '../../../src/generation/cache.js';
import { generate } from '../../../src/generation/generate.js';
import { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { Linear } from '../../../src/nn/index.js';
import type { CausalLMInput } from '../../../src/models/outputs.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { XLoraConfig, addXLoraToModel } from '../../../src/tuners/xlora/index.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';
import { saveExpert, seedLoraWeights, tempDir, withWarnings } from '../../tuners/xlora/fixture.js';
import { ortAvailable } from './_fused.js';

const CONFIG = {
  vocab_size: 40,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 96,
  initializer_range: 0.2,
  attention_bias: true,
  eos_token_id: 39,
  pad_token_id: 0,
};

type Forward = (input: CausalLMInput) => { logits: tf.Tensor };

function composed<T>(fn: () => T): T {
  const previous = setFusedKernels(false);
  try {
    return fn();
  } finally {
    setFusedKernels(previous);
  }
}

/** How many fused decoder kernels (all layers of a model in one) `fn` ran. */
async function fusedLayerCalls(fn: () => tf.Tensor): Promise<number> {
  const info = await tf.profile(() => fn());
  return info.kernels.filter((k) => k.name === 'PeftTsDecoderStack').length;
}

/** Logits of `forward` fused and composed: equal up to float rounding, the fused one using `calls` decoder kernels. */
async function assertFusedMatches(forward: Forward, input: CausalLMInput, calls: number, what: string): Promise<void> {
  assert.equal(await fusedLayerCalls(() => forward(input).logits), calls, `${what}: fused kernels per forward`);
  const fused = forward(input).logits;
  const reference = composed(() => forward(input).logits);
  try {
    assertAllClose(fused, reference, { atol: 2e-5, rtol: 1e-4 }, what);
  } finally {
    tf.dispose([fused, reference]);
  }
}

describe('fused Llama decoder layer', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  before(async () => {
    await setBackend('onnxruntime');
  });

  test('forward with grouped-query attention, projection biases and left padding equals the composed layers', async () => {
    const model = new LlamaForCausalLM(CONFIG, { seed: 3 });
    try {
      const input = { inputIds: [[0, 0, 5, 9, 13], [4, 8, 15, 16, 23]], attentionMask: [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]] };
      await assertFusedMatches((i) => model.forward(i), input, 1, 'logits');
    } finally {
      model.dispose();
    }
  });

  test('cached decoding appends in place (across a slab regrowth) and equals composed decoding, without leaking', async () => {
    const model = new LlamaForCausalLM(CONFIG, { seed: 4 });
    const fusedCache = new KVCache();
    const composedCache = new KVCache();
    // A reservation just past the prompt: the second step outgrows it and the slab is reallocated.
    fusedCache.reserve(6);
    try {
      const run = (ids: number[][], cache: KVCache) => {
        const past = cache.getSeqLength();
        return model.forward({ inputIds: ids, pastKeyValues: cache, positionIds: ids.map(() => ids[0]!.map((_, i) => past + i)) }).logits;
      };
      const step = async (ids: number[][], what: string) => {
        const info = await tf.profile(() => run(ids, fusedCache));
        const fused = info.result as tf.Tensor;
        const reference = composed(() => run(ids, composedCache));
        try {
          assert.equal(info.kernels.filter((k) => k.name === 'PeftTsDecoderStack').length, 1, `${what}: fused kernels`);
          assertAllClose(fused, reference, { atol: 2e-5, rtol: 1e-4 }, what);
          assert.equal(fusedCache.getSeqLength(), composedCache.getSeqLength(), `${what}: cached length`);
        } finally {
          tf.dispose([fused, reference]);
        }
      };
      await step([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]], 'prompt');
      const before = tf.memory().numTensors;
      for (const [i, ids] of [[[5], [8]], [[9], [7]], [[2], [9]], [[6], [3]]].entries()) await step(ids, `step ${i}`);
      assert.equal(tf.memory().numTensors, before, 'tensors grew across decoding steps');
      assert.equal(fusedCache.getSeqLength(), 9);
    } finally {
      fusedCache.dispose();
      composedCache.dispose();
      model.dispose();
    }
  });

  test('greedy and beam-search generation with the in-place cache equal generation without a cache', async () => {
    const model = new LlamaForCausalLM(CONFIG, { seed: 5 });
    try {
      const ids = [[0, 7, 3, 12], [5, 2, 8, 1]];
      const attentionMask = [[0, 1, 1, 1], [1, 1, 1, 1]];
      for (const numBeams of [1, 3]) {
        const options = { maxNewTokens: 6, numBeams, attentionMask, eosTokenId: [] as number[] };
        const cached = await assertNoLeak(() => generate(model, ids, { ...options, useCache: true }), 'cached generation');
        const uncached = await composed(() => generate(model, ids, { ...options, useCache: false }));
        assert.deepEqual(cached, uncached, `${numBeams} beam(s)`);
      }
    } finally {
      model.dispose();
    }
  });

  test('LoRA: two active adapters (one rsLoRA) fold into the projections; merged and disabled adapters too', async () => {
    const peft = getPeftModel(
      new LlamaForCausalLM(CONFIG, { seed: 6 }),
      new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj'], initLoraWeights: false }),
    );
    try {
      peft.addAdapter('second', new LoraConfig({ r: 2, loraAlpha: 3, useRslora: true, targetModules: ['k_proj', 'up_proj', 'q_proj'], initLoraWeights: false }));
      seedLoraWeights(peft, 'default', 10);
      seedLoraWeights(peft, 'second', 20);
      peft.setAdapter(['default', 'second']);
      peft.eval();
      const input = { inputIds: [[1, 2, 3, 4, 5, 6]] };
      const forward: Forward = (i) => peft.forward(i);
      await assertFusedMatches(forward, input, 1, 'two adapters');
      await peft.disableAdapter(() => assertFusedMatches(forward, input, 1, 'adapters disabled'));
      peft.setAdapter('default');
      peft.mergeAdapter();
      await assertFusedMatches(forward, input, 1, 'merged');
    } finally {
      peft.dispose();
    }
  });

  describe('X-LoRA', () => {
    const tmp = tempDir('fused-xlora-');
    after(() => tmp.cleanup());

    test('both passes fold the experts (top-k, a nonzero scaling-pass value) and equal the composed model', async () => {
      const specs = {
        a: { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], seed: 100 },
        b: { r: 2, loraAlpha: 3, targetModules: ['q_proj', 'down_proj'], seed: 200 },
      };
      for (const [name, spec] of Object.entries(specs)) await saveExpert(join(tmp.dir, name), spec, CONFIG);
      const { result: xlora } = await withWarnings(() =>
        addXLoraToModel({
          model: new LlamaForCausalLM(CONFIG, { seed: 7 }),
          xloraConfig: new XLoraConfig({ xloraDepth: 1, layerwiseScalings: true, topKLora: 1 }),
          adapters: { a: join(tmp.dir, 'a'), b: join(tmp.dir, 'b') },
          seed: 5,
        }),
      );
      try {
        xlora.eval();
        const input = { inputIds: [[1, 4, 9, 16, 25]] };
        const forward: Forward = (i) => xlora.forward(i);
        // One kernel per pass.
        await assertFusedMatches(forward, input, 2, 'top-k 1, scaling pass value 0');
        xlora.setTopkLora(null);
        xlora.setScalingPassValue(0.5);
        await assertFusedMatches(forward, input, 2, 'scaling pass value 0.5');
        const options = { maxNewTokens: 5, eosTokenId: [] as number[] };
        const cached = await xlora.generate(input.inputIds, { ...options, useCache: true });
        const reference = await composed(() => xlora.generate(input.inputIds, { ...options, useCache: false }));
        assert.deepEqual(cached, reference, 'generated tokens');
      } finally {
        xlora.dispose();
      }
    });
  });

  test('layers that do not fold run composed: DoRA, dropout in training mode, a GELU MLP', async () => {
    const dora = getPeftModel(new LlamaForCausalLM(CONFIG, { seed: 8 }), new LoraConfig({ r: 2, targetModules: ['q_proj'], useDora: true }));
    const dropout = getPeftModel(new LlamaForCausalLM(CONFIG, { seed: 9 }), new LoraConfig({ r: 2, targetModules: ['v_proj'], loraDropout: 0.5 }));
    const gelu = new LlamaForCausalLM({ ...CONFIG, hidden_act: 'gelu' }, { seed: 10 });
    try {
      const ids = [[1, 2, 3]];
      dora.eval();
      assert.equal(await fusedLayerCalls(() => dora.forward({ inputIds: ids }).logits), 0, 'DoRA');
      dropout.train();
      assert.equal(await fusedLayerCalls(() => dropout.forward({ inputIds: ids }).logits), 0, 'dropout while training');
      dropout.eval();
      assert.equal(await fusedLayerCalls(() => dropout.forward({ inputIds: ids }).logits), 1, 'dropout in eval mode folds');
      assert.equal(await fusedLayerCalls(() => gelu.forward({ inputIds: ids }).logits), 0, 'GELU MLP');
      // A Linear subclass with its own forward is not inlined.
      class Doubled extends Linear {
        override forward(x: tf.Tensor): tf.Tensor {
          return tf.mul(super.forward(x), 2);
        }
      }
      const [doubled, plain] = [new Doubled(4, 4), new Linear(4, 4)];
      assert.equal(doubled.fusedProjection(), undefined);
      assert.equal(plain.fusedProjection()?.weight, plain.weight);
      doubled.dispose();
      plain.dispose();
    } finally {
      for (const m of [dora, dropout, gelu]) m.dispose();
    }
  });
});
