import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

// Kernels see x as [rows, dim]: reshapes are free on the cpu-based backend, and one graph serves every rank.
// Backward reuses the per-row rsqrt from forward instead of keeping the composite's intermediates on the tape.
// A customGrad closure is cheap, so one is made per call (it carries eps).
function withWeight(eps: number) {
  return tf.customGrad((x, w, save) => {
    const [y, r] = runFusedKernel('PeftTsRmsNorm', { x: x as tf.Tensor, weight: w as tf.Tensor }, { eps });
    (save as tf.GradSaveFunc)([x as tf.Tensor, r!, w as tf.Tensor]);
    return {
      value: y!,
      gradFunc: (dy, saved) => {
        const [xs, rs, ws] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const [dx, dw] = runFusedKernel('PeftTsRmsNormGrad', { dy: dy as tf.Tensor, x: xs, rstd: rs, weight: ws });
        return [dx!, dw!];
      },
    };
  });
}

function withoutWeight(eps: number) {
  return tf.customGrad((x, save) => {
    const [y, r] = runFusedKernel('PeftTsRmsNorm', { x: x as tf.Tensor }, { eps });
    (save as tf.GradSaveFunc)([x as tf.Tensor, r!]);
    return {
      value: y!,
      gradFunc: (dy, saved) => {
        const [xs, rs] = saved as [tf.Tensor, tf.Tensor];
        const [dx] = runFusedKernel('PeftTsRmsNormGrad', { dy: dy as tf.Tensor, x: xs, rstd: rs });
        return [dx!];
      },
    };
  });
}

/**
 * `weight * x * rsqrt(mean(x^2, -1) + eps)` as one fused kernel forward and one backward, or `null` where the
 * backend has no fused kernels or the inputs are not float32 with `weight` of shape [x.shape[-1]].
 */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor | null, eps: number): tf.Tensor | null {
  const dim = x.shape[x.rank - 1];
  if (!fusedKernelsActive() || x.dtype !== 'float32' || x.rank < 1 || dim === undefined || x.size === 0) return null;
  if (weight && (weight.dtype !== 'float32' || weight.rank !== 1 || weight.shape[0] !== dim)) return null;
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, dim]);
    if (!recordingGradients()) return tf.reshape(runFusedKernel('PeftTsRmsNorm', { x: x2, ...(weight ? { weight } : {}) }, { eps })[0]!, x.shape);
    return tf.reshape(weight ? withWeight(eps)(x2, weight) : withoutWeight(eps)(x2), x.shape);
  });
}
