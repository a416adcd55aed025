import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError } from '../../../src/errors.js';
import { parseQwen2Config } from '../../../src/models/qwen2/config.js';
import {
  Qwen2Attention,
  Qwen2DecoderLayer,
  Qwen2ForCausalLM,
  Qwen2MLP,
  Qwen2Model,
  Qwen2RMSNorm,
  Qwen2RotaryEmbedding,
} from '../../../src/models/qwen2/modeling.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { assertAllClose } from '../../helpers/assert.js';
import { decoderSuite, parameterShapes } from '../llama/decoder-suite.js';

const tiny = { vocab_size: 11, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32 };

const small = {
  vocab_size: 48,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  initializer_range: 0.3,
};

// Layer 0 full, layer 1 sliding (window 3): the suite runs with both attention kinds in one model.
decoderSuite({
  modelType: 'qwen2',
  cls: Qwen2ForCausalLM,
  config: { ...small, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
});

before(async () => {
  await setBackend();
});

/** Random q/k/v biases (transformers' init leaves them zero, which would hide them). */
function randomizeBiases(model: Qwen2ForCausalLM, seed: number): void {
  let s = seed;
  for (const [name, p] of model.namedParameters()) {
    if (!name.endsWith('.bias')) continue;
    const value = tf.randomNormal(p.shape, 0, 0.5, 'float32', s++);
    p.assign(value);
    value.dispose();
  }
}

describe('Qwen2ForCausalLM module tree', () => {
  test('namedModules and named_parameters match PyTorch: q/k/v biases, none on o_proj or the MLP', () => {
    const model = new Qwen2ForCausalLM(tiny);
    // From PyTorch: [n for n, _ in Qwen2ForCausalLM(Qwen2Config(**tiny)).named_modules()] (transformers 5.23)
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
    // From PyTorch: [(n, list(p.shape)) for n, p in Qwen2ForCausalLM(Qwen2Config(**tiny)).named_parameters()]
    assert.deepEqual(parameterShapes(model), [
      ['model.embed_tokens.weight', [11, 8]],
      ['model.layers.0.self_attn.q_proj.weight', [8, 8]], ['model.layers.0.self_attn.q_proj.bias', [8]],
      ['model.layers.0.self_attn.k_proj.weight', [4, 8]], ['model.layers.0.self_attn.k_proj.bias', [4]],
      ['model.layers.0.self_attn.v_proj.weight', [4, 8]], ['model.layers.0.self_attn.v_proj.bias', [4]],
      ['model.layers.0.self_attn.o_proj.weight', [8, 8]],
      ['model.layers.0.mlp.gate_proj.weight', [16, 8]], ['model.layers.0.mlp.up_proj.weight', [16, 8]],
      ['model.layers.0.mlp.down_proj.weight', [8, 16]],
      ['model.layers.0.input_layernorm.weight', [8]], ['model.layers.0.post_attention_layernorm.weight', [8]],
      ['model.norm.weight', [8]], ['lm_head.weight', [11, 8]],
    ]);
    // From PyTorch: named_buffers() of the same model.
    assert.deepEqual(
      [...model.namedBuffers()].map(([n, b]) => [n, b.shape]),
      [['model.rotary_emb.inv_freq', [2]], ['model.rotary_emb.original_inv_freq', [2]]],
    );
    const layer = model.model.layers.at(0);
    assert.ok(model.model instanceof Qwen2Model);
    assert.ok(layer instanceof Qwen2DecoderLayer);
    assert.ok(layer.self_attn instanceof Qwen2Attention);
    assert.ok(layer.mlp instanceof Qwen2MLP);
    assert.ok(model.model.norm instanceof Qwen2RMSNorm);
    assert.ok(model.model.rotary_emb instanceof Qwen2RotaryEmbedding);
    model.dispose();
  });

  test('tie_word_embeddings (as the small Qwen2 checkpoints set it) shares the embedding with lm_head', () => {
    const model = new Qwen2ForCausalLM({ ...tiny, tie_word_embeddings: true });
    const sd = model.stateDict();
    assert.deepEqual(Object.keys(sd).slice(-2), ['model.norm.weight', 'lm_head.weight']);
    assert.equal(sd['lm_head.weight'], sd['model.embed_tokens.weight']);
    model.dispose();
  });

  test('the q/k/v biases take part in the forward', () => {
    const model = new Qwen2ForCausalLM(small, { seed: 4 });
    const ids = [[1, 5, 9, 14]];
    const before = model.forward({ inputIds: ids });
    randomizeBiases(model, 40);
    const after = model.forward({ inputIds: ids });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(before.logits, after.logits))).dataSync()[0]!);
    assert.ok(diff > 1e-3);
    disposeOutput(before);
    disposeOutput(after);
    model.dispose();
  });
});

describe('Qwen2Config', () => {
  test('defaults are those of transformers Qwen2Config: no sliding window unless use_sliding_window', () => {
    const c = parseQwen2Config({});
    assert.equal(c.modelType, 'qwen2');
    assert.equal(c.vocabSize, 151936);
    assert.equal(c.intermediateSize, 22016);
    assert.equal(c.numKeyValueHeads, 32);
    assert.equal(c.headDim, 128);
    assert.equal(c.maxPositionEmbeddings, 32768);
    assert.equal(c.useSlidingWindow, false);
    assert.equal(c.slidingWindow, null);
    assert.equal(c.maxWindowLayers, 28);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.bosTokenId, undefined);
    assert.equal(c.eosTokenId, undefined);
    assert.equal(c.attentionBias, true);
    assert.equal(c.oProjBias, false);
    assert.equal(c.mlpBias, false);
    assert.ok(c.layerTypes.every((t) => t === 'full_attention'));
  });

  test('max_window_layers: layers from that index on slide when use_sliding_window is set', () => {
    const on = parseQwen2Config({ use_sliding_window: true, sliding_window: 5, max_window_layers: 2, num_hidden_layers: 4 });
    assert.deepEqual(on.layerTypes, ['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention']);
    assert.equal(on.slidingWindow, 5);
    const off = parseQwen2Config({ use_sliding_window: false, sliding_window: 5, max_window_layers: 2, num_hidden_layers: 4 });
    assert.ok(off.layerTypes.every((t) => t === 'full_attention'));
    assert.equal(off.slidingWindow, null);
  });

  test('explicit layer_types are honoured and checked', () => {
    const c = parseQwen2Config({ use_sliding_window: true, sliding_window: 5, num_hidden_layers: 2, layer_types: ['sliding_attention', 'full_attention'] });
    assert.deepEqual(c.layerTypes, ['sliding_attention', 'full_attention']);
    assert.throws(() => parseQwen2Config({ num_hidden_layers: 2, layer_types: ['full_attention'] }), ConfigError);
    assert.throws(() => parseQwen2Config({ num_hidden_layers: 1, layer_types: ['chunked_attention'] }), ConfigError);
    assert.throws(() => parseQwen2Config({ num_hidden_layers: 1, layer_types: ['sliding_attention'] }), /no sliding window/);
  });
});

describe('Qwen2 per-layer sliding window', () => {
  test('only layers from max_window_layers on get a window', () => {
    const model = new Qwen2ForCausalLM({ ...small, num_hidden_layers: 3, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 });
    assert.deepEqual(
      [...model.model.layers].map((l) => l.self_attn.slidingWindow),
      [null, 3, 3],
    );
    model.dispose();
  });

  test('sliding layers change positions beyond the window only; with none sliding the model is the full-attention one', () => {
    const full = new Qwen2ForCausalLM(small, { seed: 9 });
    randomizeBiases(full, 90);
    const ids = [[5, 9, 13, 2, 44, 7, 30]];
    const reference = full.forward({ inputIds: ids });

    const noneSliding = new Qwen2ForCausalLM({ ...small, use_sliding_window: true, sliding_window: 3, max_window_layers: 2 });
    noneSliding.loadStateDict(full.stateDict());
    const same = noneSliding.forward({ inputIds: ids });
    assertAllClose(same.logits, reference.logits, { atol: 1e-5, rtol: 1e-5 });

    const window = 3;
    const mixed = new Qwen2ForCausalLM({ ...small, use_sliding_window: true, sliding_window: window, max_window_layers: 1 });
    mixed.loadStateDict(full.stateDict());
    const out = mixed.forward({ inputIds: ids });
    const a = tf.slice(out.logits, [0, 0, 0], [1, window, -1]);
    const b = tf.slice(reference.logits, [0, 0, 0], [1, window, -1]);
    assertAllClose(a, b, { atol: 1e-5, rtol: 1e-5 });
    const beyond = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(out.logits, [0, window, 0], [1, -1, -1]), tf.slice(reference.logits, [0, window, 0], [1, -1, -1])))).dataSync()[0]!);
    assert.ok(beyond > 1e-3);
    tf.dispose([a, b]);
    for (const o of [reference, same, out]) disposeOutput(o);
    for (const m of [full, noneSliding, mixed]) m.dispose();
  });
});
