import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

export interface FusedSelfAttentionSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Attention score scale (head_dim^-0.5). */
  scale: number;
}

/**
 * Rotary self-attention as one kernel each way: q `[B, S, heads*d]`, k and v `[B, S, kvHeads*d]` (the projections'
 * outputs) to the attended values `[B, S, heads*d]` (o_proj's input): heads split, rotary on q and k with cos/sin
 * `[B|1, S, d]`, grouped-query repetition, softmax(q kᵀ * scale + bias) v, heads merged. Gradients flow to q, k
 * and v; cos, sin and the additive `bias` `[B|1, 1, S, S]` are constants. Undefined where the backend has no
 * fused kernels or an input is not float32 (the caller composes the ops).
 */
export function fusedSelfAttention(
  spec: FusedSelfAttentionSpec,
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  cos: tf.Tensor,
  sin: tf.Tensor,
  bias: tf.Tensor4D,
): tf.Tensor3D | undefined {
  if (!fusedKernelsActive() || [q, k, v, cos, sin, bias].some((t) => t.dtype !== 'float32' || t.size === 0)) return undefined;
  const attrs = { ...spec };
  const constants = { cos, sin, bias };
  if (!recordingGradients()) return runFusedKernel('PeftTsSelfAttention', { q, k, v, ...constants }, attrs)[0] as tf.Tensor3D;
  const f = tf.customGrad((qi, ki, vi, save) => {
    const inputs = { q: qi as tf.Tensor, k: ki as tf.Tensor, v: vi as tf.Tensor };
    // Backward recomputes the forward: it needs the constants too, which the forward's scope frees.
    (save as tf.GradSaveFunc)([inputs.q, inputs.k, inputs.v, cos, sin, bias]);
    return {
      value: runFusedKernel('PeftTsSelfAttention', { ...inputs, ...constants }, attrs)[0]!,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, cs, ss, bs] = saved as tf.Tensor[];
        return runFusedKernel('PeftTsSelfAttentionGrad', { dy: dy as tf.Tensor, q: qs!, k: ks!, v: vs!, cos: cs!, sin: ss!, bias: bs! }, attrs);
      },
    };
  });
  return f(q, k, v) as tf.Tensor3D;
}
