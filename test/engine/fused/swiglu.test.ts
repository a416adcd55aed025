// swiGlu on the onnxruntime backend (one fused graph forward, one backward) against TF.js's cpu backend
// composing sigmoid and products, values and gradients.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { swiGlu } from '../../../src/engine/index.js';
import { tf } from '../../../src/engine/tf.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

describe('swiGlu', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  const gate = rand([2, 5, 12]);
  const up = rand([2, 5, 12]);
  const dy = rand([2, 5, 12]);
  const compute = (): tf.Tensor[] => {
    const g = toTensor(gate);
    const u = toTensor(up);
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.mul(swiGlu(a, b), toTensor(dy)).sum();
    const [dg, du] = tf.grads(f)([g, u]);
    return [swiGlu(g, u), dg!, du!];
  };

  it('matches the cpu composition in value and gradients', async () => {
    const cpu = await runOn('cpu', compute);
    const ort = await runOn('onnxruntime', compute);
    for (let i = 0; i < 3; i++) assert.ok(maxAbsDiff(ort[i]!.values, cpu[i]!.values) < 1e-6, `output ${i}`);
  });

  it('matches the hand-derived derivative silu\'(g) = s (1 + g (1 - s))', async () => {
    const [, dg] = await runOn('onnxruntime', compute);
    for (let i = 0; i < 10; i++) {
      const g = gate.values[i]!;
      const s = 1 / (1 + Math.exp(-g));
      const expected = dy.values[i]! * up.values[i]! * s * (1 + g * (1 - s));
      assert.ok(Math.abs(dg!.values[i]! - expected) < 1e-6);
    }
  });

  it('keeps the tensor count steady over repeated steps', async () => {
    await runOn('onnxruntime', compute);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', compute);
    assert.equal(tf.memory().numTensors, before);
  });
});
