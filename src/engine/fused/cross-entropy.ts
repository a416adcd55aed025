import { ShapeError } from '../../errors.js';
import { tf } from '../tf.js';
import { fusedKernelsActive, runFusedKernel } from './fused-op.js';

// Labels are not differentiated: closed over (and saved, so the tape keeps them until backward) rather than an
// input that would need a zero gradient.
function fused(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const f = tf.customGrad((x, save) => {
    const [loss, lse] = runFusedKernel('PeftTsCrossEntropy', { logits: x as tf.Tensor, labels });
    // The per-row logsumexp spares the backward a second pass over the logits for the softmax normaliser.
    (save as tf.GradSaveFunc)([x as tf.Tensor, labels, lse!]);
    return {
      value: loss!,
      gradFunc: (dy, saved) => {
        const [savedX, savedLabels, savedLse] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const inputs = { dy: dy as tf.Tensor, logits: savedX, labels: savedLabels, lse: savedLse };
        return runFusedKernel('PeftTsCrossEntropyGrad', inputs)[0]!;
      },
    };
  });
  return f(logits) as tf.Scalar;
}

/** Whether {@link softmaxCrossEntropy} can run here: fused kernels on and float32 logits. */
export function softmaxCrossEntropyFusable(logits: tf.Tensor): boolean {
  return fusedKernelsActive() && logits.dtype === 'float32';
}

/**
 * Mean softmax cross-entropy of `[n, classes]` logits against `[n]` integer labels in one fused kernel forward
 * and one backward, skipping label -100 (PyTorch's `ignore_index`); NaN when every label is ignored. Needs a
 * backend with fused kernels ({@link softmaxCrossEntropyFusable}); src/models/loss.ts composes it elsewhere.
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  if (!softmaxCrossEntropyFusable(logits)) {
    throw new Error(`softmaxCrossEntropy needs fused kernels and float32 logits (backend ${tf.getBackend()}, ${logits.dtype}).`);
  }
  if (logits.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new ShapeError(`softmaxCrossEntropy: labels of shape [${labels.shape.join(', ')}] for logits [${logits.shape.join(', ')}].`);
  }
  return tf.tidy(() => fused(logits, labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32')));
}
