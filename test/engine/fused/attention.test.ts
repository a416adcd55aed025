// scaledDotProductAttention on the onnxruntime backend (one fused graph forward, one backward) against TF.js's
// cpu backend composing it: values and gradients w.r.t. q, k and v, grouped-query shapes (k/v through
// repeatKv), causal masks with left padding, a KV-cache-shaped query.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setFusedKernels } from '../../../src/engine/index.js';
import { tf } from '../../../src/engine/tf.js';
import { bidirectionalAttentionBias, causalAttentionBias, repeatKv, scaledDotProductAttention } from '../../../src/models/attention.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

interface Case {
  name: string;
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  pastLen: number;
  headDim: number;
  bias: (batch: number) => tf.Tensor4D;
}

const leftPadded = (batch: number, len: number, pad: number): tf.Tensor2D =>
  tf.tensor2d(Array.from({ length: batch * len }, (_, i) => (i >= len && i % len < pad ? 0 : 1)), [batch, len], 'int32');

const cases: Case[] = [
  { name: 'causal, GQA', batch: 2, heads: 4, kvHeads: 2, queryLen: 6, pastLen: 0, headDim: 8, bias: () => causalAttentionBias(6, 0) },
  {
    name: 'causal + left padding, GQA',
    batch: 2, heads: 4, kvHeads: 2, queryLen: 7, pastLen: 0, headDim: 8,
    bias: (b) => causalAttentionBias(7, 0, leftPadded(b, 7, 3)),
  },
  {
    name: 'KV-cache query (2 new after 5 past) + padding',
    batch: 2, heads: 2, kvHeads: 1, queryLen: 2, pastLen: 5, headDim: 4,
    bias: (b) => causalAttentionBias(2, 5, leftPadded(b, 7, 2)),
  },
  {
    name: 'bidirectional padding mask [batch, 1, 1, k]',
    batch: 2, heads: 3, kvHeads: 3, queryLen: 5, pastLen: 0, headDim: 6,
    bias: (b) => bidirectionalAttentionBias(5, leftPadded(b, 5, 2)),
  },
];

function kernelNames(profile: { kernels: { name: string }[] }): Set<string> {
  return new Set(profile.kernels.map((k) => k.name));
}

describe('scaledDotProductAttention (fused)', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const c of cases) {
    const keyLen = c.pastLen + c.queryLen;
    const scale = c.headDim ** -0.5;
    const q = rand([c.batch, c.heads, c.queryLen, c.headDim]);
    const k = rand([c.batch, c.kvHeads, keyLen, c.headDim]);
    const v = rand([c.batch, c.kvHeads, keyLen, c.headDim]);
    const dy = rand([c.batch, c.heads, c.queryLen, c.headDim]);
    const nRep = c.heads / c.kvHeads;
    const attend = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, bias: tf.Tensor4D): tf.Tensor =>
      scaledDotProductAttention(a as tf.Tensor4D, repeatKv(b as tf.Tensor4D, nRep), repeatKv(d as tf.Tensor4D, nRep), bias, scale);
    const compute = (): tf.Tensor[] => {
      const [qt, kt, vt] = [toTensor(q), toTensor(k), toTensor(v)];
      const bias = c.bias(c.batch);
      const f = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor): tf.Tensor => tf.mul(attend(a, b, d, bias), toTensor(dy)).sum();
      const grads = tf.grads(f)([qt, kt, vt]);
      return [attend(qt, kt, vt, bias), ...grads];
    };

    it(`matches the cpu composition in value and gradients: ${c.name}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      for (let i = 0; i < 4; i++) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape);
        const diff = maxAbsDiff(ort[i]!.values, cpu[i]!.values);
        assert.ok(diff < 1e-5, `output ${i}: ${diff}`);
      }
    });
  }

  const c = cases[1]!;
  const q = rand([c.batch, c.heads, c.queryLen, c.headDim]);
  const kv = rand([c.batch, c.heads, c.queryLen, c.headDim]);
  const training = (): tf.Tensor[] => {
    const [qt, kt] = [toTensor(q), toTensor(kv)];
    const bias = c.bias(c.batch);
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      scaledDotProductAttention(a as tf.Tensor4D, b as tf.Tensor4D, b as tf.Tensor4D, bias, 0.3).square().sum();
    return tf.grads(f)([qt, kt]);
  };

  it('runs one fused kernel each way, and none with fusion off', async () => {
    await runOn('onnxruntime', training);
    const fused = kernelNames(await tf.profile(() => tf.dispose(tf.tidy(training))));
    assert.ok(fused.has('PeftTsAttention') && fused.has('PeftTsAttentionGrad') && !fused.has('Softmax'));
    const previous = setFusedKernels(false);
    try {
      const composite = kernelNames(await tf.profile(() => tf.dispose(tf.tidy(training))));
      assert.ok(!composite.has('PeftTsAttention') && composite.has('Softmax'));
    } finally {
      setFusedKernels(previous);
    }
  });

  it('keeps the composite path when dropout is given', async () => {
    await runOn('onnxruntime', training);
    const names = kernelNames(
      await tf.profile(() =>
        tf.tidy(() => {
          const t = toTensor(q) as tf.Tensor4D;
          scaledDotProductAttention(t, t, t, c.bias(c.batch), 0.3, (w) => tf.mul(w, 2));
        }),
      ),
    );
    assert.ok(!names.has('PeftTsAttention') && names.has('Softmax'));
  });

  it('matches outside a gradient tape (no probabilities written)', async () => {
    const infer = (): tf.Tensor => {
      const t = toTensor(q) as tf.Tensor4D;
      const u = toTensor(kv) as tf.Tensor4D;
      return scaledDotProductAttention(t, u, u, c.bias(c.batch), 0.3);
    };
    const [cpu] = await runOn('cpu', infer);
    const [ort] = await runOn('onnxruntime', infer);
    assert.ok(maxAbsDiff(ort!.values, cpu!.values) < 1e-5);
  });

  it('keeps the tensor count steady over repeated steps', async () => {
    await runOn('onnxruntime', training);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', training);
    assert.equal(tf.memory().numTensors, before);
  });
});
