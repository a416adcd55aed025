// layerNorm on the onnxruntime backend (one fused graph forward, one backward) against TF.js's cpu backend
// composing it, values and gradients, for every combination of weight and bias.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setFusedKernels } from '../../../src/engine/index.js';
import { tf } from '../../../src/engine/tf.js';
import { layerNorm } from '../../../src/nn/norm.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / scale;
}

const cases: { shape: number[]; numDims: number; weight: boolean; bias: boolean }[] = [
  { shape: [7, 16], numDims: 1, weight: true, bias: true },
  { shape: [2, 5, 12], numDims: 1, weight: true, bias: true },
  { shape: [2, 5, 12], numDims: 1, weight: true, bias: false },
  { shape: [2, 5, 12], numDims: 1, weight: false, bias: true },
  { shape: [2, 5, 12], numDims: 1, weight: false, bias: false },
  { shape: [3, 4, 6], numDims: 2, weight: true, bias: true },
  { shape: [24], numDims: 1, weight: true, bias: true },
];

describe('layerNorm (fused)', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const { shape, numDims, weight, bias } of cases) {
    const tail = shape.slice(shape.length - numDims);
    // Offsets and scales so rows differ in mean and variance.
    const x = rand(shape);
    for (let i = 0; i < x.values.length; i++) x.values[i] = x.values[i]! * (1 + (i % 5)) + 0.5 * (i % 3);
    const w = rand(tail);
    const b = rand(tail);
    const dy = rand(shape);
    const compute = (): tf.Tensor[] => {
      const params = [toTensor(x), ...(weight ? [toTensor(w)] : []), ...(bias ? [toTensor(b)] : [])];
      const apply = (...p: tf.Tensor[]): tf.Tensor =>
        layerNorm(p[0]!, numDims, weight ? p[1]! : null, bias ? p[weight ? 2 : 1]! : null, 1e-5);
      const grads = tf.grads((...p: tf.Tensor[]) => tf.mul(apply(...p), toTensor(dy)).sum())(params);
      return [apply(...params), ...grads];
    };

    it(`matches the cpu composition, shape [${shape.join(', ')}] over ${numDims} dim(s), weight ${weight}, bias ${bias}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      assert.equal(ort.length, 2 + Number(weight) + Number(bias));
      for (let i = 0; i < ort.length; i++) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape);
        assert.ok(relDiff(ort[i]!.values, cpu[i]!.values) < 1e-5, `output ${i}: ${relDiff(ort[i]!.values, cpu[i]!.values)}`);
      }
    });
  }

  it('stays accurate for rows with a large mean', async () => {
    const x = rand([4, 64]);
    for (let i = 0; i < x.values.length; i++) x.values[i] = x.values[i]! + 30;
    const compute = (): tf.Tensor => layerNorm(toTensor(x), 1, null, null, 1e-5);
    const cpu = await runOn('cpu', compute);
    const ort = await runOn('onnxruntime', compute);
    assert.ok(maxAbsDiff(ort[0]!.values, cpu[0]!.values) < 1e-4, `${maxAbsDiff(ort[0]!.values, cpu[0]!.values)}`);
  });

  it('runs the fused kernels on onnxruntime and none of the composite', async () => {
    const x = rand([3, 8]);
    const w = rand([8]);
    const b = rand([8]);
    await runOn('onnxruntime', () => tf.tensor(0));
    const profile = await tf.profile(() =>
      tf.tidy(() =>
        tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => layerNorm(p, 1, q, r).sum())([toTensor(x), toTensor(w), toTensor(b)]),
      ),
    );
    const names = new Set(profile.kernels.map((k) => k.name));
    assert.ok(names.has('PeftTsLayerNorm') && names.has('PeftTsLayerNormGrad'), [...names].join(', '));
    assert.ok(!names.has('Rsqrt') && !names.has('SquaredDifference'), [...names].join(', '));
  });

  it('falls back to the composition when fused kernels are off', async () => {
    const x = rand([3, 8]);
    const compute = (): tf.Tensor => layerNorm(toTensor(x), 1, null, null);
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
    const b = rand([12]);
    const step = (): tf.Tensor[] => {
      const grads = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => layerNorm(p, 1, q, r).sum())([toTensor(x), toTensor(w), toTensor(b)]);
      return [layerNorm(toTensor(x), 1, toTensor(w), toTensor(b)), layerNorm(toTensor(x), 1, null, null), ...grads];
    };
    await runOn('onnxruntime', step);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', step);
    assert.equal(tf.memory().numTensors, before);
  });
});
