import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError, UnsupportedModelError } from '../../../src/errors.js';
import { AutoModel, modelFromPretrained } from '../../../src/models/auto.js';
import { parseCLIPTextConfig } from '../../../src/models/clip/config.js';
import { CLIPTextModel } from '../../../src/models/clip/modeling.js';
import { disposeEncoderOutput } from '../../../src/models/pretrained.js';
import { assertNoLeak } from '../../helpers/assert.js';
import { contextsSeenByLayers, maxAbsDiff, saveFolder, tempDir } from '../bert/encoder-helpers.js';

const tiny = {
  model_type: 'clip_text_model',
  vocab_size: 50,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 12,
  pad_token_id: 0,
  bos_token_id: 1,
  eos_token_id: 3,
};

before(async () => {
  await setBackend();
});

const rows = (t: tf.Tensor3D, row: number, from: number, count: number) => tf.slice(t, [row, from, 0], [1, count, t.shape[2]]);

describe('CLIPTextConfig', () => {
  test('defaults are transformers CLIPTextConfig defaults', () => {
    const c = parseCLIPTextConfig({});
    assert.equal(c.vocabSize, 49408);
    assert.equal(c.hiddenSize, 512);
    assert.equal(c.intermediateSize, 2048);
    assert.equal(c.projectionDim, 512);
    assert.equal(c.numHiddenLayers, 12);
    assert.equal(c.numAttentionHeads, 8);
    assert.equal(c.maxPositionEmbeddings, 77);
    assert.equal(c.hiddenAct, 'quick_gelu');
    assert.equal(c.layerNormEps, 1e-5);
    assert.equal(c.attentionDropout, 0);
    assert.equal(c.initializerRange, 0.02);
    assert.equal(c.initializerFactor, 1);
    assert.deepEqual(c.padTokenId, [1]);
    assert.deepEqual(c.bosTokenId, [49406]);
    assert.deepEqual(c.eosTokenId, [49407]);
  });

  test('a full CLIP config gives its text_config', () => {
    const c = parseCLIPTextConfig({ model_type: 'clip', text_config: { hidden_size: 64, eos_token_id: 2 }, vision_config: { hidden_size: 99 } });
    assert.equal(c.hiddenSize, 64);
    assert.deepEqual(c.eosTokenId, [2]);
    assert.equal(c.raw['model_type'], 'clip_text_model');
    assert.throws(() => parseCLIPTextConfig({ hidden_size: 10, num_attention_heads: 3 }), ConfigError);
    assert.throws(() => parseCLIPTextConfig({ eos_token_id: [2, 3] }), ConfigError);
  });
});

describe('CLIPTextModel module tree', () => {
  test('namedModules match PyTorch named_modules() (transformers 5: no text_model wrapper)', () => {
    const model = new CLIPTextModel({ vocab_size: 11, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, max_position_embeddings: 16 });
    // [n for n, _ in CLIPTextModel(CLIPTextConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1,
    //  num_attention_heads=2, intermediate_size=16, max_position_embeddings=16)).named_modules()]  (transformers 5.23)
    assert.deepEqual([...model.namedModules()].map(([n]) => n), [
      '', 'embeddings', 'embeddings.token_embedding', 'embeddings.position_embedding', 'encoder', 'encoder.layers',
      'encoder.layers.0', 'encoder.layers.0.self_attn', 'encoder.layers.0.self_attn.k_proj', 'encoder.layers.0.self_attn.v_proj',
      'encoder.layers.0.self_attn.q_proj', 'encoder.layers.0.self_attn.out_proj', 'encoder.layers.0.layer_norm1',
      'encoder.layers.0.mlp', 'encoder.layers.0.mlp.activation_fn', 'encoder.layers.0.mlp.fc1', 'encoder.layers.0.mlp.fc2',
      'encoder.layers.0.layer_norm2', 'final_layer_norm',
    ]);
    assert.deepEqual([...model.namedBuffers()].map(([n]) => n), ['embeddings.position_ids']);
    assert.equal(Object.keys(model.stateDict()).length, 20);
    model.dispose();
  });

  test('random init follows CLIP _init_weights (q/k/v, out_proj, fc1, fc2, embeddings stds)', () => {
    const model = new CLIPTextModel({ ...tiny, hidden_size: 64, intermediate_size: 128, vocab_size: 400 }, { seed: 1 });
    const sd = model.stateDict();
    const std = (key: string) => tf.tidy(() => Math.sqrt(tf.moments(sd[key]!).variance.dataSync()[0]!));
    const near = (key: string, want: number) => assert.ok(Math.abs(std(key) / want - 1) < 0.06, `${key}: std ${std(key)} vs ${want}`);
    near('encoder.layers.0.self_attn.q_proj.weight', 64 ** -0.5 * 4 ** -0.5);
    near('encoder.layers.1.self_attn.out_proj.weight', 64 ** -0.5);
    near('encoder.layers.0.mlp.fc1.weight', 128 ** -0.5);
    near('encoder.layers.0.mlp.fc2.weight', 64 ** -0.5 * 4 ** -0.5);
    near('embeddings.token_embedding.weight', 0.02);
    assert.equal(tf.tidy(() => tf.abs(sd['encoder.layers.0.mlp.fc1.bias']!).max().dataSync()[0]), 0);
    model.dispose();
  });
});

describe('CLIPTextModel forward', () => {
  test('causal mask: a token is unaffected by the tokens after it', () => {
    const model = new CLIPTextModel(tiny, { seed: 2 });
    const a = model.forward({ inputIds: [[1, 10, 11, 12, 13, 3]], outputHiddenStates: true });
    const b = model.forward({ inputIds: [[1, 10, 11, 40, 41, 42]], outputHiddenStates: true });
    const [ha, hb] = [rows(a.lastHiddenState, 0, 0, 3), rows(b.lastHiddenState, 0, 0, 3)];
    assert.equal(maxAbsDiff(ha, hb), 0);
    const [ta, tb] = [rows(a.lastHiddenState, 0, 3, 1), rows(b.lastHiddenState, 0, 3, 1)];
    assert.ok(maxAbsDiff(ta, tb) > 1e-4);
    tf.dispose([ha, hb, ta, tb]);
    [a, b].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('padding mask: left padding with the positions of the unpadded row gives its outputs', () => {
    const model = new CLIPTextModel(tiny, { seed: 3 });
    const alone = model.forward({ inputIds: [[1, 20, 21, 3]] });
    const padded = model.forward({
      inputIds: [[0, 0, 1, 20, 21, 3], [1, 5, 6, 7, 8, 3]],
      attentionMask: [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
      positionIds: [[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]],
    });
    const real = rows(padded.lastHiddenState, 0, 2, 4);
    assert.ok(maxAbsDiff(real, alone.lastHiddenState) < 1e-5);
    // The pooled output (first eos) is the same state.
    const pooled = tf.slice(padded.poolerOutput!, [0, 0], [1, 16]);
    assert.ok(maxAbsDiff(pooled, alone.poolerOutput!) < 1e-5);
    // Without the mask the pad tokens leak into the real ones.
    const unmasked = model.forward({ inputIds: [[0, 0, 1, 20, 21, 3]], positionIds: [[0, 0, 0, 1, 2, 3]] });
    const leaked = rows(unmasked.lastHiddenState, 0, 2, 4);
    assert.ok(maxAbsDiff(leaked, alone.lastHiddenState) > 1e-4);
    tf.dispose([real, pooled, leaked]);
    [alone, padded, unmasked].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('pooled output: the first eos_token_id position (0 when a row has none), after final_layer_norm', () => {
    const model = new CLIPTextModel(tiny, { seed: 4 });
    const ids = [[1, 9, 3, 3, 0], [1, 3, 7, 0, 0], [1, 44, 45, 46, 47]];
    const out = model.forward({ inputIds: ids, attentionMask: [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], outputHiddenStates: true });
    const positions = model.eosPositions(tf.tensor2d(ids, undefined, 'int32'));
    assert.deepEqual(Array.from(positions.dataSync()), [2, 1, 0]);
    positions.dispose();
    const picked = tf.tidy(() => tf.concat([rows(out.lastHiddenState, 0, 2, 1), rows(out.lastHiddenState, 1, 1, 1), rows(out.lastHiddenState, 2, 0, 1)]).reshape([3, 16]));
    assert.equal(maxAbsDiff(out.poolerOutput!, picked), 0);
    // hidden_states end with the last layer's output before final_layer_norm (tie_last_hidden_states=False).
    assert.equal(out.hiddenStates!.length, 3);
    const normed = tf.tidy(() => model.final_layer_norm.forward(out.hiddenStates![2]!));
    assert.ok(maxAbsDiff(normed, out.lastHiddenState) < 1e-6);
    assert.ok(maxAbsDiff(out.hiddenStates![2]!, out.lastHiddenState) > 1e-3);
    tf.dispose([picked, normed]);
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('legacy eos_token_id 2: pooled at the (first) largest id, as transformers', () => {
    const model = new CLIPTextModel({ ...tiny, eos_token_id: 2 }, { seed: 5 });
    const positions = model.eosPositions(tf.tensor2d([[1, 49, 2, 49], [1, 7, 30, 2]], undefined, 'int32'));
    assert.deepEqual(Array.from(positions.dataSync()), [1, 2]);
    positions.dispose();
    model.dispose();
  });

  test('forward hands its ctx to every Linear and Embedding', () => {
    const model = new CLIPTextModel(tiny, { seed: 6 });
    const ctx = {};
    const { layers, seen } = contextsSeenByLayers(model, () => disposeEncoderOutput(model.forward({ inputIds: [[1, 2, 3]] }, ctx)));
    assert.equal(layers, 2 + 2 * 6);
    assert.equal(seen.length, layers);
    assert.ok(seen.every((c) => c === ctx));
    model.dispose();
  });

  test('no tensors leak', async () => {
    const model = new CLIPTextModel({ ...tiny, attention_dropout: 0.1 }, { seed: 7 });
    const input = { inputIds: [[1, 2, 3, 0]], attentionMask: [[1, 1, 1, 0]], outputHiddenStates: true };
    disposeEncoderOutput(model.forward(input));
    await assertNoLeak(() => {
      for (let i = 0; i < 3; i++) disposeEncoderOutput(model.forward(input));
      model.train();
      disposeEncoderOutput(model.forward(input));
      model.eval();
    }, 'CLIP forwards');
    model.dispose();
  });
});

describe('CLIP fromPretrained', () => {
  test('own folder round-trips through AutoModel', async () => {
    const { dir, cleanup } = tempDir('clip-');
    try {
      const model = new CLIPTextModel(tiny, { seed: 8 });
      await saveFolder(dir, tiny, model.stateDict());
      const loaded = await AutoModel.fromPretrained(dir);
      assert.ok(loaded instanceof CLIPTextModel);
      const input = { inputIds: [[1, 5, 3]] };
      const [a, b] = [model.forward(input), loaded.forward(input)];
      assert.equal(maxAbsDiff(a.lastHiddenState, b.lastHiddenState), 0);
      assert.equal(maxAbsDiff(a.poolerOutput!, b.poolerOutput!), 0);
      [a, b].forEach(disposeEncoderOutput);
      loaded.dispose();
      model.dispose();
    } finally {
      cleanup();
    }
  });

  test('a full CLIP folder (transformers 4 keys under text_model., vision tower beside) loads into CLIPTextModel', async () => {
    const { dir, cleanup } = tempDir('clip-full-');
    try {
      const model = new CLIPTextModel(tiny, { seed: 9 });
      const extra = {
        'text_model.embeddings.position_ids': tf.range(0, 12, 1, 'int32').reshape([1, 12]),
        'vision_model.post_layernorm.weight': tf.ones([8]),
        'text_projection.weight': tf.zeros([4, 16]),
        logit_scale: tf.scalar(2.6592),
      };
      const { model_type: _ignored, ...textConfig } = tiny;
      await saveFolder(dir, { model_type: 'clip', text_config: textConfig, vision_config: { hidden_size: 8 } }, { ...model.stateDict('text_model'), ...extra });
      tf.dispose(Object.values(extra));
      const loaded = await modelFromPretrained(CLIPTextModel, dir);
      assert.equal(loaded.config.hiddenSize, 16);
      const input = { inputIds: [[1, 5, 6, 3]] };
      const [a, b] = [model.forward(input), loaded.forward(input)];
      assert.equal(maxAbsDiff(a.poolerOutput!, b.poolerOutput!), 0);
      [a, b].forEach(disposeEncoderOutput);
      loaded.dispose();
      model.dispose();
      // AutoModel dispatches on model_type: a full CLIP (text + vision) is another architecture.
      await assert.rejects(AutoModel.fromPretrained(dir), UnsupportedModelError);
    } finally {
      cleanup();
    }
  });
});
