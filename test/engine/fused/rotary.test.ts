// applyRotaryPosEmb on the onnxruntime backend (one fused graph forward, one backward) against TF.js's cpu
// backend composing it: values and the gradient w.r.t. x. cos/sin are random (not the halves-symmetric tables
// of real rotary embeddings) so the transpose of rotate_half is exercised.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setFusedKernels } from '../../../src/engine/index.js';
import { tf } from '../../../src/engine/tf.js';
import { applyRotaryPosEmb } from '../../../src/models/attention.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

describe('applyRotaryPosEmb (fused)', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const [name, xShape, csShape] of [
    ['cos/sin shared over the batch', [2, 4, 6, 8], [1, 6, 8]],
    ['cos/sin per batch row', [3, 2, 5, 4], [3, 5, 4]],
  ] as const) {
    const x = rand([...xShape]);
    const cos = rand([...csShape]);
    const sin = rand([...csShape]);
    const dy = rand([...xShape]);
    const compute = (): tf.Tensor[] => {
      const xt = toTensor(x) as tf.Tensor4D;
      const [c, s] = [toTensor(cos) as tf.Tensor3D, toTensor(sin) as tf.Tensor3D];
      const f = (a: tf.Tensor): tf.Tensor => tf.mul(applyRotaryPosEmb(a as tf.Tensor4D, c, s), toTensor(dy)).sum();
      return [applyRotaryPosEmb(xt, c, s), tf.grad(f)(xt)];
    };

    it(`matches the cpu composition in value and gradient: ${name}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      for (let i = 0; i < 2; i++) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape);
        const diff = maxAbsDiff(ort[i]!.values, cpu[i]!.values);
        assert.ok(diff < 1e-5, `output ${i}: ${diff}`);
      }
    });
  }

  const x = rand([2, 4, 6, 8]);
  const cos = rand([1, 6, 8]);
  const sin = rand([1, 6, 8]);
  const step = (): tf.Tensor => {
    const [c, s] = [toTensor(cos) as tf.Tensor3D, toTensor(sin) as tf.Tensor3D];
    return tf.grad((a: tf.Tensor) => applyRotaryPosEmb(a as tf.Tensor4D, c, s).square().sum())(toTensor(x));
  };

  it('runs one fused kernel each way, and none with fusion off', async () => {
    await runOn('onnxruntime', step);
    const names = async (): Promise<Set<string>> => new Set((await tf.profile(() => tf.dispose(tf.tidy(step)))).kernels.map((k) => k.name));
    const fused = await names();
    assert.ok(fused.has('PeftTsRotary') && fused.has('PeftTsRotaryGrad') && !fused.has('Concat'));
    const previous = setFusedKernels(false);
    try {
      const composite = await names();
      assert.ok(!composite.has('PeftTsRotary') && composite.has('Concat'));
    } finally {
      setFusedKernels(previous);
    }
  });

  it('keeps the tensor count steady over repeated steps', async () => {
    await runOn('onnxruntime', step);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', step);
    assert.equal(tf.memory().numTensors, before);
  });
});
