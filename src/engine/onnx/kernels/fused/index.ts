import type { KernelConfig } from '@tensorflow/tfjs';
import { attentionKernels } from './attention.js';
import { crossEntropyKernels } from './cross-entropy.js';
import { decoderStackKernels } from './decoder-stack.js';
import { selfAttentionKernels } from './self-attention.js';
import { frozenMlpKernels } from './mlp.js';
import { loraLinearKernels } from './lora-linear.js';
import { layerNormKernels } from './layer-norm.js';
import { rmsNormKernels } from './rms-norm.js';
import { rotaryKernels } from './rotary.js';
import { swiGluKernels } from './swiglu.js';

/** Kernels behind src/engine/fused (one ONNX graph forward, one backward). */
export const fusedKernels: readonly KernelConfig[] = [...swiGluKernels, ...crossEntropyKernels, ...rmsNormKernels, ...layerNormKernels, ...attentionKernels, ...rotaryKernels, ...decoderStackKernels, ...selfAttentionKernels, ...frozenMlpKernels, ...loraLinearKernels];
