import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { MASK_MIN, slidingWindowCausalAttentionBias } from '../../../src/models/attention.js';
import { LlamaForCausalLM } from '../../../src/models/llama/modeling.js';
import { parseMistralConfig } from '../../../src/models/mistral/config.js';
import {
  MistralAttention,
  MistralDecoderLayer,
  MistralForCausalLM,
  MistralMLP,
  MistralModel,
  MistralRMSNorm,
  MistralRotaryEmbedding,
} from '../../../src/models/mistral/modeling.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { assertAllClose } from '../../helpers/assert.js';
import { decoderSuite, parameterShapes } from '../llama/decoder-suite.js';

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

// A window of 3 is shorter than the suite's sequences, so caching and padding are checked with it in force.
decoderSuite({ modelType: 'mistral', cls: MistralForCausalLM, config: { ...small, sliding_window: 3 } });

before(async () => {
  await setBackend();
});

describe('MistralForCausalLM module tree', () => {
  test('namedModules matches transformers named_modules() order, with Mistral class names', () => {
    const model = new MistralForCausalLM({ vocab_size: 11, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32 });
    // From PyTorch: [n for n, _ in MistralForCausalLM(MistralConfig(...)).named_modules()] (transformers 5.23)
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
    const layer = model.model.layers.at(0);
    assert.ok(model.model instanceof MistralModel);
    assert.ok(layer instanceof MistralDecoderLayer);
    assert.ok(layer.self_attn instanceof MistralAttention);
    assert.ok(layer.mlp instanceof MistralMLP);
    assert.ok(layer.input_layernorm instanceof MistralRMSNorm);
    assert.ok(model.model.rotary_emb instanceof MistralRotaryEmbedding);
    assert.ok(!parameterShapes(model).some(([n]) => n.endsWith('.bias')));
    assert.match(model.toString(), /\(0\): MistralDecoderLayer\(/);
    model.dispose();
  });

  test('a bare MistralModel builds Mistral layers too', () => {
    const config = parseMistralConfig({ ...small, num_hidden_layers: 1 });
    const bare = new MistralModel(config);
    assert.ok(bare.layers.at(0) instanceof MistralDecoderLayer);
    bare.dispose();
  });
});

describe('MistralConfig', () => {
  test('defaults are those of transformers MistralConfig', () => {
    const c = parseMistralConfig({});
    assert.equal(c.modelType, 'mistral');
    assert.equal(c.intermediateSize, 14336);
    assert.equal(c.numKeyValueHeads, 8);
    assert.equal(c.headDim, 128);
    assert.equal(c.maxPositionEmbeddings, 131072);
    assert.equal(c.slidingWindow, 4096);
    assert.equal(c.tieWordEmbeddings, false);
    assert.deepEqual(c.bosTokenId, [1]);
    assert.deepEqual(c.eosTokenId, [2]);
    assert.deepEqual(c.ropeParameters, { ropeType: 'default', ropeTheta: 10000 });
    assert.ok(c.layerTypes.every((t) => t === 'sliding_attention'));
    assert.equal(c.attentionBias || c.oProjBias || c.mlpBias, false);
  });

  test('sliding_window null means full causal attention on every layer', () => {
    const c = parseMistralConfig({ sliding_window: null, num_key_value_heads: null });
    assert.equal(c.slidingWindow, null);
    assert.equal(c.numKeyValueHeads, 32);
    assert.ok(c.layerTypes.every((t) => t === 'full_attention'));
  });
});

describe('Mistral sliding-window attention', () => {
  test('the window mask: key j is visible from query i iff i - window < j <= i (cache positions)', () => {
    const window = 2;
    const bias = slidingWindowCausalAttentionBias(3, 2, window, tf.tensor2d([[0, 1, 1, 1, 1]], [1, 5], 'int32'));
    const rows = (bias.arraySync() as number[][][][])[0]![0]!;
    rows.forEach((row, i) => {
      const q = 2 + i;
      row.forEach((v, j) => {
        const visible = j <= q && j > q - window && j !== 0;
        assert.ok(visible ? v === 0 : v === MASK_MIN, `query ${q}, key ${j}: ${v}`);
      });
    });
    bias.dispose();
  });

  test('the window changes positions at or beyond it and leaves those within it', () => {
    const window = 3;
    const slid = new MistralForCausalLM({ ...small, sliding_window: window }, { seed: 11 });
    const wide = new MistralForCausalLM({ ...small, sliding_window: 1000 });
    wide.loadStateDict(slid.stateDict());
    const ids = [[5, 9, 13, 2, 44, 7, 30, 1]];
    const a = slid.forward({ inputIds: ids });
    const b = wide.forward({ inputIds: ids });
    const seq = ids[0]!.length;
    const within = tf.slice(a.logits, [0, 0, 0], [1, window, -1]);
    const withinWide = tf.slice(b.logits, [0, 0, 0], [1, window, -1]);
    assertAllClose(within, withinWide, { atol: 1e-5, rtol: 1e-5 });
    for (let t = window; t < seq; t++) {
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(a.logits, [0, t, 0], [1, 1, -1]), tf.slice(b.logits, [0, t, 0], [1, 1, -1])))).dataSync()[0]!);
      assert.ok(diff > 1e-3, `position ${t} should see a narrower context (diff ${diff})`);
    }
    tf.dispose([within, withinWide]);
    disposeOutput(a);
    disposeOutput(b);
    slid.dispose();
    wide.dispose();
  });

  test('without a window (or a window longer than the input) Mistral computes what Llama computes', () => {
    const llama = new LlamaForCausalLM(small, { seed: 5 });
    const ids = [[5, 9, 13, 2, 44, 7]];
    const reference = llama.forward({ inputIds: ids });
    for (const sliding_window of [null, 6]) {
      const mistral = new MistralForCausalLM({ ...small, sliding_window });
      mistral.loadStateDict(llama.stateDict());
      const out = mistral.forward({ inputIds: ids });
      assertAllClose(out.logits, reference.logits, { atol: 1e-5, rtol: 1e-5 }, `sliding_window ${sliding_window}`);
      disposeOutput(out);
      mistral.dispose();
    }
    disposeOutput(reference);
    llama.dispose();
  });

  test('cached generation past the window matches uncached generation', async () => {
    const model = new MistralForCausalLM({ ...small, sliding_window: 2 }, { seed: 2 });
    const prompt = [[3, 17, 5]];
    const cached = await model.generate(prompt, { maxNewTokens: 8, eosTokenId: [] });
    const uncached = await model.generate(prompt, { maxNewTokens: 8, eosTokenId: [], useCache: false });
    assert.deepEqual(cached, uncached);
    model.dispose();
  });
});
