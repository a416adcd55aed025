import { softmaxCrossEntropy, softmaxCrossEntropyFusable } from '../engine/fused/cross-entropy.js';
import { tf } from '../engine/tf.js';
import { ShapeError } from '../errors.js';

/** Label value excluded from the loss, as PyTorch's `CrossEntropyLoss(ignore_index=-100)`. */
export const IGNORE_INDEX = -100;

/**
 * Causal-LM loss as transformers computes it: logits at position t predict labels at t+1; positions labelled
 * -100 are ignored; the mean is over the remaining tokens of the whole batch.
 */
export function causalLMLoss(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Scalar {
  const [batch, seq, vocab] = logits.shape;
  if (labels.shape[0] !== batch || labels.shape[1] !== seq) {
    throw new ShapeError(`labels must have shape [${batch}, ${seq}] like inputIds, got [${labels.shape.join(', ')}].`);
  }
  return tf.tidy(() => {
    if (seq < 2) return tf.scalar(Number.NaN);
    if (softmaxCrossEntropyFusable(logits)) {
      // Shift the labels instead of the logits (as transformers' ForCausalLMLoss): the last position gets -100,
      // so the mean is the same without copying [batch, seq - 1, vocab] logits forward and padding them back.
      const shiftedLabels = tf.concat([tf.slice(tf.cast(labels, 'int32'), [0, 1], [batch, seq - 1]), tf.fill([batch, 1], IGNORE_INDEX, 'int32')], 1);
      return softmaxCrossEntropy(logits.reshape([-1, vocab]), shiftedLabels.reshape([-1]));
    }
    const shiftedLogits = tf.slice(logits, [0, 0, 0], [batch, seq - 1, vocab]).reshape([-1, vocab]);
    const shiftedLabels = tf.slice(labels, [0, 1], [batch, seq - 1]).reshape([-1]);
    return crossEntropy(shiftedLogits as tf.Tensor2D, shiftedLabels as tf.Tensor1D);
  });
}

/** Mean cross-entropy of `[n, classes]` logits against `[n]` integer labels, skipping IGNORE_INDEX. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  if (softmaxCrossEntropyFusable(logits)) return softmaxCrossEntropy(logits, labels);
  return tf.tidy(() => {
    const labelsInt = tf.cast(labels, 'int32');
    const valid = tf.notEqual(labelsInt, IGNORE_INDEX);
    // oneHot of a negative index is all zeros, so ignored rows contribute nothing.
    const target = tf.oneHot(tf.where(valid, labelsInt, tf.neg(tf.onesLike(labelsInt))), logits.shape[1]);
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits, -1), target), -1));
    const count = tf.sum(tf.cast(valid, 'float32'));
    // Like PyTorch, an all-ignored batch gives NaN (0 / 0).
    return tf.div(tf.sum(nll), count) as tf.Scalar;
  });
}
