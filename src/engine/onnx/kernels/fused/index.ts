import type { KernelConfig } from '@tensorflow/tfjs';
import { swiGluKernels } from './swiglu.js';

/** Kernels behind src/engine/fused (one ONNX graph forward, one backward). */
export const fusedKernels: readonly KernelConfig[] = [...swiGluKernels];
