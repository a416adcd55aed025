import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError } from '../../../src/errors.js';
import { saveCheckpoint, writeJsonAtomic } from '../../../src/io/index.js';
import { AutoModelForCausalLM } from '../../../src/models/auto.js';
import { parseLlamaConfig } from '../../../src/models/llama/config.js';
import { LlamaAttention, LlamaForCausalLM, LlamaModel, LlamaRMSNorm, LlamaRotaryEmbedding } from '../../../src/models/llama/modeling.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { assertAllClose } from '../../helpers/assert.js';
import { decoderSuite, parameterShapes } from './decoder-suite.js';

const tiny = { vocab_size: 11, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32 };

decoderSuite({
  modelType: 'llama',
  cls: LlamaForCausalLM,
  config: {
    vocab_size: 48,
    hidden_size: 32,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    initializer_range: 0.3,
    attention_bias: true,
    mlp_bias: true,
  },
});

before(async () => {
  await setBackend();
});

/** Reads the rotary module's `inv_freq` buffer. */
function invFreq(model: LlamaForCausalLM): number[] {
  return Array.from(model.model.rotary_emb.inv_freq.dataSync());
}

/** `1 / theta^(2i / dim)` in float64. */
function plainInvFreq(theta: number, dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));
}

describe('LlamaForCausalLM module tree', () => {
  test('namedModules matches transformers named_modules() order, rotary_emb after norm', () => {
    const model = new LlamaForCausalLM(tiny);
    // From PyTorch: [n for n, _ in LlamaForCausalLM(LlamaConfig(**tiny)).named_modules()] (transformers 5.23)
    assert.deepEqual(
      [...model.namedModules()].map(([n]) => n),
      [
        '', 'model', 'model.embed_tokens', 'model.layers', 'model.layers.0', 'model.layers.0.self_attn',
        'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.v_proj',
        'model.layers.0.self_attn.o_proj', 'model.layers.0.mlp', 'model.layers.0.mlp.gate_proj',
        'model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj', 'model.layers.0.mlp.act_fn',
        'model.layers.0.input_layernorm', 'model.layers.0.post_attention_layernorm', 'model.norm', 'model.rotary_emb',
        'lm_head',
      ],
    );
    assert.ok(model.model instanceof LlamaModel);
    assert.ok(model.model.layers.at(0).self_attn instanceof LlamaAttention);
    assert.ok(model.model.norm instanceof LlamaRMSNorm);
    assert.ok(model.model.rotary_emb instanceof LlamaRotaryEmbedding);
    model.dispose();
  });

  test('prints as PyTorch prints the module (but for the activation class name)', () => {
    const model = new LlamaForCausalLM({ ...tiny, num_hidden_layers: 2 });
    // From PyTorch: print(LlamaForCausalLM(LlamaConfig(**tiny, num_hidden_layers=2))), where act_fn is `SiLUActivation()`.
    assert.equal(
      model.toString(),
      [
        'LlamaForCausalLM(',
        '  (model): LlamaModel(',
        '    (embed_tokens): Embedding(11, 8)',
        '    (layers): ModuleList(',
        '      (0-1): 2 x LlamaDecoderLayer(',
        '        (self_attn): LlamaAttention(',
        '          (q_proj): Linear(in_features=8, out_features=8, bias=False)',
        '          (k_proj): Linear(in_features=8, out_features=4, bias=False)',
        '          (v_proj): Linear(in_features=8, out_features=4, bias=False)',
        '          (o_proj): Linear(in_features=8, out_features=8, bias=False)',
        '        )',
        '        (mlp): LlamaMLP(',
        '          (gate_proj): Linear(in_features=8, out_features=16, bias=False)',
        '          (up_proj): Linear(in_features=8, out_features=16, bias=False)',
        '          (down_proj): Linear(in_features=16, out_features=8, bias=False)',
        '          (act_fn): Activation(silu)',
        '        )',
        '        (input_layernorm): LlamaRMSNorm((8,), eps=1e-06)',
        '        (post_attention_layernorm): LlamaRMSNorm((8,), eps=1e-06)',
        '      )',
        '    )',
        '    (norm): LlamaRMSNorm((8,), eps=1e-06)',
        '    (rotary_emb): LlamaRotaryEmbedding()',
        '  )',
        '  (lm_head): Linear(in_features=8, out_features=11, bias=False)',
        ')',
      ].join('\n'),
    );
    model.dispose();
  });

  test('parameters without biases by default; attention_bias and mlp_bias add them as PyTorch does', () => {
    const plain = new LlamaForCausalLM(tiny);
    assert.ok(!parameterShapes(plain).some(([n]) => n.endsWith('.bias')));
    plain.dispose();
    const biased = new LlamaForCausalLM({ ...tiny, attention_bias: true, mlp_bias: true });
    // From PyTorch: [(n, list(p.shape)) for n, p in LlamaForCausalLM(LlamaConfig(attention_bias=True, mlp_bias=True, **tiny)).named_parameters()]
    assert.deepEqual(parameterShapes(biased), [
      ['model.embed_tokens.weight', [11, 8]],
      ['model.layers.0.self_attn.q_proj.weight', [8, 8]], ['model.layers.0.self_attn.q_proj.bias', [8]],
      ['model.layers.0.self_attn.k_proj.weight', [4, 8]], ['model.layers.0.self_attn.k_proj.bias', [4]],
      ['model.layers.0.self_attn.v_proj.weight', [4, 8]], ['model.layers.0.self_attn.v_proj.bias', [4]],
      ['model.layers.0.self_attn.o_proj.weight', [8, 8]], ['model.layers.0.self_attn.o_proj.bias', [8]],
      ['model.layers.0.mlp.gate_proj.weight', [16, 8]], ['model.layers.0.mlp.gate_proj.bias', [16]],
      ['model.layers.0.mlp.up_proj.weight', [16, 8]], ['model.layers.0.mlp.up_proj.bias', [16]],
      ['model.layers.0.mlp.down_proj.weight', [8, 16]], ['model.layers.0.mlp.down_proj.bias', [8]],
      ['model.layers.0.input_layernorm.weight', [8]], ['model.layers.0.post_attention_layernorm.weight', [8]],
      ['model.norm.weight', [8]], ['lm_head.weight', [11, 8]],
    ]);
    biased.dispose();
  });

  test('tie_word_embeddings shares lm_head.weight with model.embed_tokens.weight', () => {
    const model = new LlamaForCausalLM({ ...tiny, tie_word_embeddings: true });
    const sd = model.stateDict();
    assert.equal(sd['lm_head.weight'], sd['model.embed_tokens.weight']);
    assert.equal(model.numParameters(), 11 * 8 + 8 * 8 + 2 * 4 * 8 + 8 * 8 + 3 * 16 * 8 + 3 * 8);
    model.dispose();
  });

  test('the padding row of embed_tokens (pad_token_id) starts as zeros', () => {
    const model = new LlamaForCausalLM({ ...tiny, pad_token_id: 3 }, { seed: 1 });
    assert.equal(model.model.embed_tokens.paddingIdx, 3);
    const rows = model.model.embed_tokens.weight.arraySync() as number[][];
    assert.ok(rows[3]!.every((v) => v === 0));
    assert.ok(rows[2]!.some((v) => v !== 0));
    model.dispose();
  });
});

describe('LlamaConfig', () => {
  test('defaults are those of transformers LlamaConfig', () => {
    const c = parseLlamaConfig({});
    assert.equal(c.vocabSize, 32000);
    assert.equal(c.hiddenSize, 4096);
    assert.equal(c.intermediateSize, 11008);
    assert.equal(c.numHiddenLayers, 32);
    assert.equal(c.numAttentionHeads, 32);
    assert.equal(c.numKeyValueHeads, 32);
    assert.equal(c.headDim, 128);
    assert.equal(c.hiddenAct, 'silu');
    assert.equal(c.maxPositionEmbeddings, 2048);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.initializerRange, 0.02);
    assert.deepEqual(c.ropeParameters, { ropeType: 'default', ropeTheta: 10000 });
    assert.equal(c.attentionBias, false);
    assert.equal(c.mlpBias, false);
    assert.equal(c.tieWordEmbeddings, false);
    assert.deepEqual(c.bosTokenId, [1]);
    assert.deepEqual(c.eosTokenId, [2]);
    assert.equal(c.padTokenId, undefined);
    assert.equal(c.slidingWindow, null);
    assert.ok(c.layerTypes.every((t) => t === 'full_attention'));
  });

  test('head_dim and num_key_value_heads as given', () => {
    const c = parseLlamaConfig({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32 });
    assert.equal(c.headDim, 32);
    assert.equal(c.numKeyValueHeads, 2);
  });

  test('the legacy rope_scaling form and transformers 5 rope_parameters form read the same', () => {
    const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const legacy = parseLlamaConfig({ rope_theta: 500000, rope_scaling: { rope_type: 'llama3', ...llama3 } });
    const v5 = parseLlamaConfig({ rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...llama3 } });
    const expected = { ropeType: 'llama3', ropeTheta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    assert.deepEqual(legacy.ropeParameters, expected);
    assert.deepEqual(v5.ropeParameters, expected);
    // `type` is the old name of `rope_type`; a null rope_scaling means none.
    assert.deepEqual(parseLlamaConfig({ rope_scaling: { type: 'linear', factor: 2 } }).ropeParameters, { ropeType: 'linear', ropeTheta: 10000, factor: 2 });
    assert.deepEqual(parseLlamaConfig({ rope_scaling: null, rope_theta: 1e6 }).ropeParameters, { ropeType: 'default', ropeTheta: 1e6 });
    // llama3 without original_max_position_embeddings falls back to max_position_embeddings.
    const fallback = parseLlamaConfig({ max_position_embeddings: 128, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } });
    assert.equal(fallback.ropeParameters.originalMaxPositionEmbeddings, 128);
  });

  test('bad configs throw ConfigError naming the fields', () => {
    assert.throws(() => parseLlamaConfig({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), (e: unknown) => e instanceof ConfigError && /yarn/.test(e.message));
    assert.throws(() => parseLlamaConfig({ rope_scaling: { rope_type: 'llama3', factor: 8 } }), (e: unknown) => e instanceof ConfigError && /low_freq_factor/.test(e.message));
    assert.throws(() => parseLlamaConfig({ rope_scaling: { rope_type: 'linear' } }), (e: unknown) => e instanceof ConfigError && /factor/.test(e.message));
    assert.throws(() => parseLlamaConfig({ num_attention_heads: 8, num_key_value_heads: 3, hidden_size: 64 }), (e: unknown) => e instanceof ConfigError && /num_key_value_heads/.test(e.message));
    assert.throws(() => parseLlamaConfig({ hidden_size: 10, num_attention_heads: 4 }), (e: unknown) => e instanceof ConfigError && /num_attention_heads/.test(e.message));
    assert.throws(() => parseLlamaConfig({ hidden_act: 'nope' }), (e: unknown) => e instanceof ConfigError && /hidden_act/.test(e.message));
    assert.throws(() => parseLlamaConfig({ partial_rotary_factor: 0.5 }), (e: unknown) => e instanceof ConfigError && /partial_rotary_factor/.test(e.message));
  });
});

describe('Llama rotary embeddings', () => {
  const base = { vocab_size: 11, hidden_size: 64, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 4 };

  test('default inv_freq is 1 / theta^(2i / head_dim)', () => {
    const model = new LlamaForCausalLM({ ...base, rope_theta: 500000 });
    assertAllClose(invFreq(model), plainInvFreq(500000, 16), { atol: 0, rtol: 1e-6 });
    assert.deepEqual(invFreq(model), Array.from(model.model.rotary_emb.original_inv_freq.dataSync()));
    model.dispose();
  });

  test('llama3 scaling: high frequencies kept, low ones divided by factor, the band between smoothed', () => {
    const [theta, factor, low, high, original] = [10000, 8, 1, 4, 64];
    const model = new LlamaForCausalLM({
      ...base,
      max_position_embeddings: 256,
      rope_theta: theta,
      rope_scaling: { rope_type: 'llama3', factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: original },
    });
    // head_dim 16: wavelengths 2π/inv ≈ 6.3, 19.9, 62.8, 199, ... against the band [64/4, 64/1] = [16, 64].
    const expected = plainInvFreq(theta, 16).map((inv) => {
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen < original / high) return inv;
      if (wavelen > original / low) return inv / factor;
      const smooth = (original / wavelen - low) / (high - low);
      return ((1 - smooth) * inv) / factor + smooth * inv;
    });
    assertAllClose(invFreq(model), expected, { atol: 0, rtol: 1e-6 });
    // The three regimes all occur: unchanged, smoothed (index 1, 2), divided (index 3 on).
    const plain = plainInvFreq(theta, 16);
    assert.equal(expected[0], plain[0]);
    assert.ok(expected[1]! < plain[1]! && expected[1]! > plain[1]! / factor);
    assert.ok(expected[2]! < plain[2]! && expected[2]! > plain[2]! / factor);
    assert.equal(expected[3], plain[3]! / factor);
    model.dispose();
  });

  test('linear scaling divides inv_freq by factor', () => {
    const model = new LlamaForCausalLM({ ...base, rope_scaling: { type: 'linear', factor: 4 } });
    assertAllClose(invFreq(model), plainInvFreq(10000, 16).map((v) => v / 4), { atol: 0, rtol: 1e-6 });
    model.dispose();
  });

  test('dynamic NTK scaling grows the base past max_position_embeddings and restores it for short inputs', () => {
    const model = new LlamaForCausalLM({ ...base, max_position_embeddings: 8, rope_scaling: { type: 'dynamic', factor: 2 } });
    const original = plainInvFreq(10000, 16);
    assertAllClose(invFreq(model), original, { atol: 0, rtol: 1e-6 });
    disposeOutput(model.forward({ inputIds: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3]] }));
    // seq_len 12: base' = base * (factor * 12 / 8 - (factor - 1))^(dim / (dim - 2))
    const grown = 10000 * (2 * 12 / 8 - 1) ** (16 / 14);
    assertAllClose(invFreq(model), plainInvFreq(grown, 16), { atol: 0, rtol: 1e-5 });
    disposeOutput(model.forward({ inputIds: [[1, 2, 3]] }));
    assertAllClose(invFreq(model), original, { atol: 0, rtol: 1e-6 });
    model.dispose();
  });

  test('RoPE makes attention depend on relative positions only: shifting every position leaves the logits', () => {
    const model = new LlamaForCausalLM({ ...base, num_hidden_layers: 2, initializer_range: 0.3 }, { seed: 3 });
    const ids = [[4, 8, 1, 9]];
    const a = model.forward({ inputIds: ids });
    const b = model.forward({ inputIds: ids, positionIds: [[5, 6, 7, 8]] });
    assertAllClose(a.logits, b.logits, { atol: 1e-4, rtol: 1e-4 });
    const c = model.forward({ inputIds: ids, positionIds: [[0, 2, 4, 6]] });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a.logits, c.logits))).dataSync()[0]!);
    assert.ok(diff > 1e-3, 'positions must matter');
    for (const o of [a, b, c]) disposeOutput(o);
    model.dispose();
  });
});

describe('loading Llama checkpoints', () => {
  test('an old checkpoint (rotary inv_freq saved per layer, bare-model keys, no tied lm_head) loads strictly', async () => {
    const config = { model_type: 'llama', ...tiny, num_hidden_layers: 2, tie_word_embeddings: true };
    const source = new LlamaForCausalLM(config, { seed: 12 });
    const tensors = new Map<string, tf.Tensor>();
    for (const [key, value] of Object.entries(source.stateDict())) {
      if (key === 'lm_head.weight') continue;
      tensors.set(key.replace(/^model\./, ''), value);
    }
    const invFreqs = [0, 1].map((i) => {
      const t = tf.ones([2]);
      tensors.set(`layers.${i}.self_attn.rotary_emb.inv_freq`, t);
      return t;
    });
    const dir = mkdtempSync(join(tmpdir(), 'llama-ckpt-'));
    try {
      await writeJsonAtomic(join(dir, 'config.json'), config);
      await saveCheckpoint(dir, tensors);
      const loaded = await AutoModelForCausalLM.fromPretrained(dir);
      assert.ok(loaded instanceof LlamaForCausalLM);
      const ids = [[1, 4, 9, 2]];
      const a = source.forward({ inputIds: ids });
      const b = loaded.forward({ inputIds: ids });
      assertAllClose(b.logits, a.logits, { atol: 0, rtol: 0 });
      disposeOutput(a);
      disposeOutput(b);
      loaded.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      tf.dispose(invFreqs);
      source.dispose();
    }
  });
});

describe('forwardHidden (the base model without the LM head)', () => {
  test('returns the hidden states forward computes, and the LM head of the last one gives forward\'s logits', () => {
    const model = new LlamaForCausalLM({ ...tiny, num_hidden_layers: 2 }, { seed: 3 });
    const ids = [[1, 4, 9, 2], [5, 5, 0, 7]];
    const full = model.forward({ inputIds: ids, outputHiddenStates: true });
    const hidden = model.forwardHidden({ inputIds: ids, outputHiddenStates: true });
    assert.equal(hidden.hiddenStates!.length, full.hiddenStates!.length);
    hidden.hiddenStates!.forEach((h, i) => assertAllClose(Array.from(h.dataSync()), Array.from(full.hiddenStates![i]!.dataSync()), { atol: 0, rtol: 0 }));
    const logits = model.lm_head.forward(hidden.lastHiddenState);
    assertAllClose(Array.from(logits.dataSync()), Array.from(full.logits.dataSync()), { atol: 0, rtol: 0 });
    tf.dispose([logits, hidden.lastHiddenState, ...hidden.hiddenStates!]);
    disposeOutput(full);
    model.dispose();
  });
});
