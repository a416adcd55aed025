import { tf } from '../tf.js';
import { tooLittleWorkForOrt } from '../onnx/kernels/define.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

/**
 * `x Wᵀ + b + (scale · x Aᵀ) Bᵀ` — a LoRA adapter on a Linear whose own weight and bias do not train — as one
 * kernel each way; gradients flow to x, A `[r, in]` and B `[out, r]`. Undefined where the backend has no fused
 * kernels, a tensor is not float32, the product is small, or the base would need a gradient (a tape records and W
 * or b is trainable).
 */
export function fusedLoraLinear(x: tf.Tensor, base: { weight: tf.Variable; bias: tf.Variable | null }, a: tf.Tensor, b: tf.Tensor, scale: number): tf.Tensor | undefined {
  const inFeatures = base.weight.shape[1]!;
  if (!fusedKernelsActive() || x.size === 0 || x.shape[x.rank - 1] !== inFeatures) return undefined;
  // Where the base product alone would stay in JavaScript, so does the layer: its output then equals the base
  // layer's bit for bit while B is zero (a fresh adapter is an identity, as in PEFT).
  if (tooLittleWorkForOrt(x.size * base.weight.shape[0]!)) return undefined;
  if ([x, base.weight, a, b, ...(base.bias ? [base.bias] : [])].some((t) => t.dtype !== 'float32')) return undefined;
  const tape = recordingGradients();
  if (tape && (base.weight.trainable || base.bias?.trainable)) return undefined;
  const constants = { w: base.weight, ...(base.bias ? { b: base.bias } : {}) };
  const outShape = [...x.shape.slice(0, -1), base.weight.shape[0]!];
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, inFeatures]);
    if (!tape) return tf.reshape(runFusedKernel('PeftTsLoraLinear', { x: x2, ...constants, a, bb: b }, { scale, withHidden: false })[0]!, outShape);
    const f = tf.customGrad((xi, ai, bi, save) => {
      const inputs = { x: xi as tf.Tensor, a: ai as tf.Tensor, bb: bi as tf.Tensor };
      const [y, h] = runFusedKernel('PeftTsLoraLinear', { ...inputs, ...constants }, { scale, withHidden: true });
      (save as tf.GradSaveFunc)([inputs.x, h!, inputs.a, inputs.bb]);
      return {
        value: y!,
        gradFunc: (dy, saved) => {
          const [xs, hs, as, bs] = saved as tf.Tensor[];
          return runFusedKernel('PeftTsLoraLinearGrad', { dy: dy as tf.Tensor, x: xs!, h: hs!, w: base.weight, a: as!, bb: bs! }, { scale });
        },
      };
    });
    return tf.reshape(f(x2, a, b), outShape);
  });
}
