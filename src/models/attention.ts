import { tf } from '../engine/tf.js';

/** float32's most negative finite value: transformers' mask fill (a finite value keeps fully masked rows NaN-free). */
export const MASK_MIN = -3.4028234663852886e38;

/**
 * Additive attention bias `[batch|1, 1, queryLen, pastLen + queryLen]`: 0 where a query may attend, MASK_MIN
 * elsewhere. Query i sits at cache position `pastLen + i` and sees keys up to it (causal), minus keys whose
 * `attentionMask` entry is 0 (padding). One combined mask, added once, as transformers' 4D masks are.
 */
export function causalAttentionBias(queryLen: number, pastLen: number, attentionMask?: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const keyLen = pastLen + queryLen;
    const queryPos = tf.add(tf.range(0, queryLen, 1, 'int32'), pastLen).reshape([queryLen, 1]);
    const keyPos = tf.range(0, keyLen, 1, 'int32').reshape([1, keyLen]);
    let allowed: tf.Tensor = tf.lessEqual(keyPos, queryPos).reshape([1, 1, queryLen, keyLen]);
    if (attentionMask) {
      const [batch, maskLen] = attentionMask.shape;
      if (maskLen !== keyLen) {
        throw new RangeError(`attentionMask covers ${maskLen} positions but attention spans ${keyLen} (past ${pastLen} + new ${queryLen}).`);
      }
      const keep = tf.cast(attentionMask, 'bool').reshape([batch, 1, 1, keyLen]);
      allowed = tf.logicalAnd(allowed, keep);
    }
    return tf.mul(tf.sub(1, tf.cast(allowed, 'float32')), MASK_MIN) as tf.Tensor4D;
  });
}

/**
 * softmax(q kᵀ * scale + bias) v over `[batch, heads, seq, headDim]` tensors, with optional dropout on the
 * attention weights (training only).
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
  scale: number,
  dropout?: (weights: tf.Tensor) => tf.Tensor,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), bias);
    let weights: tf.Tensor = tf.softmax(scores, -1);
    if (dropout) weights = dropout(weights);
    return tf.matMul(weights as tf.Tensor4D, v);
  });
}

/** `[batch, seq, heads*headDim]` -> `[batch, heads, seq, headDim]`. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
  const [batch, seq, width] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [batch, seq, heads, width / heads]), [0, 2, 1, 3]);
}

/** `[batch, heads, seq, headDim]` -> `[batch, seq, heads*headDim]`. */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [batch, heads, seq, headDim] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, seq, heads * headDim]);
}
