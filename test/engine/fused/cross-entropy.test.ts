// crossEntropy and causalLMLoss on the onnxruntime backend (one fused graph forward, one backward; causalLMLoss
// shifting labels instead of logits) against TF.js's cpu backend composing logSoftmax and a one-hot, loss and
// gradient of the logits.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setFusedKernels } from '../../../src/engine/index.js';
import { softmaxCrossEntropy } from '../../../src/engine/fused/cross-entropy.js';
import { tf } from '../../../src/engine/tf.js';
import { IGNORE_INDEX, causalLMLoss, crossEntropy } from '../../../src/models/loss.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';
import type { Result, Spec } from './_fused.js';

function scaled(spec: Spec, k: number): Spec {
  return { shape: spec.shape, values: Float32Array.from(spec.values, (v) => v * k) };
}

function labelSpec(values: number[], shape = [values.length]): Spec {
  return { shape, values: Int32Array.from(values) };
}

/** Loss and d(loss * 1.7)/dlogits (a non-unit upstream gradient). */
function lossAndGrad(loss: (logits: tf.Tensor) => tf.Scalar, logits: Spec): () => tf.Tensor[] {
  return () => {
    const x = toTensor(logits);
    const dx = tf.grad((l: tf.Tensor) => tf.mul(loss(l), 1.7))(x);
    return [loss(x), dx];
  };
}

async function compare(compute: () => tf.Tensor[], tol = 1e-6): Promise<Result[]> {
  const cpu = await runOn('cpu', compute);
  const ort = await runOn('onnxruntime', compute);
  for (let i = 0; i < cpu.length; i++) {
    const [a, b] = [ort[i]!.values, cpu[i]!.values];
    const scale = Math.max(1, ...Array.from(b, Math.abs));
    assert.ok(maxAbsDiff(a, b) <= tol * scale, `output ${i}: max diff ${maxAbsDiff(a, b)}`);
  }
  return ort;
}

describe('softmaxCrossEntropy', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  const logits = rand([9, 13]);
  const labels = labelSpec([3, IGNORE_INDEX, 0, 12, 7, IGNORE_INDEX, 5, 1, 12]);
  const ce = (l: tf.Tensor): tf.Scalar => crossEntropy(l as tf.Tensor2D, toTensor(labels) as tf.Tensor1D);

  it('matches the cpu composition in loss and gradient, with ignored labels', async () => {
    await compare(lossAndGrad(ce, logits));
  });

  it('treats other out-of-range labels as the composition does (counted, no class picked)', async () => {
    const odd = labelSpec([3, -3, 0, 13, 7, IGNORE_INDEX, 5, 99, 12]);
    await compare(lossAndGrad((l) => crossEntropy(l as tf.Tensor2D, toTensor(odd) as tf.Tensor1D), logits));
  });

  it('is stable for large logits', async () => {
    for (const k of [80, 200]) {
      const [loss, dx] = await compare(lossAndGrad(ce, scaled(logits, k)), 2e-6);
      assert.ok(Number.isFinite(loss!.values[0]!), `loss at scale ${k}`);
      assert.ok(dx!.values.every(Number.isFinite), `gradient at scale ${k}`);
    }
  });

  it('gives NaN loss and gradient when every label is ignored, like the composition', async () => {
    const none = labelSpec(new Array<number>(9).fill(IGNORE_INDEX));
    const compute = lossAndGrad((l) => crossEntropy(l as tf.Tensor2D, toTensor(none) as tf.Tensor1D), logits);
    const cpu = await runOn('cpu', compute);
    const ort = await runOn('onnxruntime', compute);
    for (const r of [cpu, ort]) {
      assert.ok(Number.isNaN(r[0]!.values[0]));
      assert.ok(r[1]!.values.every(Number.isNaN));
    }
  });

  it('matches a hand computation', async () => {
    // Rows [0, ln 3] with label 1 and [0, 0] with label 0; a third ignored row.
    const x = { shape: [3, 2], values: Float32Array.from([0, Math.log(3), 0, 0, 5, -5]) };
    const y = labelSpec([1, 0, IGNORE_INDEX]);
    const [loss, dx] = await runOn('onnxruntime', lossAndGrad((l) => softmaxCrossEntropy(l as tf.Tensor2D, toTensor(y) as tf.Tensor1D), x));
    // -(ln(3/4) + ln(1/2)) / 2, and (softmax - onehot) * 1.7 / 2 on counted rows.
    assert.ok(Math.abs(loss!.values[0]! - -(Math.log(0.75) + Math.log(0.5)) / 2) < 1e-6);
    const expected = [0.25, -0.25, -0.5, 0.5, 0, 0].map((v) => v * 0.85);
    assert.ok(maxAbsDiff(dx!.values, expected) < 1e-6, `${Array.from(dx!.values).join(', ')}`);
  });

  it('casts float labels and rejects mismatched shapes', async () => {
    const floatLabels = { shape: labels.shape, values: Float32Array.from(labels.values) };
    await compare(lossAndGrad((l) => crossEntropy(l as tf.Tensor2D, toTensor(floatLabels) as tf.Tensor1D), logits));
    await runOn('onnxruntime', () => {
      assert.throws(() => softmaxCrossEntropy(toTensor(logits) as tf.Tensor2D, tf.zeros([4], 'int32') as tf.Tensor1D), /labels of shape/);
      return [];
    });
  });

  it('falls back to the composition with fused kernels off', async () => {
    const previous = setFusedKernels(false);
    try {
      await compare(lossAndGrad(ce, logits));
    } finally {
      setFusedKernels(previous);
    }
  });

  it('keeps the tensor count steady over repeated steps', async () => {
    const compute = lossAndGrad(ce, logits);
    await runOn('onnxruntime', compute);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', compute);
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('causalLMLoss with shifted labels', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  const logits = rand([3, 6, 11]);
  const labels = labelSpec([4, 1, IGNORE_INDEX, 10, 0, 2, IGNORE_INDEX, IGNORE_INDEX, 3, 3, 9, 8, 5, 6, 7, 1, 2, IGNORE_INDEX], [3, 6]);
  const lm = (l: tf.Tensor): tf.Scalar => causalLMLoss(l as tf.Tensor3D, toTensor(labels) as tf.Tensor2D);

  it('matches the cpu composition (sliced logits) in loss and gradient', async () => {
    const [, dx] = await compare(lossAndGrad(lm, logits));
    // The last position predicts nothing.
    for (let b = 0; b < 3; b++) for (let v = 0; v < 11; v++) assert.equal(dx!.values[(b * 6 + 5) * 11 + v], 0);
  });

  it('matches at large logits', async () => {
    await compare(lossAndGrad(lm, scaled(logits, 80)), 2e-6);
  });

  it('gives NaN when every shifted label is ignored', async () => {
    const only = labelSpec([1, IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX, IGNORE_INDEX], [2, 3]);
    const [loss] = await runOn('onnxruntime', () => causalLMLoss(toTensor(rand([2, 3, 5])) as tf.Tensor3D, toTensor(only) as tf.Tensor2D));
    assert.ok(Number.isNaN(loss!.values[0]));
  });

  it('keeps the tensor count steady over repeated steps', async () => {
    const compute = lossAndGrad(lm, logits);
    await runOn('onnxruntime', compute);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runOn('onnxruntime', compute);
    assert.equal(tf.memory().numTensors, before);
  });
});
