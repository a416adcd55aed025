// fusedSelfAttention (heads, rotary, grouped-query attention and heads merged, one graph each way, backward
// recomputing the forward) on the onnxruntime backend against TF.js's cpu backend composing the same steps from
// the model's functions: values and gradients w.r.t. q, k and v.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { fusedSelfAttention } from '../../../src/engine/fused/self-attention.js';
import { tf } from '../../../src/engine/tf.js';
import { applyRotaryPosEmb, causalAttentionBias, mergeHeads, repeatKv, scaledDotProductAttention, splitHeads } from '../../../src/models/attention.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

interface Case {
  name: string;
  batch: number;
  heads: number;
  kvHeads: number;
  seq: number;
  headDim: number;
  /** Leading left-padding positions of the second row (0: none). */
  pad: number;
}

const cases: Case[] = [
  { name: 'multi-head, causal', batch: 1, heads: 4, kvHeads: 4, seq: 6, headDim: 8, pad: 0 },
  { name: 'grouped-query (4 heads, 2 kv), left padding', batch: 2, heads: 4, kvHeads: 2, seq: 7, headDim: 8, pad: 3 },
  { name: 'one kv head for three query heads', batch: 2, heads: 3, kvHeads: 1, seq: 5, headDim: 4, pad: 1 },
];

describe('fusedSelfAttention', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const c of cases) {
    const q = rand([c.batch, c.seq, c.heads * c.headDim]);
    const k = rand([c.batch, c.seq, c.kvHeads * c.headDim]);
    const v = rand([c.batch, c.seq, c.kvHeads * c.headDim]);
    const dy = rand([c.batch, c.seq, c.heads * c.headDim]);
    const angles = rand([1, c.seq, c.headDim / 2]);
    const spec = { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, scale: c.headDim ** -0.5 };
    const composed = (qt: tf.Tensor, kt: tf.Tensor, vt: tf.Tensor, cos: tf.Tensor3D, sin: tf.Tensor3D, bias: tf.Tensor4D): tf.Tensor => {
      const groups = c.heads / c.kvHeads;
      const query = applyRotaryPosEmb(splitHeads(qt, c.heads), cos, sin);
      const key = repeatKv(applyRotaryPosEmb(splitHeads(kt, c.kvHeads), cos, sin), groups);
      return mergeHeads(scaledDotProductAttention(query, key, repeatKv(splitHeads(vt, c.kvHeads), groups), bias, spec.scale));
    };
    const compute = (): tf.Tensor[] => {
      const theta = tf.concat([toTensor(angles), toTensor(angles)], -1);
      const [cos, sin] = [tf.cos(theta) as tf.Tensor3D, tf.sin(theta) as tf.Tensor3D];
      const mask = tf.tensor2d(Array.from({ length: c.batch * c.seq }, (_, i) => (i >= c.seq && i % c.seq < c.pad ? 0 : 1)), [c.batch, c.seq], 'int32');
      const bias = causalAttentionBias(c.seq, 0, mask);
      const attend = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor): tf.Tensor =>
        tf.getBackend() === 'onnxruntime' ? fusedSelfAttention(spec, a as tf.Tensor3D, b as tf.Tensor3D, d as tf.Tensor3D, cos, sin, bias)! : composed(a, b, d, cos, sin, bias);
      const [qt, kt, vt] = [toTensor(q), toTensor(k), toTensor(v)];
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => tf.mul(attend(a, b, d), toTensor(dy)).sum())([qt, kt, vt]);
      return [attend(qt, kt, vt), ...grads];
    };

    it(`matches the cpu composition in value and gradients: ${c.name}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      for (const [i, what] of ['output', 'dq', 'dk', 'dv'].entries()) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape, what);
        const diff = maxAbsDiff(ort[i]!.values, cpu[i]!.values);
        assert.ok(diff < 2e-5, `${what}: ${diff}`);
      }
    });
  }
});
