// rmsNorm on the onnxruntime backend (one fused graph forward, one backward) against TF.js's cpu backend
// composing it, values and gradients, with and without a weight.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setFusedKernels } from '../../../src/engine/index.js';
import { tf } from '../../../src/engine/tf.js';
import { rmsNorm } from '../../../src/nn/norm.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / scale;
}

describe('rmsNorm (fused)', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const shape of [[7, 16], [2, 5, 12], [24]]) {
    for (const weighted of [true, false]) {
      const dim = shape[shape.length - 1]!;
      // An offset and a scale so rows differ in their mean square.
      const x = rand(shape);
      for (let i = 0; i < x.values.length; i++) x.values[i] = x.values[i]! * (1 + (i % 5)) + 0.3;
      const w = rand([dim]);
      const dy = rand(shape);
      const compute = (): tf.Tensor[] => {
        const xt = toTensor(x);
        const wt = toTensor(w);
        const loss = (a: tf.Tensor, b: tf.Tensor | null): tf.Tensor => tf.mul(rmsNorm(a, b, 1e-5), toTensor(dy)).sum();
        const grads = weighted ? tf.grads(loss)([xt, wt]) : tf.grads((a: tf.Tensor) => loss(a, null))([xt]);
        return [rmsNorm(xt, weighted ? wt : null, 1e-5), ...grads];
      };

      it(`matches the cpu composition, shape [${shape.join(', ')}]${weighted ? '' : ', no weight'}`, async () => {
        const cpu = await runOn('cpu', compute);
        const ort = await runOn('onnxruntime', compute);
        assert.equal(ort.length, weighted ? 3 : 2);
        for (let i = 0; i < ort.length; i++) {
          assert.deepEqual(ort[i]!.shape, cpu[i]!.shape);
          assert.ok(relDiff(ort[i]!.values, cpu[i]!.values) < 1e-5, `output ${i}: ${relDiff(ort[i]!.values, cpu[i]!.values)}`);
        }
      });
    }
  }

  it('runs the fused kernels on onnxruntime and none of the composite', async () => {
    const x = rand([3, 8]);
    const w = rand([8]);
    await runOn('onnxruntime', () => tf.tensor(0));
    const profile = await tf.profile(() =>
      tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => rmsNorm(a, b).sum())([toTensor(x), toTensor(w)])),
    );
    const names = new Set(profile.kernels.map((k) => k.name));
    assert.ok(names.has('PeftTsRmsNorm') && names.has('PeftTsRmsNormGrad'), [...names].join(', '));
    assert.ok(!names.has('Rsqrt') && !names.has('Square'), [...names].join(', '));
  });

  it('falls back to the composition when fused kernels are off', async () => {
    const x = rand([3, 8]);
    const w = rand([8]);
    const compute = (): tf.Tensor => rmsNorm(toTensor(x), toTensor(w));
    const fused = await runOn('onnxruntime', compute);
    const previous = setFusedKernels(false);
    try {
      const plain = await runOn('onnxruntime', compute);
      assert.ok(maxAbsDiff(fused[0]!.values, plain[0]!.values) < 1e-5);
    } finally {
      setFusedKernels(previous);
    }
  });

  it('keeps the tensor count steady over repeated steps, with and without a tape', async () => {
    const x = rand([2, 5, 12]);
    const w = rand([12]);
    const step = (): tf.Tensor[] => {
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => rmsNorm(a, b).sum())([toTensor(x), toTensor(w)]);
      return [rmsNorm(toTensor(x), toTensor(w)), rmsNorm(toTensor(x), null), dx!, dw!];
    };
    await runOn('onnxruntime', step);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', step);
    assert.equal(tf.memory().numTensors, before);
  });
});
