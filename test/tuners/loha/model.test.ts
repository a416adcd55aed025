// LoHaModel / getPeftModel with LoHa: the documented CLIP text-encoder example, target checks, rank/alpha patterns,
// several adapters, merge/unload, parameter counts, low_cpu_mem_usage, seeding, leaks.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { MergeError, UnsupportedLayerError } from '../../../src/errors.js';
import { loadSafetensors } from '../../../src/io/index.js';
import { CLIPTextModel } from '../../../src/models/clip/modeling.js';
import { GPT2LMHeadModel } from '../../../src/models/gpt2/modeling.js';
import { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { disposeEncoderOutput } from '../../../src/models/pretrained.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import type { Module } from '../../../src/nn/index.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { setAdapterStateDict } from '../../../src/tuners/adapter-state.js';
import { LoHaConfig } from '../../../src/tuners/loha/config.js';
import type { LoHaLayer } from '../../../src/tuners/loha/layer.js';
import { LoHaModel } from '../../../src/tuners/loha/model.js';
import { isTunerLayer } from '../../../src/tuners/tuner-layer.js';
import { assertNoLeak } from '../../helpers/assert.js';
import { repoRoot } from '../adapter-parity-suite.js';
import { TinyConvNet } from '../tiny-convnet.js';

before(async () => {
  await setBackend();
});

const quiet = { warn: () => undefined };
const convTargets = ['conv1d', 'conv2d', 'conv2d_1x1', 'linear'];
const tinyClip = {
  model_type: 'clip_text_model', vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2,
  num_attention_heads: 4, max_position_embeddings: 12, pad_token_id: 0, bos_token_id: 1, eos_token_id: 3,
};
const tinyLlama = {
  model_type: 'llama', vocab_size: 48, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 32, pad_token_id: 0, bos_token_id: 1, eos_token_id: 2,
};

const x = () => tf.randomNormal([2, 4, 16], 0, 1, 'float32', 42);
const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
const hasTunerLayer = (m: Module) => [...m.namedModules()].some(([, mod]) => isTunerLayer(mod));

/** Trainable LoHa parameters of one layer by PEFT's formula. */
function expectedParams(layer: LoHaLayer, r: number): number {
  const [out, inG, ...kernel] = layer.base_layer.weight.shape as number[];
  const k = kernel.reduce((a, b) => a * b, 1);
  return layer.isEffective('default') ? 2 * (r * out! + r * inG! + r * r * k) : 2 * r * (out! + inG! * k);
}

describe('LoHa on the documented example: CLIP text encoder (k_proj, q_proj, v_proj, out_proj, fc1, fc2)', () => {
  const config = () =>
    new LoHaConfig({ r: 8, alpha: 32, targetModules: ['k_proj', 'q_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'], rankDropout: 0, moduleDropout: 0, initWeights: true });
  const ids = [[1, 5, 9, 14, 3, 0], [1, 7, 3, 0, 0, 0]];
  const mask = [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]];

  test('new LoHaModel(textEncoder, config, "default") wraps the 12 projections and starts as the identity', () => {
    const clip = new CLIPTextModel(tinyClip, { seed: 3 });
    const base = clip.forward({ inputIds: ids, attentionMask: mask });
    const loha = new LoHaModel(clip, config(), 'default');
    const paths = loha.tunerLayers().map(([p]) => p);
    assert.equal(paths.length, 12);
    for (const l of [0, 1]) {
      for (const p of ['self_attn.k_proj', 'self_attn.q_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) assert.ok(paths.includes(`encoder.layers.${l}.${p}`), p);
    }
    for (const [, layer] of loha.tunerLayers()) assert.equal((layer as LoHaLayer).scaling.get('default'), 4);
    const out = loha.forward({ inputIds: ids, attentionMask: mask }) as ReturnType<CLIPTextModel['forward']>;
    assert.equal(diff(out.lastHiddenState, base.lastHiddenState), 0);
    assert.equal(diff(out.poolerOutput!, base.poolerOutput!), 0);
    disposeEncoderOutput(out);
    disposeEncoderOutput(base);
    loha.dispose();
  });

  test('getPeftModel(clip, LoHaConfig): a non-identity adapter changes the output; merged = unmerged; disabled = base', () => {
    const clip = new CLIPTextModel(tinyClip, { seed: 3 });
    const base = clip.forward({ inputIds: ids, attentionMask: mask });
    const peft = getPeftModel(clip, config().nonIdentityInit());
    assert.ok(peft.base_model instanceof LoHaModel);
    const out = peft.forward({ inputIds: ids, attentionMask: mask });
    assert.ok(diff(out.poolerOutput!, base.poolerOutput!) > 1e-3);
    const disabled = peft.disableAdapter(() => peft.forward({ inputIds: ids, attentionMask: mask }));
    assert.equal(diff(disabled.lastHiddenState, base.lastHiddenState), 0);
    peft.mergeAdapter({ safeMerge: true });
    const merged = peft.forward({ inputIds: ids, attentionMask: mask });
    assert.ok(diff(merged.lastHiddenState, out.lastHiddenState) < 1e-4);
    peft.unmergeAdapter();
    const plain = peft.mergeAndUnload();
    assert.ok(!hasTunerLayer(plain));
    const after = plain.forward({ inputIds: ids, attentionMask: mask });
    assert.ok(diff(after.lastHiddenState, out.lastHiddenState) < 1e-4);
    for (const o of [base, out, disabled, merged, after]) disposeEncoderOutput(o);
    plain.dispose();
  });
});

describe('LoHa targets', () => {
  test('GPT-2 Conv1D and Embedding are UnsupportedLayerError (PEFT: TypeError), and the model is left untouched', () => {
    const gpt2 = new GPT2LMHeadModel({ n_layer: 1, n_embd: 16, n_head: 2, vocab_size: 20, n_positions: 16 }, { seed: 1 });
    assert.throws(() => getPeftModel(gpt2, new LoHaConfig({ targetModules: ['c_attn'] })), (e: unknown) => e instanceof UnsupportedLayerError && e.kind === 'gpt2_conv1d');
    assert.throws(() => getPeftModel(gpt2, new LoHaConfig({ targetModules: 'all-linear' }, quiet)), UnsupportedLayerError);
    assert.ok(!hasTunerLayer(gpt2));
    gpt2.dispose();
    const llama = new LlamaForCausalLM(tinyLlama, { seed: 1 });
    assert.throws(() => getPeftModel(llama, new LoHaConfig({ targetModules: ['embed_tokens', 'q_proj'] })), (e: unknown) => e instanceof UnsupportedLayerError && e.kind === 'embedding');
    assert.ok(!hasTunerLayer(llama));
    llama.dispose();
  });

  test('default targets come from the model type (llama: q_proj, v_proj)', () => {
    const llama = new LlamaForCausalLM(tinyLlama, { seed: 1 });
    const peft = getPeftModel(llama, new LoHaConfig({ taskType: 'CAUSAL_LM' }));
    assert.deepEqual(peft.base_model.tunerLayers().map(([p]) => p.split('.').slice(-1)[0]).sort(), ['q_proj', 'q_proj', 'v_proj', 'v_proj']);
    peft.dispose();
  });

  test('rank_pattern / alpha_pattern set r, alpha and scaling per module', async () => {
    const peft = getPeftModel(await TinyConvNet.fromFixture(), new LoHaConfig({ r: 4, alpha: 8, targetModules: convTargets, rankPattern: { conv2d: 2 }, alphaPattern: { linear: 3 } }));
    const layers = new Map(peft.base_model.tunerLayers()) as Map<string, LoHaLayer>;
    assert.deepEqual(Object.fromEntries([...layers].map(([k, l]) => [k, [l.r.get('default'), l.alpha.get('default'), l.scaling.get('default')]])), {
      conv1d: [4, 8, 2], conv2d: [2, 8, 4], conv2d_1x1: [4, 8, 2], linear: [4, 3, 0.75],
    });
    assert.deepEqual(layers.get('conv2d')!.hada_w1_a.get('default')!.shape, [8, 2]);
    peft.dispose();
  });
});

describe('LoHa parameter counts', () => {
  for (const useEffectiveConv2d of [false, true]) {
    test(`tiny-convnet, r 4, ${useEffectiveConv2d ? 'Tucker' : 'flat'}: per-layer formula, getNbTrainableParameters, printTrainableParameters`, async () => {
      const peft = getPeftModel(await TinyConvNet.fromFixture(), new LoHaConfig({ r: 4, targetModules: convTargets, useEffectiveConv2d }));
      const perLayer = Object.fromEntries(peft.base_model.tunerLayers().map(([p, l]) => [p, l.numParameters({ trainableOnly: true })]));
      const formula = Object.fromEntries(peft.base_model.tunerLayers().map(([p, l]) => [p, expectedParams(l as LoHaLayer, 4)]));
      assert.deepEqual(perLayer, formula);
      // conv1d 4->8 k3, conv2d 8->8 3x3, conv2d_1x1 8->6, linear 96->5:
      assert.deepEqual(formula, useEffectiveConv2d
        ? { conv1d: 2 * (32 + 16 + 16 * 3), conv2d: 2 * (32 + 32 + 16 * 9), conv2d_1x1: 2 * 4 * (6 + 8), linear: 2 * 4 * (5 + 96) }
        : { conv1d: 2 * 4 * (8 + 12), conv2d: 2 * 4 * (8 + 72), conv2d_1x1: 2 * 4 * (6 + 8), linear: 2 * 4 * (5 + 96) });
      const trainable = Object.values(formula).reduce((a, b) => a + b, 0);
      const all = trainable + 1227;
      assert.deepEqual(peft.getNbTrainableParameters(), [trainable, all]);
      const log = console.log;
      console.log = () => undefined;
      let line: string;
      try {
        line = peft.printTrainableParameters();
      } finally {
        console.log = log;
      }
      assert.equal(line, `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`);
      peft.dispose();
    });
  }

  test('Llama linear layers: 2 r (in + out) each', () => {
    const llama = new LlamaForCausalLM(tinyLlama, { seed: 1 });
    const baseCount = llama.numParameters();
    const peft = getPeftModel(llama, new LoHaConfig({ r: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }));
    // q/o 32x32, k/v 32->16 (2 kv heads of 8), gate/up 32->48, down 48->32
    const perBlock = 2 * 4 * (64 + 64 + 48 + 48 + 80 + 80 + 80);
    assert.deepEqual(peft.getNbTrainableParameters(), [2 * perBlock, baseCount + 2 * perBlock]);
    peft.dispose();
  });
});

describe('LoHa adapters: several, merge, unload, options', () => {
  test('a second adapter is inactive and frozen until set; both active add their deltas; merged = unmerged; delete refuses while merged', async () => {
    const peft = getPeftModel(await TinyConvNet.fromFixture(), new LoHaConfig({ r: 4, targetModules: convTargets, initWeights: false }), { seed: 7 });
    const input = x();
    const base = peft.disableAdapter(() => peft.forward(input));
    const first = peft.forward(input);
    peft.addAdapter('second', new LoHaConfig({ r: 2, alpha: 3, targetModules: ['conv2d', 'linear'], useEffectiveConv2d: true, initWeights: false }));
    assert.deepEqual(peft.activeAdapters, ['default']);
    const conv2d = peft.model.conv2d as unknown as LoHaLayer;
    assert.equal(conv2d.hada_t1.get('second')!.trainable, false);
    assert.equal(conv2d.hada_w1_a.get('default')!.trainable, true);
    assert.equal(diff(peft.forward(input), first), 0);
    peft.setAdapter('second');
    const second = peft.forward(input);
    assert.equal(conv2d.hada_t1.get('second')!.trainable, true);
    assert.equal(conv2d.hada_w1_a.get('default')!.trainable, false);
    peft.base_model.setAdapter(['default', 'second']);
    const both = peft.forward(input);
    assert.ok(diff(both, first) > 1e-3 && diff(both, second) > 1e-3);
    // Each layer's contribution adds: check it on the last layer, whose input is the same for every set.
    peft.mergeAdapter({ safeMerge: true });
    assert.deepEqual(conv2d.mergedAdapters, ['default', 'second']);
    assert.ok(diff(peft.forward(input), both) < 1e-4);
    assert.throws(() => peft.deleteAdapter('second'), MergeError);
    peft.unmergeAdapter();
    assert.ok(diff(peft.forward(input), both) < 1e-5);
    peft.deleteAdapter('second');
    assert.deepEqual(peft.activeAdapters, ['default']);
    assert.ok(!conv2d.hada_t1.has('second'));
    // The merge round trip leaves the base weights a few float32 ulps of |ΔW| off, as in the unmerge check above.
    assert.ok(diff(peft.forward(input), first) < 1e-5);
    const unloaded = peft.unload();
    assert.ok(!hasTunerLayer(unloaded));
    assert.ok(diff(unloaded.forward(input), base) < 1e-5);
    unloaded.dispose();
  });

  test('lowCpuMemUsage: tensors start at zero (no draws), and loading the saved weights gives PEFT outputs', async () => {
    const dir = join(repoRoot, 'test/fixtures/parity/adapters/loha-convnet-effective');
    const model = await TinyConvNet.fromFixture();
    const loha = new LoHaModel(model, new LoHaConfig({ r: 4, targetModules: convTargets, useEffectiveConv2d: true, initWeights: false }), 'default', { lowCpuMemUsage: true });
    for (const p of loha.parameters().filter((q) => q.trainable)) assert.ok(p.dataSync().every((v) => v === 0));
    const weights = await loadSafetensors(join(dir, 'adapter_model.safetensors'));
    const report = setAdapterStateDict(loha, 'default', weights);
    assert.deepEqual(report, { missingKeys: [], unexpectedKeys: [] });
    const ref = await loadSafetensors(join(dir, 'reference.safetensors'));
    const out = loha.forward(ref.get('x')!) as tf.Tensor;
    assert.ok(diff(out, ref.get('logits')!) < 1e-4);
    for (const t of [...weights.values(), ...ref.values(), out]) t.dispose();
    loha.dispose();
  });

  test('the seed option makes adapter tensors reproducible; different seeds differ', async () => {
    const make = async (seed: number) => new LoHaModel(await TinyConvNet.fromFixture(), new LoHaConfig({ targetModules: convTargets, initWeights: false }), 'default', { seed });
    const [a, b, c] = [await make(5), await make(5), await make(6)];
    const values = (m: LoHaModel) => m.parameters().filter((p) => p.trainable).map((p) => Array.from(p.dataSync()));
    assert.deepEqual(values(a), values(b));
    assert.notDeepEqual(values(a), values(c));
    for (const m of [a, b, c]) m.dispose();
  });

  test('no tensor leaks across repeated forward / merge / unmerge / disable on a Llama, in training with dropouts', async () => {
    const llama = new LlamaForCausalLM(tinyLlama, { seed: 2 });
    const peft = getPeftModel(llama, new LoHaConfig({ targetModules: ['q_proj', 'v_proj', 'down_proj'], initWeights: false, rankDropout: 0.2, moduleDropout: 0.2 }));
    const ids = [[1, 5, 7, 9, 11], [1, 4, 6, 8, 10]];
    const run = () => disposeOutput(peft.forward({ inputIds: ids }));
    run();
    await assertNoLeak(() => {
      for (let i = 0; i < 3; i++) {
        peft.train();
        run();
        peft.eval();
        run();
        peft.mergeAdapter();
        run();
        peft.unmergeAdapter();
        peft.disableAdapter(run);
      }
    });
    peft.dispose();
  });
});

