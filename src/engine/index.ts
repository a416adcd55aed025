export { tf } from './tf.js';
export { stopGradient } from './ops.js';
export { setBackend, ensureBackend, getBackend, backendNames, backendEnvVar } from './backends.js';
export type { BackendName } from './backends.js';
export { setFusedKernels, fusedKernelsActive } from './fused/fused-op.js';
export { swiGlu } from './fused/swiglu.js';
