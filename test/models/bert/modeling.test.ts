import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError, StateDictError, UnsupportedModelError } from '../../../src/errors.js';
import { AutoModel, AutoModelForSequenceClassification } from '../../../src/models/auto.js';
import { BertForSequenceClassification, BertModel } from '../../../src/models/bert/modeling.js';
import { parseBertConfig } from '../../../src/models/bert/config.js';
import { disposeEncoderOutput } from '../../../src/models/pretrained.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';
import { contextsSeenByLayers, maxAbsDiff, saveFolder, tempDir } from './encoder-helpers.js';

const tiny = {
  model_type: 'bert',
  vocab_size: 50,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 32,
  max_position_embeddings: 24,
  type_vocab_size: 2,
};

before(async () => {
  await setBackend();
});

describe('BertConfig', () => {
  test('defaults are transformers BertConfig defaults', () => {
    const c = parseBertConfig({});
    assert.equal(c.vocabSize, 30522);
    assert.equal(c.hiddenSize, 768);
    assert.equal(c.numHiddenLayers, 12);
    assert.equal(c.numAttentionHeads, 12);
    assert.equal(c.intermediateSize, 3072);
    assert.equal(c.hiddenAct, 'gelu');
    assert.equal(c.hiddenDropoutProb, 0.1);
    assert.equal(c.attentionProbsDropoutProb, 0.1);
    assert.equal(c.maxPositionEmbeddings, 512);
    assert.equal(c.typeVocabSize, 2);
    assert.equal(c.initializerRange, 0.02);
    assert.equal(c.layerNormEps, 1e-12);
    assert.deepEqual(c.padTokenId, [0]);
    assert.equal(c.classifierDropout, 0.1); // classifier_dropout None -> hidden_dropout_prob
    assert.equal(c.numLabels, 2);
    assert.deepEqual(c.id2label, { 0: 'LABEL_0', 1: 'LABEL_1' });
    assert.equal(c.problemType, undefined);
  });

  test('labels come from id2label (its length wins), then num_labels', () => {
    assert.equal(parseBertConfig({ id2label: { 0: 'neg', 1: 'neu', 2: 'pos' } }).numLabels, 3);
    assert.equal(parseBertConfig({ num_labels: 5 }).numLabels, 5);
    assert.equal(parseBertConfig({ num_labels: 1, problem_type: 'regression' }).problemType, 'regression');
  });

  test('bad fields are reported together', () => {
    assert.throws(
      () => parseBertConfig({ hidden_size: 10, num_attention_heads: 3, hidden_act: 'nope', problem_type: 'ranking' }),
      (e: unknown) => e instanceof ConfigError && ['num_attention_heads', 'hidden_act', 'problem_type'].every((k) => e.issues.some((i) => i.path[0] === k)),
    );
    assert.throws(() => parseBertConfig({ position_embedding_type: 'relative_key' }), ConfigError);
    assert.throws(() => parseBertConfig({ is_decoder: true, add_cross_attention: true }), ConfigError);
  });
});

describe('BertModel module tree', () => {
  // [n for n, _ in BertForSequenceClassification(BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1,
  //  num_attention_heads=2, intermediate_size=16, max_position_embeddings=16)).named_modules()]  (transformers 5.23)
  const pyModules = [
    '', 'bert', 'bert.embeddings', 'bert.embeddings.word_embeddings', 'bert.embeddings.position_embeddings',
    'bert.embeddings.token_type_embeddings', 'bert.embeddings.LayerNorm', 'bert.embeddings.dropout', 'bert.encoder',
    'bert.encoder.layer', 'bert.encoder.layer.0', 'bert.encoder.layer.0.attention', 'bert.encoder.layer.0.attention.self',
    'bert.encoder.layer.0.attention.self.query', 'bert.encoder.layer.0.attention.self.key',
    'bert.encoder.layer.0.attention.self.value', 'bert.encoder.layer.0.attention.self.dropout',
    'bert.encoder.layer.0.attention.output', 'bert.encoder.layer.0.attention.output.dense',
    'bert.encoder.layer.0.attention.output.LayerNorm', 'bert.encoder.layer.0.attention.output.dropout',
    'bert.encoder.layer.0.intermediate', 'bert.encoder.layer.0.intermediate.dense',
    'bert.encoder.layer.0.intermediate.intermediate_act_fn', 'bert.encoder.layer.0.output',
    'bert.encoder.layer.0.output.dense', 'bert.encoder.layer.0.output.LayerNorm', 'bert.encoder.layer.0.output.dropout',
    'bert.pooler', 'bert.pooler.dense', 'bert.pooler.activation', 'dropout', 'classifier',
  ];
  const pyConfig = { vocab_size: 11, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, max_position_embeddings: 16 };

  test('namedModules of BertForSequenceClassification and BertModel match PyTorch named_modules()', () => {
    const model = new BertForSequenceClassification(pyConfig);
    assert.deepEqual([...model.namedModules()].map(([n]) => n), pyModules);
    model.dispose();
    const bare = new BertModel(pyConfig);
    const bareNames = pyModules.filter((n) => n.startsWith('bert.')).map((n) => n.slice('bert.'.length));
    assert.deepEqual([...bare.namedModules()].map(([n]) => n), ['', ...bareNames]);
    bare.dispose();
  });

  test('state dict keys match PyTorch state_dict(); position_ids / token_type_ids are non-persistent buffers', () => {
    const model = new BertForSequenceClassification(pyConfig);
    const keys = Object.keys(model.stateDict());
    assert.equal(keys[0], 'bert.embeddings.word_embeddings.weight');
    assert.deepEqual(keys.slice(-4), ['bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias']);
    assert.equal(keys.length, 25);
    assert.deepEqual([...model.namedBuffers()].map(([n, b]) => [n, b.shape]), [
      ['bert.embeddings.position_ids', [1, 16]],
      ['bert.embeddings.token_type_ids', [1, 16]],
    ]);
    model.dispose();
  });

  test('addPoolingLayer: false drops the pooler', () => {
    const model = new BertModel(pyConfig, { addPoolingLayer: false });
    assert.equal(model.pooler, null);
    const out = model.forward({ inputIds: [[1, 2, 3]] });
    assert.equal(out.poolerOutput, undefined);
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('random init follows _init_weights: N(0, initializer_range), zero biases, unit norms, zero padding row', () => {
    const model = new BertModel({ ...tiny, hidden_size: 64, intermediate_size: 128, initializer_range: 0.05 }, { seed: 3 });
    const sd = model.stateDict();
    const std = (t: tf.Tensor) => tf.tidy(() => Math.sqrt(tf.moments(t).variance.dataSync()[0]!));
    assert.ok(Math.abs(std(sd['encoder.layer.0.intermediate.dense.weight']!) - 0.05) < 0.005);
    assert.ok(Math.abs(std(sd['embeddings.position_embeddings.weight']!) - 0.05) < 0.01);
    assert.deepEqual(Array.from(sd['encoder.layer.0.attention.self.query.bias']!.dataSync()), Array(64).fill(0));
    assert.deepEqual(Array.from(sd['embeddings.LayerNorm.weight']!.dataSync()), Array(64).fill(1));
    assert.deepEqual(Array.from(tf.tidy(() => tf.slice(sd['embeddings.word_embeddings.weight']!, [0, 0], [1, 64]).dataSync())), Array(64).fill(0));
    // Same seed, same weights.
    const again = new BertModel({ ...tiny, hidden_size: 64, intermediate_size: 128, initializer_range: 0.05 }, { seed: 3 });
    assertAllClose(again.stateDict()['encoder.layer.1.output.dense.weight']!, sd['encoder.layer.1.output.dense.weight']!, { atol: 0, rtol: 0 });
    again.dispose();
    model.dispose();
  });
});

describe('BertModel forward', () => {
  test('padding: real tokens give the same outputs with and without extra padded positions', () => {
    const model = new BertModel(tiny, { seed: 1 });
    const short = [[5, 7, 9, 11]];
    const types = [[0, 0, 1, 1]];
    const alone = model.forward({ inputIds: short, tokenTypeIds: types });
    const padded = model.forward({
      inputIds: [[5, 7, 9, 11, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]],
      attentionMask: [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]],
      tokenTypeIds: [[0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]],
    });
    const real = tf.slice(padded.lastHiddenState, [0, 0, 0], [1, 4, 16]);
    assert.ok(maxAbsDiff(real, alone.lastHiddenState) < 1e-5);
    const pooledRow0 = tf.slice(padded.poolerOutput!, [0, 0], [1, 16]);
    assert.ok(maxAbsDiff(pooledRow0, alone.poolerOutput!) < 1e-5);
    // Without the mask the padding changes the real tokens' outputs.
    const unmasked = model.forward({ inputIds: [[5, 7, 9, 11, 0, 0, 0]], tokenTypeIds: [[0, 0, 1, 1, 0, 0, 0]] });
    const unmaskedReal = tf.slice(unmasked.lastHiddenState, [0, 0, 0], [1, 4, 16]);
    assert.ok(maxAbsDiff(unmaskedReal, alone.lastHiddenState) > 1e-4);
    tf.dispose([real, pooledRow0, unmaskedReal]);
    [alone, padded, unmasked].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('token types and positions matter; explicit defaults equal implicit ones', () => {
    const model = new BertModel(tiny, { seed: 2 });
    const ids = [[3, 4, 5]];
    const base = model.forward({ inputIds: ids });
    const explicit = model.forward({ inputIds: ids, tokenTypeIds: [[0, 0, 0]], positionIds: [[0, 1, 2]], attentionMask: [[1, 1, 1]] });
    const typed = model.forward({ inputIds: ids, tokenTypeIds: [[0, 1, 1]] });
    assert.ok(maxAbsDiff(base.lastHiddenState, explicit.lastHiddenState) < 1e-6);
    assert.ok(maxAbsDiff(base.lastHiddenState, typed.lastHiddenState) > 1e-4);
    [base, explicit, typed].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('is_decoder: a causal BERT (token i ignores later tokens)', () => {
    const model = new BertModel({ ...tiny, is_decoder: true }, { seed: 4 });
    const a = model.forward({ inputIds: [[3, 4, 5, 6]] });
    const b = model.forward({ inputIds: [[3, 4, 9, 10]] });
    const head = (t: tf.Tensor3D) => tf.slice(t, [0, 0, 0], [1, 2, 16]);
    const [ha, hb] = [head(a.lastHiddenState), head(b.lastHiddenState)];
    assert.ok(maxAbsDiff(ha, hb) < 1e-6);
    tf.dispose([ha, hb]);
    [a, b].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('hidden states: embeddings then each layer; the last is lastHiddenState; pooler is tanh(dense(first token))', () => {
    const model = new BertModel(tiny, { seed: 5 });
    const out = model.forward({ inputIds: [[1, 2, 3], [4, 5, 6]], outputHiddenStates: true });
    assert.equal(out.hiddenStates!.length, 3);
    assert.ok(maxAbsDiff(out.hiddenStates![2]!, out.lastHiddenState) === 0);
    const expected = tf.tidy(() => {
      const first = tf.slice(out.lastHiddenState, [0, 0, 0], [2, 1, 16]).reshape([2, 16]);
      return tf.tanh(model.pooler!.dense.forward(first));
    });
    assertAllClose(out.poolerOutput!, expected, { atol: 1e-6, rtol: 1e-6 });
    expected.dispose();
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('forward hands its ctx to every Linear and Embedding', () => {
    const model = new BertForSequenceClassification(tiny, { seed: 6 });
    const ctx = {};
    const { layers, seen } = contextsSeenByLayers(model, () =>
      disposeEncoderOutput(model.forward({ inputIds: [[1, 2, 3]], tokenTypeIds: [[0, 0, 1]] }, ctx)),
    );
    assert.equal(layers, 3 + 2 * 6 + 1 + 1); // embeddings, 6 linears per layer, pooler, classifier
    assert.equal(seen.length, layers);
    assert.ok(seen.every((c) => c === ctx));
    model.dispose();
  });

  test('shape errors are typed', () => {
    const model = new BertModel(tiny, { seed: 7 });
    assert.throws(() => model.forward({ inputIds: [[1, 2, 3]], attentionMask: [[1, 1]] }), /attentionMask must have the shape/);
    assert.throws(() => model.forward({ inputIds: [Array.from({ length: 30 }, () => 1)] }), /exceeds max_position_embeddings/);
    model.dispose();
  });

  test('no tensors leak (forward with every output, classification with loss, training-mode dropout)', async () => {
    const model = new BertForSequenceClassification(tiny, { seed: 8 });
    const input = { inputIds: [[1, 2, 3, 0]], attentionMask: [[1, 1, 1, 0]], labels: [1], outputHiddenStates: true };
    disposeEncoderOutput(model.forward(input)); // warm-up
    await assertNoLeak(() => {
      for (let i = 0; i < 3; i++) disposeEncoderOutput(model.forward(input));
      model.train();
      disposeEncoderOutput(model.forward(input));
      model.eval();
      disposeEncoderOutput(model.bert.forward(input));
    }, 'BERT forwards');
    model.dispose();
  });
});

describe('BertForSequenceClassification loss', () => {
  function logSoftmaxRow(row: number[]): number[] {
    const max = Math.max(...row);
    const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    return row.map((v) => v - logZ);
  }

  test('integer labels: cross-entropy, mean over rows not labelled -100', async () => {
    const model = new BertForSequenceClassification({ ...tiny, num_labels: 3 }, { seed: 9 });
    const ids = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];
    const labels = [2, -100, 0];
    const out = model.forward({ inputIds: ids, labels });
    const logits = (await out.logits.array()) as number[][];
    const expected = -(logSoftmaxRow(logits[0]!)[2]! + logSoftmaxRow(logits[2]!)[0]!) / 2;
    assertAllClose(out.loss!, expected, { atol: 1e-6, rtol: 1e-6 });
    // An int32 tensor of labels is the same problem.
    const viaTensor = tf.tensor1d([2, -100, 0], 'int32');
    const out2 = model.forward({ inputIds: ids, labels: viaTensor });
    assertAllClose(out2.loss!, expected, { atol: 1e-6, rtol: 1e-6 });
    viaTensor.dispose();
    [out, out2].forEach(disposeEncoderOutput);
    model.dispose();
  });

  test('num_labels 1: regression with MSE', async () => {
    const model = new BertForSequenceClassification({ ...tiny, num_labels: 1 }, { seed: 10 });
    const out = model.forward({ inputIds: [[1, 2], [3, 4]], labels: [0.5, -1.5] });
    const logits = (await out.logits.array()) as number[][];
    assert.deepEqual(out.logits.shape, [2, 1]);
    const expected = ((logits[0]![0]! - 0.5) ** 2 + (logits[1]![0]! + 1.5) ** 2) / 2;
    assertAllClose(out.loss!, expected, { atol: 1e-6, rtol: 1e-6 });
    disposeEncoderOutput(out);
    model.dispose();
  });

  test('float labels [batch, num_labels]: multi-label BCE with logits; problem_type overrides the dtype rule', async () => {
    const model = new BertForSequenceClassification({ ...tiny, num_labels: 3 }, { seed: 11 });
    const labels = [[1, 0, 1], [0, 0, 1]];
    const out = model.forward({ inputIds: [[1, 2], [3, 4]], labels });
    const logits = (await out.logits.array()) as number[][];
    let total = 0;
    labels.forEach((row, b) => row.forEach((y, j) => {
      const x = logits[b]![j]!;
      total += -(y * Math.log(1 / (1 + Math.exp(-x))) + (1 - y) * Math.log(1 - 1 / (1 + Math.exp(-x))));
    }));
    assertAllClose(out.loss!, total / 6, { atol: 1e-6, rtol: 1e-6 });
    disposeEncoderOutput(out);
    model.dispose();

    const regression = new BertForSequenceClassification({ ...tiny, num_labels: 3, problem_type: 'regression' }, { seed: 11 });
    const out2 = regression.forward({ inputIds: [[1, 2], [3, 4]], labels });
    let mse = 0;
    labels.forEach((row, b) => row.forEach((y, j) => (mse += (logits[b]![j]! - y) ** 2)));
    assertAllClose(out2.loss!, mse / 6, { atol: 1e-6, rtol: 1e-6 });
    disposeEncoderOutput(out2);
    regression.dispose();
  });

  test('labels of the wrong shape are a ShapeError', () => {
    const model = new BertForSequenceClassification({ ...tiny, num_labels: 3 }, { seed: 12 });
    assert.throws(() => model.forward({ inputIds: [[1, 2], [3, 4]], labels: [1] }), /one per row/);
    assert.throws(() => model.forward({ inputIds: [[1, 2], [3, 4]], labels: [[1, 0], [0, 1]] }), /logits' shape/);
    model.dispose();
  });
});

describe('BERT fromPretrained', () => {
  test('a folder saved from our own state dict round-trips through AutoModel and AutoModelForSequenceClassification', async () => {
    const { dir, cleanup } = tempDir('bert-');
    const clsDir = tempDir('bert-cls-');
    try {
      const model = new BertModel(tiny, { seed: 13 });
      await saveFolder(dir, tiny, model.stateDict());
      const loaded = await AutoModel.fromPretrained(dir);
      assert.ok(loaded instanceof BertModel);
      const input = { inputIds: [[1, 2, 3, 4]], tokenTypeIds: [[0, 0, 1, 1]] };
      const [a, b] = [model.forward(input), loaded.forward(input)];
      assert.equal(maxAbsDiff(a.lastHiddenState, b.lastHiddenState), 0);
      assert.equal(maxAbsDiff(a.poolerOutput!, b.poolerOutput!), 0);
      [a, b].forEach(disposeEncoderOutput);
      loaded.dispose();

      const classifier = new BertForSequenceClassification({ ...tiny, num_labels: 3 }, { seed: 14 });
      await saveFolder(clsDir.dir, { ...tiny, num_labels: 3 }, classifier.stateDict());
      const loadedCls = await AutoModelForSequenceClassification.fromPretrained(clsDir.dir);
      assert.ok(loadedCls instanceof BertForSequenceClassification);
      const [c, d] = [classifier.forward(input), loadedCls.forward(input)];
      assert.equal(maxAbsDiff(c.logits, d.logits), 0);
      [c, d].forEach(disposeEncoderOutput);
      // AutoModel on a classifier checkpoint: the `bert.` prefix is stripped and the head dropped (as transformers).
      const bare = await AutoModel.fromPretrained(clsDir.dir);
      const e = bare.forward(input);
      const f = classifier.bert.forward(input);
      assert.equal(maxAbsDiff(e.lastHiddenState, f.lastHiddenState), 0);
      [e, f].forEach(disposeEncoderOutput);
      bare.dispose();
      loadedCls.dispose();
      classifier.dispose();
      model.dispose();
    } finally {
      cleanup();
      clsDir.cleanup();
    }
  });

  test('a classifier from a bare / pre-training checkpoint: encoder loaded, new head initialised, other heads dropped', async () => {
    const { dir, cleanup } = tempDir('bert-pretrain-');
    try {
      const model = new BertModel(tiny, { seed: 15 });
      const tensors = new Map(Object.entries(model.stateDict()).map(([k, v]) => [`bert.${k}`, v]));
      // What old and pre-training checkpoints carry besides: the position_ids buffer and the MLM / NSP heads.
      const extra = {
        'bert.embeddings.position_ids': tf.range(0, 24, 1, 'int32').reshape([1, 24]),
        'cls.predictions.bias': tf.zeros([50]),
        'cls.seq_relationship.weight': tf.zeros([2, 16]),
      };
      await saveFolder(dir, { ...tiny, architectures: ['BertForPreTraining'] }, new Map([...tensors, ...Object.entries(extra)]));
      tf.dispose(Object.values(extra));
      const cls = await AutoModelForSequenceClassification.fromPretrained(dir, { seed: 1 });
      const input = { inputIds: [[1, 2, 3]] };
      const a = (cls as BertForSequenceClassification).bert.forward(input);
      const b = model.forward(input);
      assert.equal(maxAbsDiff(a.lastHiddenState, b.lastHiddenState), 0);
      const classifier = cls.stateDict()['classifier.weight']!;
      assert.ok(tf.tidy(() => tf.abs(classifier).max().dataSync()[0]!) > 0, 'the new head is drawn, not zeros');
      [a, b].forEach(disposeEncoderOutput);
      cls.dispose();
      // The bare model loads the same folder (prefix stripped, heads and position_ids dropped), strictly.
      const bare = await AutoModel.fromPretrained(dir);
      const c = bare.forward(input);
      const d = model.forward(input);
      assert.equal(maxAbsDiff(c.lastHiddenState, d.lastHiddenState), 0);
      [c, d].forEach(disposeEncoderOutput);
      bare.dispose();
      model.dispose();
    } finally {
      cleanup();
    }
  });

  test('strict loading still checks the encoder weights', async () => {
    const { dir, cleanup } = tempDir('bert-missing-');
    try {
      const model = new BertModel(tiny, { seed: 16 });
      const tensors = { ...model.stateDict() };
      delete tensors['encoder.layer.1.output.dense.bias'];
      await saveFolder(dir, tiny, tensors);
      await assert.rejects(AutoModel.fromPretrained(dir), (e: unknown) => e instanceof StateDictError && e.missingKeys.includes('encoder.layer.1.output.dense.bias'));
      await assert.rejects(
        AutoModelForSequenceClassification.fromPretrained(dir),
        (e: unknown) => e instanceof StateDictError && e.missingKeys.includes('bert.encoder.layer.1.output.dense.bias'),
      );
      const loose = await AutoModel.fromPretrained(dir, { strict: false });
      loose.dispose();
      model.dispose();
    } finally {
      cleanup();
    }
  });

  test('an unknown model_type is an UnsupportedModelError naming the supported ones', async () => {
    assert.throws(() => AutoModel.fromConfig({ model_type: 'roberta' }), (e: unknown) =>
      e instanceof UnsupportedModelError && e.modelType === 'roberta' && ['bert', 'distilbert', 'clip_text_model'].every((t) => e.supported.includes(t)),
    );
    assert.throws(() => AutoModelForSequenceClassification.fromConfig({ model_type: 'clip_text_model' }), (e: unknown) =>
      e instanceof UnsupportedModelError && e.supported.join() === 'bert,distilbert',
    );
    const { dir, cleanup } = tempDir('bert-unknown-');
    try {
      await saveFolder(dir, { model_type: 'xlnet' }, {});
      await assert.rejects(AutoModel.fromPretrained(dir), UnsupportedModelError);
    } finally {
      cleanup();
    }
    const fromConfig = AutoModelForSequenceClassification.fromConfig({ ...tiny, num_labels: 4 }, { seed: 1 });
    assert.ok(fromConfig instanceof BertForSequenceClassification);
    assert.equal(fromConfig.numLabels, 4);
    fromConfig.dispose();
  });
});
