import type { BackendName } from '../backends.js';

/** Registers peft-ts kernels that fill gaps or route around slow paths in a backend. Idempotent. */
export function registerEngineKernels(_backend: BackendName): void {}
