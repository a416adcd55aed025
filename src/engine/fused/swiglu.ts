import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

function composite(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

const fused = tf.customGrad((gate, up, save) => {
  (save as tf.GradSaveFunc)([gate as tf.Tensor, up as tf.Tensor]);
  const [y] = runFusedKernel('PeftTsSwiGlu', { gate: gate as tf.Tensor, up: up as tf.Tensor });
  return {
    value: y!,
    gradFunc: (dy, saved) => {
      const [g, u] = saved as [tf.Tensor, tf.Tensor];
      const [dGate, dUp] = runFusedKernel('PeftTsSwiGluGrad', { dy: dy as tf.Tensor, gate: g, up: u });
      return [dGate!, dUp!];
    },
  };
});

/** `silu(gate) * up` (Llama-family MLPs), `gate` and `up` of one shape. */
export function swiGlu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (!fusedKernelsActive() || gate.dtype !== 'float32' || up.dtype !== 'float32' || !tf.util.arraysEqual(gate.shape, up.shape)) {
    return composite(gate, up);
  }
  if (!recordingGradients()) return runFusedKernel('PeftTsSwiGlu', { gate, up })[0]!;
  return fused(gate, up);
}
