import { fusedAttention } from '../engine/fused/attention.js';
import { fusedRotary } from '../engine/fused/rotary.js';
import { tf } from '../engine/tf.js';
import { ShapeError } from '../errors.js';

/** float32's most negative finite value: transformers' mask fill (a finite value keeps fully masked rows NaN-free). */
export const MASK_MIN = -3.4028234663852886e38;

/**
 * Additive attention bias `[batch|1, 1, queryLen, pastLen + queryLen]`: 0 where a query may attend, MASK_MIN
 * elsewhere. Query i sits at cache position `pastLen + i` and sees keys up to it (causal), minus keys whose
 * `attentionMask` entry is 0 (padding). One combined mask, added once, as transformers' 4D masks are.
 */
export function causalAttentionBias(queryLen: number, pastLen: number, attentionMask?: tf.Tensor2D): tf.Tensor4D {
  return additiveBias(queryLen, pastLen, attentionMask, (query, key) => key <= query);
}

/**
 * The bias as one array filled in JavaScript: built per forward (per decoded token), where composing it from
 * ten small tensor ops cost more than the loop.
 */
function additiveBias(
  queryLen: number,
  pastLen: number,
  attentionMask: tf.Tensor2D | undefined,
  visible: (queryPos: number, keyPos: number) => boolean,
): tf.Tensor4D {
  const keyLen = pastLen + queryLen;
  const batch = attentionMask?.shape[0] ?? 1;
  if (attentionMask && attentionMask.shape[1] !== keyLen) {
    throw new RangeError(`attentionMask covers ${attentionMask.shape[1]} positions but attention spans ${keyLen} (past ${pastLen} + new ${queryLen}).`);
  }
  const keep = attentionMask?.dataSync();
  const bias = new Float32Array(batch * queryLen * keyLen);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queryLen; i++) {
      const row = (b * queryLen + i) * keyLen;
      for (let j = 0; j < keyLen; j++) {
        if (!visible(pastLen + i, j) || (keep !== undefined && !keep[b * keyLen + j])) bias[row + j] = MASK_MIN;
      }
    }
  }
  return tf.tensor4d(bias, [batch, 1, queryLen, keyLen]);
}

/**
 * Additive attention bias of a bidirectional encoder (BERT, DistilBERT): `[batch|1, 1, 1, seqLen]`, 0 for keys
 * whose `attentionMask` entry is 1, MASK_MIN for padding keys, broadcast over heads and queries (transformers'
 * `create_bidirectional_mask`). Without a mask every key is visible (all zeros).
 */
export function bidirectionalAttentionBias(seqLen: number, attentionMask?: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    if (!attentionMask) return tf.zeros([1, 1, 1, seqLen]) as tf.Tensor4D;
    const [batch, maskLen] = attentionMask.shape;
    if (maskLen !== seqLen) {
      throw new ShapeError(`attentionMask covers ${maskLen} positions but the input has ${seqLen}.`);
    }
    const keep = tf.cast(tf.cast(attentionMask, 'bool'), 'float32').reshape([batch, 1, 1, seqLen]);
    return tf.mul(tf.sub(1, keep), MASK_MIN) as tf.Tensor4D;
  });
}

/**
 * softmax(q kᵀ * scale + bias) v over `[batch, heads, seq, headDim]` tensors, with optional dropout on the
 * attention weights (training only). Without dropout, where the backend has fused kernels, this is one kernel
 * each way and `bias` is taken as a constant (no gradient flows to it).
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
  scale: number,
  dropout?: (weights: tf.Tensor) => tf.Tensor,
): tf.Tensor4D {
  if (!dropout) {
    const fused = fusedAttention(q, k, v, bias, scale);
    if (fused) return fused as tf.Tensor4D;
  }
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

/**
 * {@link causalAttentionBias} restricted to a sliding window (Mistral, Qwen2's sliding layers): query i (cache
 * position `pastLen + i`) sees key j only if `j <= pastLen + i` and `j > pastLen + i - slidingWindow`, i.e. its
 * own position and the `slidingWindow - 1` before it (transformers' `sliding_window_overlay`:
 * `kv_idx > q_idx - sliding_window`). Positions are cache indices, padding included, as in transformers.
 */
export function slidingWindowCausalAttentionBias(
  queryLen: number,
  pastLen: number,
  slidingWindow: number,
  attentionMask?: tf.Tensor2D,
): tf.Tensor4D {
  return additiveBias(queryLen, pastLen, attentionMask, (query, key) => key <= query && key > query - slidingWindow);
}

/** transformers' `rotate_half`: `[x1, x2] -> [-x2, x1]` over the two halves of the last dimension. */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const half = x.shape[x.rank - 1]! / 2;
    const [x1, x2] = tf.split(x, [half, half], -1) as [tf.Tensor, tf.Tensor];
    return tf.concat([tf.neg(x2), x1], -1);
  });
}

/**
 * transformers' `apply_rotary_pos_emb` for one of q/k: `x * cos + rotate_half(x) * sin`, with x
 * `[batch, heads, seq, headDim]` and cos/sin `[batch|1, seq, headDim]` (broadcast over heads).
 */
export function applyRotaryPosEmb(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const c = tf.expandDims(cos, 1);
    const s = tf.expandDims(sin, 1);
    const fused = fusedRotary(x, c, s);
    if (fused) return fused as tf.Tensor4D;
    return tf.add(tf.mul(x, c), tf.mul(rotateHalf(x), s)) as tf.Tensor4D;
  });
}

/**
 * transformers' `repeat_kv` (grouped-query attention): `[batch, kvHeads, seq, headDim]` ->
 * `[batch, kvHeads * nRep, seq, headDim]`, each key/value head repeated `nRep` times in a row
 * (`repeat_interleave` on dim 1). Returns the input itself when `nRep` is 1.
 */
export function repeatKv(x: tf.Tensor4D, nRep: number): tf.Tensor4D {
  if (nRep === 1) return x;
  return tf.tidy(() => {
    const [batch, kvHeads, seq, headDim] = x.shape;
    // Rank-4 tile: TF.js has no tile gradient above rank 4.
    const tiled = tf.tile(tf.reshape(x, [batch, kvHeads, 1, seq * headDim]), [1, 1, nRep, 1]);
    return tf.reshape(tiled, [batch, kvHeads * nRep, seq, headDim]);
  });
}
