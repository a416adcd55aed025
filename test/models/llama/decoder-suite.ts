// Tests every Llama-family architecture (Llama, Mistral, Qwen2) shares: imported by each one's modeling.test.ts.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import type { RawConfig } from '../../../src/models/config-fields.js';
import type { LlamaForCausalLM } from '../../../src/models/llama/modeling.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { causalLMClassFor } from '../../../src/models/registry.js';
import { Embedding, Linear, Module } from '../../../src/nn/index.js';
import type { ForwardContext, Layer } from '../../../src/nn/index.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';

export type DecoderClass = new (config: RawConfig, options?: { seed?: number }) => LlamaForCausalLM;

export interface DecoderSuiteOptions {
  /** `model_type`. */
  modelType: string;
  cls: DecoderClass;
  /** A small config (GQA included) with weights large enough that greedy decoding has no near-ties. */
  config: RawConfig;
}

/** Parameter names and shapes PyTorch gives for `config` with one layer, to compare with. */
export function parameterShapes(model: LlamaForCausalLM): [string, number[]][] {
  return [...model.namedParameters()].map(([n, p]) => [n, p.shape]);
}

/** Cross-entropy of next-token predictions computed by hand from logits, skipping -100 labels. */
export async function handLoss(logits: tf.Tensor3D, labels: number[][]): Promise<number> {
  const values = (await logits.array()) as number[][][];
  let total = 0;
  let count = 0;
  labels.forEach((row, b) => {
    for (let t = 0; t + 1 < row.length; t++) {
      const target = row[t + 1]!;
      if (target === -100) continue;
      const scores = values[b]![t]!;
      const max = Math.max(...scores);
      const logZ = max + Math.log(scores.reduce((s, v) => s + Math.exp(v - max), 0));
      total += logZ - scores[target]!;
      count++;
    }
  });
  return total / count;
}

/** A layer that records the context of each call, then runs the layer it wraps. */
class ContextSpy extends Module implements Layer {
  constructor(
    readonly inner: Layer,
    private readonly seen: Array<ForwardContext | undefined>,
  ) {
    super();
  }
  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    this.seen.push(ctx);
    return this.inner.forward(x, ctx);
  }
}

export function decoderSuite({ modelType, cls, config }: DecoderSuiteOptions): void {
  describe(`${cls.name} (shared decoder behaviour)`, () => {
    let model: LlamaForCausalLM;
    before(async () => {
      await setBackend();
      model = new cls(config, { seed: 7 });
    });

    test('the registry maps model_type to the class', () => {
      assert.equal(causalLMClassFor(modelType), cls);
      assert.equal(model.config.modelType, modelType);
    });

    test('rotary buffers are non-persistent: listed by namedBuffers, absent from the state dict', () => {
      assert.deepEqual(
        [...model.namedBuffers()].map(([n]) => n),
        ['model.rotary_emb.inv_freq', 'model.rotary_emb.original_inv_freq'],
      );
      assert.ok(!Object.keys(model.stateDict()).some((k) => k.includes('rotary_emb')));
    });

    test('random init as transformers: N(0, initializer_range) weights, zero biases, unit norms; seeded', () => {
      const std = model.config.initializerRange;
      for (const [name, p] of model.namedParameters()) {
        const values = Array.from(p.dataSync());
        if (name.endsWith('.bias')) assert.ok(values.every((v) => v === 0), name);
        else if (name.endsWith('norm.weight')) assert.ok(values.every((v) => v === 1), name);
        else if (values.length > 200) {
          const mean = values.reduce((s, v) => s + v, 0) / values.length;
          const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
          assert.ok(Math.abs(sd - std) < 0.25 * std, `${name}: std ${sd} vs ${std}`);
        }
      }
      const again = new cls(config, { seed: 7 });
      for (const [name, p] of again.namedParameters()) assertAllClose(p, model.stateDict()[name]!, { atol: 0, rtol: 0 }, name);
      again.dispose();
    });

    test('cached and uncached greedy generation give identical tokens', async () => {
      const prompt = [[3, 17, 5, 29, 11]];
      const cached = await model.generate(prompt, { maxNewTokens: 10, eosTokenId: [] });
      const uncached = await model.generate(prompt, { maxNewTokens: 10, eosTokenId: [], useCache: false });
      assert.deepEqual(cached, uncached);
      assert.equal(cached[0]!.length, 15);
    });

    test('incremental decoding with the cache gives the logits of full recomputation', () => {
      const ids = [[3, 17, 5, 29, 11, 8, 2, 40]];
      const full = model.forward({ inputIds: ids });
      const first = model.forward({ inputIds: [ids[0]!.slice(0, 5)], useCache: true });
      const second = model.forward({ inputIds: [ids[0]!.slice(5, 7)], pastKeyValues: first.pastKeyValues! });
      const third = model.forward({ inputIds: [ids[0]!.slice(7)], pastKeyValues: first.pastKeyValues! });
      const incremental = tf.concat([first.logits, second.logits, third.logits], 1);
      assertAllClose(incremental, full.logits, { atol: 1e-4, rtol: 1e-4 });
      incremental.dispose();
      disposeOutput(full);
      disposeOutput(second, { keepCache: true });
      disposeOutput(third, { keepCache: true });
      disposeOutput(first);
    });

    test('a left-padded batch decodes each row as it decodes alone', async () => {
      const short = [12, 7, 33];
      const long = [4, 9, 21, 6, 15];
      const aloneShort = await model.generate([short], { maxNewTokens: 6, eosTokenId: [] });
      const aloneLong = await model.generate([long], { maxNewTokens: 6, eosTokenId: [] });
      const padded = await model.generate([[0, 0, ...short], long], {
        maxNewTokens: 6,
        eosTokenId: [],
        attentionMask: [
          [0, 0, 1, 1, 1],
          [1, 1, 1, 1, 1],
        ],
      });
      assert.deepEqual(padded[0]!.slice(2), aloneShort[0]);
      assert.deepEqual(padded[1], aloneLong[0]);
      // The logits of the real positions agree too, with the positions generate derives from the mask.
      const batch = model.forward({ inputIds: [[0, 0, ...short]], attentionMask: [[0, 0, 1, 1, 1]], positionIds: [[1, 1, 0, 1, 2]] });
      const alone = model.forward({ inputIds: [short] });
      const tail = tf.slice(batch.logits, [0, 2, 0], [1, 3, -1]);
      assertAllClose(tail, alone.logits, { atol: 1e-4, rtol: 1e-4 });
      tail.dispose();
      disposeOutput(batch);
      disposeOutput(alone);
    });

    test('grouped-query attention equals multi-head attention with each key/value head repeated', () => {
      const heads = model.config.numAttentionHeads;
      const kvHeads = model.config.numKeyValueHeads;
      assert.ok(kvHeads < heads, 'the suite config must use GQA');
      const mha = new cls({ ...config, num_key_value_heads: heads });
      const headDim = model.config.headDim;
      const sd = model.stateDict();
      const values = new Map<string, tf.Tensor>();
      for (const [name, tensor] of Object.entries(sd)) {
        const kv = /\.(k_proj|v_proj)\.(weight|bias)$/.test(name);
        if (!kv) {
          values.set(name, tensor);
          continue;
        }
        // Head h of the MHA model is key/value head floor(h / groups) of the GQA model (repeat_interleave).
        const rows = tf.tidy(() => {
          const perHead = tf.split(tensor, kvHeads, 0);
          return tf.concat(Array.from({ length: heads }, (_, h) => perHead[Math.floor(h / (heads / kvHeads))]!), 0);
        });
        assert.equal(rows.shape[0], heads * headDim);
        values.set(name, rows);
      }
      mha.loadStateDict(values);
      const ids = [[5, 9, 13, 2, 44, 7]];
      const a = model.forward({ inputIds: ids });
      const b = mha.forward({ inputIds: ids });
      assertAllClose(a.logits, b.logits, { atol: 1e-4, rtol: 1e-4 });
      disposeOutput(a);
      disposeOutput(b);
      for (const [name, t] of values) if (!Object.hasOwn(sd, name) || sd[name] !== t) t.dispose();
      mha.dispose();
    });

    test('forward hands its context to every Linear and Embedding (adapters read it)', () => {
      const seen: Array<ForwardContext | undefined> = [];
      const targets = [...model.namedModules()].filter(([, m]) => m instanceof Linear || m instanceof Embedding);
      for (const [path, layer] of targets) model.setSubmodule(path, new ContextSpy(layer as Layer, seen));
      const ctx: ForwardContext = {};
      try {
        disposeOutput(model.forward({ inputIds: [[1, 2, 3]] }, ctx));
      } finally {
        for (const [path, layer] of targets) model.setSubmodule(path, layer);
      }
      assert.equal(seen.length, targets.length);
      assert.ok(seen.every((c) => c === ctx));
    });

    test('loss with labels equals cross-entropy computed by hand from the logits', async () => {
      const ids = [
        [5, 17, 30, 42, 9],
        [7, 7, 7, 1, 2],
      ];
      const labels = [
        [5, 17, -100, 42, 9],
        [7, 7, 7, 1, -100],
      ];
      const out = model.forward({ inputIds: ids, labels });
      assertAllClose(out.loss!, await handLoss(out.logits, labels), { atol: 1e-5, rtol: 1e-5 });
      disposeOutput(out);
    });

    test('hidden states: embeddings, each layer, then the final norm output; lm_head maps the last to logits', () => {
      const out = model.forward({ inputIds: [[1, 2, 3]], outputHiddenStates: true });
      const states = out.hiddenStates!;
      assert.equal(states.length, model.config.numHiddenLayers + 1);
      const embeds = tf.tidy(() => tf.gather(model.model.embed_tokens.weight, tf.tensor1d([1, 2, 3], 'int32')).expandDims(0));
      assertAllClose(states[0]!, embeds, { atol: 0, rtol: 0 });
      const viaHead = tf.matMul(states.at(-1)!.reshape([3, -1]), model.lm_head.weight, false, true);
      assertAllClose(viaHead, out.logits.reshape([3, -1]), { atol: 1e-5, rtol: 1e-5 });
      tf.dispose([embeds, viaHead]);
      disposeOutput(out);
    });

    test('gradients of the loss reach every parameter', () => {
      model.train();
      try {
        const { grads, value } = tf.variableGrads(() => model.forward({ inputIds: [[3, 8, 1, 22]], labels: [[3, 8, 1, 22]] }).loss!, model.parameters());
        const names = new Map([...model.namedParameters()].map(([n, p]) => [p.name, n]));
        assert.deepEqual(new Set(Object.keys(grads).map((k) => names.get(k))), new Set(names.values()));
        for (const g of Object.values(grads)) assert.ok(g.dataSync().every(Number.isFinite));
        tf.dispose([value, ...Object.values(grads)]);
      } finally {
        model.eval();
      }
    });

    test('no tensors leak across repeated forward and generate calls (cached, uncached, sampled, beam)', async () => {
      await model.generate([[1, 2]], { maxNewTokens: 3 }); // warm-up allocations of kernels
      await assertNoLeak(async () => {
        for (let i = 0; i < 3; i++) {
          disposeOutput(model.forward({ inputIds: [[1, 2, 3]], labels: [[1, 2, 3]], outputHiddenStates: true }));
          await model.generate([[1, 2, 3]], { maxNewTokens: 4 });
          await model.generate([[1, 2, 3]], { maxNewTokens: 4, useCache: false });
          await model.generate([[1, 2, 3]], { maxNewTokens: 4, doSample: true, seed: i });
          await model.generate([[1, 2, 3]], { maxNewTokens: 4, numBeams: 3 });
        }
      }, 'forward and generate calls');
    });
  });
}
