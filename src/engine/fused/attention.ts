import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

function fusable(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor): boolean {
  if (!fusedKernelsActive() || [q, k, v, bias].some((t) => t.dtype !== 'float32' || t.size === 0)) return false;
  const r = q.rank;
  if (r < 3 || k.rank !== r || v.rank !== r || bias.rank > r || !tf.util.arraysEqual(k.shape, v.shape)) return false;
  if (!tf.util.arraysEqual(q.shape.slice(0, -2), k.shape.slice(0, -2)) || q.shape[r - 1] !== k.shape[r - 1]) return false;
  // The bias broadcasts to the scores, never widens them.
  const scores = [...q.shape.slice(0, -1), k.shape[r - 2]!];
  return bias.shape.every((d, i) => d === 1 || d === scores[i + r - bias.rank]);
}

/**
 * Fused `softmax(q kᵀ * scale + bias) v` over `[batch, heads, seq, headDim]` q/k/v (k and v already repeated
 * for grouped-query attention); `bias` is an additive mask broadcast to the `[batch, heads, qLen, kLen]` scores.
 * Returns undefined when fused kernels are off or the inputs do not fit (the caller composes TF.js ops).
 * Gradients flow to q, k and v only: `bias` is a constant.
 */
export function fusedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, scale: number): tf.Tensor | undefined {
  if (!fusable(q, k, v, bias)) return undefined;
  // Off the gradient tape nothing reads the probabilities: a graph that does not write them out.
  if (!recordingGradients()) return runFusedKernel('PeftTsAttention', { q, k, v, bias }, { scale, withProbs: false })[0]!;
  const f = tf.customGrad((qi, ki, vi, save) => {
    const [out, probs] = runFusedKernel('PeftTsAttention', { q: qi as tf.Tensor, k: ki as tf.Tensor, v: vi as tf.Tensor, bias }, { scale, withProbs: true });
    (save as tf.GradSaveFunc)([out!, probs!, qi as tf.Tensor, ki as tf.Tensor, vi as tf.Tensor]);
    return {
      value: out!,
      gradFunc: (dy, saved) => {
        const [o, p, qs, ks, vs] = saved as tf.Tensor[];
        const [dq, dk, dv] = runFusedKernel('PeftTsAttentionGrad', { dy: dy as tf.Tensor, out: o!, probs: p!, q: qs!, k: ks!, v: vs! }, { scale });
        return [dq!, dk!, dv!];
      },
    };
  });
  return f(q, k, v);
}
