import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

/**
 * Fused rotary position embedding `x * cos + rotate_half(x) * sin`, x `[batch, heads, seq, headDim]`, cos/sin
 * broadcast to it (`[batch|1, 1, seq, headDim]`). Returns undefined when fused kernels are off or dtypes are not
 * float32 (the caller composes TF.js ops). Gradients flow to x only: cos/sin are constants.
 */
export function fusedRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor | undefined {
  if (!fusedKernelsActive() || [x, cos, sin].some((t) => t.dtype !== 'float32') || x.shape[x.rank - 1]! % 2 !== 0) return undefined;
  // cos/sin at x's rank, broadcasting to x without widening it.
  const fits = (t: tf.Tensor): boolean => t.rank === x.rank && t.shape.every((d, i) => d === 1 || d === x.shape[i]);
  if (x.size === 0 || !fits(cos) || !fits(sin)) return undefined;
  if (!recordingGradients()) return runFusedKernel('PeftTsRotary', { x, cos, sin })[0]!;
  const f = tf.customGrad((xi, save) => {
    // Saved (kept) rather than closed over: the caller's tidy disposes cos/sin before backprop.
    (save as tf.GradSaveFunc)([cos, sin]);
    const [y] = runFusedKernel('PeftTsRotary', { x: xi as tf.Tensor, cos, sin });
    return {
      value: y!,
      gradFunc: (dy, saved) => {
        const [c, s] = saved as [tf.Tensor, tf.Tensor];
        return runFusedKernel('PeftTsRotaryGrad', { dy: dy as tf.Tensor, cos: c, sin: s })[0]!;
      },
    };
  });
  return f(x);
}
