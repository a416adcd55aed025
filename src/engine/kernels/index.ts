import type { KernelConfig } from '@tensorflow/tfjs';
import type { BackendName } from '../backends.js';
import { tf } from '../tf.js';
import {
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
} from './conv-backprop.js';
import { matMulConfigs } from './matmul.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';

/** Kernels tfjs-backend-wasm 4.22 lacks that training needs, implemented by peft-ts. */
const wasmGapKernels: readonly KernelConfig[] = [
  unsortedSegmentSumConfig,
  conv2DBackpropFilterConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
];

function findKernel(name: string, backend: string): KernelConfig | undefined {
  // tf.getKernel is typed as always returning a config but returns undefined for unknown kernels.
  const config: KernelConfig | undefined = tf.getKernel(name, backend);
  return config;
}

function registerWasmKernels(): void {
  for (const config of wasmGapKernels) {
    const existing = findKernel(config.kernelName, 'wasm');
    if (existing === undefined) tf.registerKernel(config);
  }
  const replacements = [...matMulConfigs((name) => findKernel(name, 'wasm'))];
  // TF.js's own Conv2DBackpropInput for wasm is a direct loop, 6-20x slower than the forward convolution.
  if (findKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc !== conv2DBackpropInputConfig.kernelFunc) {
    replacements.push(conv2DBackpropInputConfig);
  }
  for (const config of replacements) {
    if (findKernel(config.kernelName, 'wasm') !== undefined) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}

/**
 * The cpu backend greets its first tensor in Node with advice to install tfjs-node; peft-ts reports its own
 * backend choice (and which backends exist), so mark the greeting as given without muting TF.js's other
 * warnings (which `env().set('PROD', true)` would).
 */
function quietCpuGreeting(): void {
  if (typeof process === 'undefined' || typeof process.versions?.node !== 'string') return;
  if (!tf.engine().registryFactory['cpu']) return;
  const cpu = tf.findBackend('cpu') as (object & { firstUse?: boolean }) | null;
  if (cpu !== null && cpu.firstUse === true) cpu.firstUse = false;
}

/** Registers peft-ts kernels that fill gaps or route around slow paths in a backend. Idempotent. */
export function registerEngineKernels(backend: BackendName): void {
  if (backend === 'wasm') registerWasmKernels();
  quietCpuGreeting();
}
