// Fused operations: one call for what models otherwise compose from many small TF.js ops. On the onnxruntime
// backend each runs as one ONNX graph forward and one backward (a TF.js custom gradient), which removes a
// kernel dispatch and an output copy per element-wise step and keeps fewer intermediates on the tape. On other
// backends (or when turned off) the same function composes TF.js ops, so results agree across backends.
import type { NamedAttrMap } from '@tensorflow/tfjs';
import { tf } from '../tf.js';

let enabled = true;

/** Turns fused kernels on or off (default on); returns the previous setting. For tests and benchmarks. */
export function setFusedKernels(on: boolean): boolean {
  const previous = enabled;
  enabled = on;
  return previous;
}

/** Whether the running backend has fused kernels (and they are on). */
export function fusedKernelsActive(): boolean {
  return enabled && tf.getKernel('PeftTsSwiGlu', tf.getBackend()) !== undefined;
}

/** Runs a fused kernel of the current backend. */
export function runFusedKernel(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs, attrs) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** Whether a gradient tape is recording: without one, fused ops run their forward kernel directly. */
export function recordingGradients(): boolean {
  return tf.engine().isTapeOn();
}
