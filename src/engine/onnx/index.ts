// Starting the "onnxruntime" backend (Node only): onnxruntime-node must load; threads default to the CPU count.
import { availableParallelism } from 'node:os';
import { BackendUnavailableError } from '../../errors.js';
import { registerOnnxRuntimeBackend } from './backend.js';
import { convKernels } from './kernels/conv.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { fusedKernels } from './kernels/fused/index.js';
import { matMulKernels } from './kernels/matmul.js';
import { shapeKernels } from './kernels/shape.js';
import { configureOrt } from './runtime.js';

export { onnxRuntimeBackendName } from './backend.js';

/** Environment variable overriding ONNX Runtime's threads per operator (`PEFT_TS_ORT_THREADS=1`). */
export const ortThreadsEnvVar = 'PEFT_TS_ORT_THREADS';

function threadsFromEnv(): number | undefined {
  const raw = process.env[ortThreadsEnvVar]?.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new BackendUnavailableError('onnxruntime', `${ortThreadsEnvVar}="${raw}" is not a positive integer.`);
  }
  return n;
}

/** Registers the backend and its kernels; the caller then selects it with tf.setBackend. */
export function prepareOnnxRuntime(): void {
  configureOrt({ threads: threadsFromEnv() ?? availableParallelism() });
  registerOnnxRuntimeBackend([...matMulKernels, ...convKernels, ...elementwiseKernels, ...shapeKernels, ...fusedKernels]);
}
