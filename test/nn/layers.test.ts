import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { tf } from '../../src/engine/tf.js';
import { ConfigError, ShapeError } from '../../src/errors.js';
import {
  Activation,
  Conv1D,
  Conv1d,
  Conv2d,
  Dropout,
  Embedding,
  GELU,
  GPT2Conv1D,
  Identity,
  LayerNorm,
  Linear,
  RMSNorm,
  Sequential,
  SiLU,
  activationNames,
  gelu,
  geluTanh,
  getActivation,
  quickGelu,
  silu,
} from '../../src/nn/index.js';
import type { Conv1dOptions, Layer } from '../../src/nn/index.js';
import { assertAllClose, assertNoLeak } from '../helpers/assert.js';
import { convOptions, ref, toTensor } from './_reference.js';

process.env['PEFT_TS_QUIET'] = '1';

function load(module: { loadStateDict(d: Record<string, tf.Tensor>): unknown }, entries: Record<string, tf.Tensor>): void {
  module.loadStateDict(entries);
  for (const t of Object.values(entries)) t.dispose();
}

/** Runs `forward` on `x` and checks it against `expected`, then checks repeated forwards leak nothing. */
async function checkLayer(layer: Layer, x: tf.Tensor, expected: tf.Tensor, tol = { atol: 1e-5, rtol: 1e-5 }, what = ''): Promise<void> {
  const y = layer.forward(x);
  assertAllClose(y, expected, tol, what);
  y.dispose();
  await assertNoLeak(() => {
    for (let i = 0; i < 3; i++) layer.forward(x).dispose();
  }, `${what} forward`);
}

for (const backend of ['cpu', 'wasm'] as const) describe(`nn layers (${backend}) against PyTorch`, () => {
  before(async () => {
    await setBackend(backend);
  });

  test('Linear: x W^T + b for rank 3 input, state dict keys, kind', async () => {
    const r = ref.linear;
    const layer = new Linear(4, 3);
    assert.equal(layer.kind, 'linear');
    assert.deepEqual(layer.weight.shape, [3, 4]);
    assert.deepEqual(Object.keys(layer.stateDict()), ['weight', 'bias']);
    load(layer, { weight: toTensor(r.weight), bias: toTensor(r.bias) });
    const x = toTensor(r.x);
    await checkLayer(layer, x, toTensor(r.y), undefined, 'Linear');
    // rank 1 and rank 2 inputs give the matching rows
    const flat = tf.reshape(x, [4, 4]);
    const y2 = layer.forward(flat);
    assertAllClose(y2, r.y.data, { atol: 1e-5, rtol: 1e-5 }, 'Linear rank 2');
    const y1 = layer.forward(tf.slice(flat, [0, 0], [1, 4]).reshape([4]));
    assert.deepEqual(y1.shape, [3]);
    assertAllClose(y1, r.y.data.slice(0, 3), { atol: 1e-5, rtol: 1e-5 }, 'Linear rank 1');
    assert.equal(layer.toString(), 'Linear(in_features=4, out_features=3, bias=True)');
    assert.throws(() => layer.forward(tf.zeros([2, 5])), ShapeError);
    layer.dispose();
  });

  test('Linear without bias has no bias parameter', () => {
    const layer = new Linear(3, 2, { bias: false, seed: 1 });
    assert.equal(layer.bias, null);
    assert.deepEqual([...layer.namedParameters()].map(([n]) => n), ['weight']);
    const x = tf.tensor([[1, 2, 3]]);
    const expected = tf.matMul(x, layer.weight, false, true);
    assertAllClose(layer.forward(x), expected);
    layer.dispose();
  });

  test('GPT-2 Conv1D: weight [in, out], x W + b', async () => {
    const r = ref.gpt2_conv1d;
    assert.equal(GPT2Conv1D, Conv1D);
    const layer = new Conv1D(5, 4);
    assert.equal(layer.kind, 'gpt2_conv1d');
    assert.deepEqual(layer.weight.shape, [4, 5]);
    assert.equal(layer.inFeatures, 4);
    assert.equal(layer.outFeatures, 5);
    load(layer, { weight: toTensor(r.weight), bias: toTensor(r.bias) });
    await checkLayer(layer, toTensor(r.x), toTensor(r.y), undefined, 'Conv1D');
    assert.equal(layer.toString(), 'Conv1D(nf=5, nx=4)');
    layer.dispose();
  });

  test('LayerNorm over one and two trailing dims', async () => {
    for (const [r, shape] of [
      [ref.layernorm, 5],
      [ref.layernorm2d, [2, 3]],
    ] as const) {
      const layer = new LayerNorm(shape);
      load(layer, { weight: toTensor(r.weight), bias: toTensor(r.bias) });
      await checkLayer(layer, toTensor(r.x), toTensor(r.y), { atol: 1e-5, rtol: 1e-4 }, `LayerNorm(${String(shape)})`);
      layer.dispose();
    }
    const plain = new LayerNorm(3, { elementwiseAffine: false });
    assert.equal(plain.numParameters(), 0);
    // [1, 2, 3]: mean 2, biased var 2/3
    const s = 1 / Math.sqrt(2 / 3 + 1e-5);
    assertAllClose(plain.forward(tf.tensor([[1, 2, 3]])), [-s, 0, s]);
    assert.equal(new LayerNorm(4).toString(), 'LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)');
  });

  test('RMSNorm (Llama)', async () => {
    const r = ref.rmsnorm;
    const layer = new RMSNorm(6, { eps: r.eps });
    assert.deepEqual([...layer.weight.dataSync()], [1, 1, 1, 1, 1, 1]);
    load(layer, { weight: toTensor(r.weight) });
    await checkLayer(layer, toTensor(r.x), toTensor(r.y), { atol: 1e-5, rtol: 1e-4 }, 'RMSNorm');
    // by hand: [3, 4] -> rms = sqrt(12.5)
    const plain = new RMSNorm(2, { eps: 0 });
    assertAllClose(plain.forward(tf.tensor([3, 4])), [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]);
    layer.dispose();
    plain.dispose();
  });

  test('Embedding: gather rows for any id shape, padding row zeroed at init', async () => {
    const r = ref.embedding_grad;
    const layer = new Embedding(6, 3, { paddingIdx: 1, seed: 3 });
    assert.equal(layer.kind, 'embedding');
    assert.deepEqual([...tf.slice(layer.weight, [1, 0], [1, 3]).dataSync()], [0, 0, 0]);
    assert.notDeepEqual([...tf.slice(layer.weight, [0, 0], [1, 3]).dataSync()], [0, 0, 0]);
    load(layer, { weight: toTensor(r.weight) });
    await checkLayer(layer, toTensor(r.ids, 'int32'), toTensor(r.y), undefined, 'Embedding');
    assert.equal(layer.toString(), 'Embedding(6, 3, padding_idx=1)');
    assert.equal(new Embedding(4, 2, { paddingIdx: -1 }).paddingIdx, 3);
    assert.throws(() => new Embedding(4, 2, { paddingIdx: 4 }), ConfigError);
    // float ids are cast
    assertAllClose(layer.forward(tf.tensor([5, 0])), [...r.weight.data.slice(15, 18), ...r.weight.data.slice(0, 3)]);
    layer.dispose();
  });

  for (const c of ref.conv1d) {
    test(`Conv1d ${c.name}`, async () => {
      const layer = new Conv1d(c.in, c.out, c.kernel as number, convOptions(c) as Conv1dOptions);
      assert.equal(layer.kind, 'conv1d');
      assert.deepEqual(layer.weight.shape, c.weight.shape);
      assert.equal(layer.toString(), c.repr);
      load(layer, c.bias ? { weight: toTensor(c.weight), bias: toTensor(c.bias) } : { weight: toTensor(c.weight) });
      const x = toTensor(c.x);
      await checkLayer(layer, x, toTensor(c.y), { atol: 1e-5, rtol: 1e-4 }, `Conv1d ${c.name}`);
      // unbatched input [C, L] gives the first batch row
      const first = layer.forward(tf.squeeze(tf.slice(x, [0, 0, 0], [1, -1, -1]), [0]));
      assertAllClose(first, c.y.data.slice(0, c.y.data.length / 2), { atol: 1e-5, rtol: 1e-4 }, 'unbatched');
      layer.dispose();
    });
  }

  for (const c of ref.conv2d) {
    test(`Conv2d ${c.name}`, async () => {
      const layer = new Conv2d(c.in, c.out, c.kernel as number | [number, number], convOptions(c));
      assert.equal(layer.kind, 'conv2d');
      assert.deepEqual(layer.weight.shape, c.weight.shape);
      assert.equal(layer.toString(), c.repr);
      load(layer, c.bias ? { weight: toTensor(c.weight), bias: toTensor(c.bias) } : { weight: toTensor(c.weight) });
      await checkLayer(layer, toTensor(c.x), toTensor(c.y), { atol: 1e-5, rtol: 1e-4 }, `Conv2d ${c.name}`);
      layer.dispose();
    });
  }

  test('Conv2d: unbatched input, bad arguments and bad input', () => {
    const c = ref.conv2d[0]!;
    const layer = new Conv2d(c.in, c.out, c.kernel as [number, number], convOptions(c));
    load(layer, { weight: toTensor(c.weight), bias: toTensor(c.bias!) });
    const x = toTensor(c.x);
    const y = layer.forward(tf.squeeze(tf.slice(x, [1, 0, 0, 0], [1, -1, -1, -1]), [0]));
    assert.deepEqual(y.shape, c.y.shape.slice(1));
    assertAllClose(y, c.y.data.slice(c.y.data.length / 2), { atol: 1e-5, rtol: 1e-4 });
    assert.throws(() => layer.forward(tf.zeros([1, 2, 5, 5])), ShapeError);
    assert.throws(() => layer.forward(tf.zeros([5, 5])), ShapeError);
    assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), ConfigError);
    assert.throws(() => new Conv2d(4, 3, 3, { groups: 2 }), ConfigError);
    assert.throws(() => new Conv2d(4, 4, 3, { stride: 2, padding: 'same' }), ConfigError);
    assert.throws(() => new Conv2d(4, 4, [3, 3, 3] as unknown as [number, number]), ConfigError);
    layer.dispose();
  });

  test('Conv2d 1x1 equals a per-pixel Linear over channels', () => {
    const conv = new Conv2d(3, 2, 1, { seed: 5 });
    const lin = new Linear(3, 2);
    lin.loadStateDict({ weight: tf.reshape(conv.weight, [2, 3]), bias: conv.bias! });
    const x = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 7);
    const viaConv = conv.forward(x);
    const viaLinear = tf.transpose(lin.forward(tf.transpose(x, [0, 2, 3, 1])), [0, 3, 1, 2]);
    assertAllClose(viaConv, viaLinear, { atol: 1e-5, rtol: 1e-5 });
  });

  test('activations match PyTorch / transformers ACT2FN at fixed points', () => {
    const x = toTensor(ref.activations.x);
    const names = Object.keys(ref.activations).filter((k) => k !== 'x');
    for (const name of names) {
      const fn = getActivation(name);
      const y = fn(x);
      assertAllClose(y, ref.activations[name]!.data, { atol: 2e-6, rtol: 1e-5 }, name);
      y.dispose();
    }
    // every supported name is covered by the reference
    assert.deepEqual([...activationNames].sort(), [...names, 'gelu_accurate', 'gelu_python'].sort());
    assertAllClose(gelu(x), ref.activations['gelu']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(geluTanh(x), ref.activations['gelu_pytorch_tanh']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(quickGelu(x), ref.activations['quick_gelu']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(silu(x), ref.activations['silu']!.data, { atol: 2e-6, rtol: 1e-5 });
    // hand-computed: gelu(1) = 0.5 (1 + erf(1/sqrt 2)) = 0.8413447; quick_gelu(1) = sigmoid(1.702)
    assertAllClose(gelu(tf.scalar(1)), 0.8413447460685429, { atol: 1e-6, rtol: 0 });
    assertAllClose(quickGelu(tf.scalar(1)), 1 / (1 + Math.exp(-1.702)), { atol: 1e-6, rtol: 0 });
  });

  test('exact gelu is differentiable (erf gradient) and matches PyTorch', () => {
    const x = toTensor(ref.activations.x);
    const g = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x);
    assertAllClose(g, ref.gelu_grad.data, { atol: 1e-5, rtol: 1e-4 });
  });

  test('getActivation: unknown name is a ConfigError listing the supported names', () => {
    assert.throws(
      () => getActivation('gelu_magic'),
      (e: unknown) => e instanceof ConfigError && e.message.includes('gelu_magic') && e.message.includes('gelu_pytorch_tanh') && e.issues[0]!.path[0] === 'hidden_act',
    );
    assert.throws(() => new Activation('nope'), ConfigError);
  });

  test('activation modules', async () => {
    const x = toTensor(ref.activations.x);
    const g = new GELU();
    assert.equal(g.toString(), "GELU(approximate='none')");
    assertAllClose(g.forward(x), ref.activations['gelu']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(new GELU({ approximate: 'tanh' }).forward(x), ref.activations['gelu_pytorch_tanh']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(new SiLU().forward(x), ref.activations['silu']!.data, { atol: 2e-6, rtol: 1e-5 });
    assertAllClose(new Activation('quick_gelu').forward(x), ref.activations['quick_gelu']!.data, { atol: 2e-6, rtol: 1e-5 });
    for (const name of activationNames) {
      const fn = getActivation(name);
      await assertNoLeak(() => fn(x).dispose(), name);
    }
  });

  test('Dropout: identity in eval, inverted scaling in training, seeded and reproducible', async () => {
    const x = tf.ones([1000]);
    const d = new Dropout(0.25, { seed: 42 });
    d.eval();
    assertAllClose(d.forward(x), x);
    d.train();
    const a = d.forward(x);
    const values = [...a.dataSync()];
    const kept = values.filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), 'kept values are scaled by 1/(1-p)');
    assert.ok(kept.length > 690 && kept.length < 810, `about 75% kept, got ${kept.length}`);
    const b = d.forward(x);
    assert.notDeepEqual([...b.dataSync()], values, 'successive calls draw new masks');
    const again = new Dropout(0.25, { seed: 42 });
    assert.deepEqual([...again.forward(x).dataSync()], values, 'same seed, same first mask');
    assertAllClose(new Dropout(0).forward(x), x);
    assertAllClose(new Dropout(1).forward(x), tf.zerosLike(x));
    assert.throws(() => new Dropout(1.5), ConfigError);
    assert.equal(new Dropout(0.1).toString(), 'Dropout(p=0.1, inplace=False)');
    await assertNoLeak(() => d.forward(x).dispose(), 'Dropout training');
    d.eval();
    await assertNoLeak(() => d.forward(x).dispose(), 'Dropout eval');
  });

  test('Sequential and Identity chain layers without leaking', async () => {
    const seq = new Sequential(new Linear(4, 8, { seed: 1 }), new GELU(), new Linear(8, 2, { seed: 2 }), new Identity());
    assert.deepEqual([...seq.namedModules()].map(([n]) => n), ['', '0', '1', '2', '3']);
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 3);
    const manual = tf.tidy(() => seq.at(2).forward(gelu(seq.at(0).forward(x))));
    await checkLayer(seq, x, manual, undefined, 'Sequential');
    assert.equal(
      seq.toString(),
      [
        'Sequential(',
        '  (0): Linear(in_features=4, out_features=8, bias=True)',
        "  (1): GELU(approximate='none')",
        '  (2): Linear(in_features=8, out_features=2, bias=True)',
        '  (3): Identity()',
        ')',
      ].join('\n'),
    );
    seq.dispose();
  });
});
