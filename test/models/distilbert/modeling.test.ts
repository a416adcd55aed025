import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError } from '../../../src/errors.js';
import { AutoModel, AutoModelForSequenceClassification } from '../../../src/models/auto.js';
import { parseDistilBertConfig } from '../../../src/models/distilbert/config.js';
import { DistilBertForSequenceClassification, DistilBertModel, sinusoidalEmbeddings } from '../../../src/models/distilbert/modeling.js';
import { disposeEncoderOutput } from '../../../src/models/pretrained.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';
import { contextsSeenByLayers, maxAbsDiff, saveFolder, tempDir } from '../bert/encoder-helpers.js';

const tiny = {
  model_type: 'distilbert',
  vocab_size: 50,
  dim: 16,
  n_layers: 2,
  n_heads: 4,
  hidden_dim: 32,
  max_position_embeddings: 24,
};

before(async () => {
  await setBackend();
});

describe('DistilBertConfig', () => {
  test('defaults are transformers DistilBertConfig defaults', () => {
    const c = parseDistilBertConfig({});
    assert.equal(c.vocabSize, 30522);
    assert.equal(c.maxPositionEmbeddings, 512);
    assert.equal(c.sinusoidalPosEmbds, false);
    assert.equal(c.nLayers, 6);
    assert.equal(c.nHeads, 12);
    assert.equal(c.dim, 768);
    assert.equal(c.hiddenDim, 3072);
    assert.equal(c.dropout, 0.1);
    assert.equal(c.attentionDropout, 0.1);
    assert.equal(c.activation, 'gelu');
    assert.equal(c.initializerRange, 0.02);
    assert.equal(c.qaDropout, 0.1);
    assert.equal(c.seqClassifDropout, 0.2);
    assert.deepEqual(c.padTokenId, [0]);
    assert.equal(c.numLabels, 2);
  });

  test('attribute_map aliases (hidden_size, num_attention_heads, num_hidden_layers) and checks', () => {
    const c = parseDistilBertConfig({ hidden_size: 64, num_attention_heads: 8, num_hidden_layers: 3 });
    assert.deepEqual([c.dim, c.nHeads, c.nLayers], [64, 8, 3]);
    assert.throws(() => parseDistilBertConfig({ dim: 10, n_heads: 4 }), ConfigError);
    assert.throws(() => parseDistilBertConfig({ activation: 'swishy' }), ConfigError);
  });
});

describe('DistilBertModel module tree', () => {
  // [n for n, _ in DistilBertForSequenceClassification(DistilBertConfig(vocab_size=11, dim=8, n_layers=1, n_heads=2,
  //  hidden_dim=16, max_position_embeddings=16)).named_modules()]  (transformers 5.23)
  const pyModules = [
    '', 'distilbert', 'distilbert.embeddings', 'distilbert.embeddings.word_embeddings',
    'distilbert.embeddings.position_embeddings', 'distilbert.embeddings.LayerNorm', 'distilbert.embeddings.dropout',
    'distilbert.transformer', 'distilbert.transformer.layer', 'distilbert.transformer.layer.0',
    'distilbert.transformer.layer.0.attention', 'distilbert.transformer.layer.0.attention.q_lin',
    'distilbert.transformer.layer.0.attention.k_lin', 'distilbert.transformer.layer.0.attention.v_lin',
    'distilbert.transformer.layer.0.attention.out_lin', 'distilbert.transformer.layer.0.attention.dropout',
    'distilbert.transformer.layer.0.sa_layer_norm', 'distilbert.transformer.layer.0.ffn',
    'distilbert.transformer.layer.0.ffn.dropout', 'distilbert.transformer.layer.0.ffn.lin1',
    'distilbert.transformer.layer.0.ffn.lin2', 'distilbert.transformer.layer.0.ffn.activation',
    'distilbert.transformer.layer.0.output_layer_norm', 'pre_classifier', 'classifier', 'dropout',
  ];
  const pyConfig = { vocab_size: 11, dim: 8, n_layers: 1, n_heads: 2, hidden_dim: 16, max_position_embeddings: 16 };

  test('namedModules match PyTorch named_modules(); position_ids is a non-persistent buffer', () => {
    const model = new DistilBertForSequenceClassification(pyConfig);
    assert.deepEqual([...model.namedModules()].map(([n]) => n), pyModules);
    assert.deepEqual([...model.namedBuffers()].map(([n]) => n), ['distilbert.embeddings.position_ids']);
    assert.equal(Object.keys(model.stateDict()).length, 24);
    assert.ok(!('distilbert.embeddings.position_ids' in model.stateDict()));
    model.dispose();
    const bare = new DistilBertModel(pyConfig);
    const bareNames = pyModules.filter((n) => n.startsWith('distilbert.')).map((n) => n.slice('distilbert.'.length));
    assert.deepEqual([...bare.namedModules()].map(([n]) => n), ['', ...bareNames]);
    bare.dispose();
  });

  test('sinusoidal_pos_embds: the position table is transformers create_sinusoidal_embeddings', () => {
    const model = new DistilBertModel({ ...tiny, dim: 8, n_heads: 2, sinusoidal_pos_embds: true }, { seed: 1 });
    const table = model.embeddings.position_embeddings.weight;
    // From PyTorch: DistilBertModel(DistilBertConfig(dim=8, ..., sinusoidal_pos_embds=True)).embeddings.position_embeddings.weight[1, :4]
    assertAllClose(tf.tidy(() => tf.slice(table, [1, 0], [1, 4])), [0.8415, 0.5403, 0.0998, 0.995], { atol: 1e-4, rtol: 0 });
    const expected = tf.tidy(() => tf.slice(table, [0, 0], [1, 8]));
    assertAllClose(expected, [0, 1, 0, 1, 0, 1, 0, 1], { atol: 0, rtol: 0 });
    expected.dispose();
    const fresh = sinusoidalEmbeddings(24, 8);
    assertAllClose(table, fresh, { atol: 0, rtol: 0 });
    fresh.dispose();
    model.dispose();
  });
});

describe('DistilBertModel forward', () => {
  test('padding: real tokens give the same outputs with and without extra padded positions', () => {
    const model = new DistilBertModel(tiny, { seed: 2 });
    const alone = model.forward({ inputIds: [[5, 7, 9]] });
    const padded = model.forward({ inputIds: [[5, 7, 9, 0, 0], [1, 2, 3, 4, 5]], attentionMask: [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]] });
    const real = tf.slice(padded.lastHiddenState, [0, 0, 0], [1, 3, 16]);
    assert.ok(maxAbsDiff(real, alone.lastHiddenState) < 1e-5);
    assert.equal(padded.poolerOutput, undefined);
    real.dispose();
    [alone, padded].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('hidden states: embeddings then each block, the last equal to lastHiddenState', () => {
    const model = new DistilBertModel(tiny, { seed: 3 });
    const out = model.forward({ inputIds: [[1, 2, 3]], outputHiddenStates: true, tokenTypeIds: [[0, 1, 1]] });
    assert.equal(out.hiddenStates!.length, 3);
    assert.equal(maxAbsDiff(out.hiddenStates![2]!, out.lastHiddenState), 0);
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('classification: ReLU(pre_classifier(first token)) -> classifier; CE loss by hand', async () => {
    const model = new DistilBertForSequenceClassification({ ...tiny, id2label: { 0: 'a', 1: 'b', 2: 'c' } }, { seed: 4 });
    assert.equal(model.numLabels, 3);
    const ids = [[1, 2, 3], [4, 5, 6]];
    const out = model.forward({ inputIds: ids, labels: [1, 2] });
    const hidden = model.distilbert.forward({ inputIds: ids });
    const expected = tf.tidy(() => {
      const first = tf.slice(hidden.lastHiddenState, [0, 0, 0], [2, 1, 16]).reshape([2, 16]);
      return model.classifier.forward(tf.relu(model.pre_classifier.forward(first)));
    });
    assertAllClose(out.logits, expected, { atol: 1e-6, rtol: 1e-6 });
    const logits = (await out.logits.array()) as number[][];
    const nll = (row: number[], t: number) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[t]!;
    assertAllClose(out.loss!, (nll(logits[0]!, 1) + nll(logits[1]!, 2)) / 2, { atol: 1e-5, rtol: 1e-5 });
    expected.dispose();
    disposeEncoderOutput(hidden);
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('forward hands its ctx to every Linear and Embedding', () => {
    const model = new DistilBertForSequenceClassification(tiny, { seed: 5 });
    const ctx = {};
    const { layers, seen } = contextsSeenByLayers(model, () => disposeEncoderOutput(model.forward({ inputIds: [[1, 2, 3]] }, ctx)));
    assert.equal(layers, 2 + 2 * 6 + 2);
    assert.equal(seen.length, layers);
    assert.ok(seen.every((c) => c === ctx));
    model.dispose();
  });

  test('no tensors leak', async () => {
    const model = new DistilBertForSequenceClassification(tiny, { seed: 6 });
    const input = { inputIds: [[1, 2, 3, 0]], attentionMask: [[1, 1, 1, 0]], labels: [1], outputHiddenStates: true };
    disposeEncoderOutput(model.forward(input));
    await assertNoLeak(() => {
      for (let i = 0; i < 3; i++) disposeEncoderOutput(model.forward(input));
      model.train();
      disposeEncoderOutput(model.forward(input));
      model.eval();
    }, 'DistilBERT forwards');
    model.dispose();
  });
});

describe('DistilBERT fromPretrained', () => {
  test('own folder round-trips; an MLM checkpoint gives the classifier its encoder and a new head', async () => {
    const { dir, cleanup } = tempDir('distilbert-');
    const mlm = tempDir('distilbert-mlm-');
    try {
      const model = new DistilBertForSequenceClassification(tiny, { seed: 7 });
      await saveFolder(dir, tiny, model.stateDict());
      const loaded = await AutoModelForSequenceClassification.fromPretrained(dir);
      assert.ok(loaded instanceof DistilBertForSequenceClassification);
      const input = { inputIds: [[3, 4, 5]] };
      const [a, b] = [model.forward(input), loaded.forward(input)];
      assert.equal(maxAbsDiff(a.logits, b.logits), 0);
      [a, b].forEach(disposeEncoderOutput);
      loaded.dispose();

      // distilbert-base-uncased is a DistilBertForMaskedLM checkpoint: distilbert.* plus vocab_* heads.
      const encoder = model.distilbert.stateDict('distilbert');
      const heads = { 'vocab_transform.weight': tf.zeros([16, 16]), 'vocab_projector.bias': tf.zeros([50]) };
      await saveFolder(mlm.dir, { ...tiny, architectures: ['DistilBertForMaskedLM'] }, { ...encoder, ...heads });
      tf.dispose(Object.values(heads));
      const cls = await AutoModelForSequenceClassification.fromPretrained(mlm.dir);
      const bare = await AutoModel.fromPretrained(mlm.dir);
      assert.ok(bare instanceof DistilBertModel);
      const [c, d, e] = [(cls as DistilBertForSequenceClassification).distilbert.forward(input), bare.forward(input), model.distilbert.forward(input)];
      assert.equal(maxAbsDiff(c.lastHiddenState, e.lastHiddenState), 0);
      assert.equal(maxAbsDiff(d.lastHiddenState, e.lastHiddenState), 0);
      [c, d, e].forEach(disposeEncoderOutput);
      cls.dispose();
      bare.dispose();
      model.dispose();
    } finally {
      cleanup();
      mlm.cleanup();
    }
  });
});
