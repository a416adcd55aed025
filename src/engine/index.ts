export { tf } from './tf.js';
export { stopGradient } from './ops.js';
export { setBackend, ensureBackend, getBackend, backendNames, backendEnvVar } from './backends.js';
export type { BackendName } from './backends.js';
