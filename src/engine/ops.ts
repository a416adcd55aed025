import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from './tf.js';

/** A copy of `x` through which no gradient flows (PyTorch's `.detach()`; TF.js has no stopGradient op). */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(inputs[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }));
  return f(x) as T;
}

/**
 * Whether the current backend keeps tensor data in the JavaScript arrays it was given (cpu, onnxruntime): then a
 * tensor made from an array sees later writes to it, which lets caches append in place.
 */
export function sharesTypedArrays(): boolean {
  return tf.backend() instanceof MathBackendCPU;
}
