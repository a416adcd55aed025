// A LoRA-adapted Linear with a frozen base, y = x Wᵀ (+ b) + (s · x Aᵀ) Bᵀ, one graph each way (LoRA training's
// projections). Forward can also return h = x Aᵀ [N, r] for backward, which gives the gradients of x, A and B:
//   g = s · dy B ; dA = gᵀ x ; dB = s · dyᵀ h ; dx = dy W + g A
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { defineKernel } from '../define.js';
import { floatValue, msDomains } from '../graph-util.js';
import { fusedMatMul } from './graph-parts.js';

const scaleNode = (scale: number) => ({ opType: 'Constant', inputs: [], outputs: ['s'], attributes: { value_float: { float: scale } } });

const forward = defineKernel('PeftTsLoraLinear', (backend, _inputs, attrs, named) => {
  const { x, w, b, a, bb } = named as Record<string, TensorInfo | undefined>;
  const scale = attrs['scale'] as number;
  const withHidden = attrs['withHidden'] === true;
  const hasBias = b !== undefined;
  const rows = x!.shape[0]!;
  return backend.runGraph(
    `PeftTsLoraLinear:${scale}:${+hasBias}:${+withHidden}`,
    () => ({
      graph: {
        name: 'lora_linear',
        nodes: [
          fusedMatMul('x', 'w', hasBias ? 'xw' : 'base', { transB: 1 }),
          ...(hasBias ? [{ opType: 'Add', inputs: ['xw', 'b'], outputs: ['base'] }] : []),
          fusedMatMul('x', 'a', 'h', { transB: 1 }),
          scaleNode(scale),
          { opType: 'Mul', inputs: ['h', 's'], outputs: ['hs'] },
          fusedMatMul('hs', 'bb', 'low', { transB: 1 }),
          { opType: 'Add', inputs: ['base', 'low'], outputs: ['y'] },
        ],
        inputs: [floatValue('x', 2), floatValue('w', 2), ...(hasBias ? [floatValue('b', 1)] : []), floatValue('a', 2), floatValue('bb', 2)],
        outputs: [floatValue('y', 2), ...(withHidden ? [floatValue('h', 2)] : [])],
      },
      options: msDomains,
    }),
    [x!, w!, ...(hasBias ? [b!] : []), a!, bb!],
    [{ shape: [rows, w!.shape[0]!] }, ...(withHidden ? [{ shape: [rows, a!.shape[0]!] }] : [])],
  );
});

const backward = defineKernel('PeftTsLoraLinearGrad', (backend, _inputs, attrs, named) => {
  const { dy, x, h, w, a, bb } = named as Record<string, TensorInfo>;
  const scale = attrs['scale'] as number;
  return backend.runGraph(
    `PeftTsLoraLinearGrad:${scale}`,
    () => ({
      graph: {
        name: 'lora_linear_grad',
        nodes: [
          fusedMatMul('dy', 'bb', 'g', { alpha: scale }),
          fusedMatMul('g', 'x', 'da', { transA: 1 }),
          fusedMatMul('dy', 'h', 'db', { transA: 1, alpha: scale }),
          { opType: 'MatMul', inputs: ['dy', 'w'], outputs: ['dx_base'] },
          { opType: 'MatMul', inputs: ['g', 'a'], outputs: ['dx_low'] },
          { opType: 'Add', inputs: ['dx_base', 'dx_low'], outputs: ['dx'] },
        ],
        inputs: ['dy', 'x', 'h', 'w', 'a', 'bb'].map((n) => floatValue(n, 2)),
        outputs: [floatValue('dx', 2), floatValue('da', 2), floatValue('db', 2)],
      },
      options: msDomains,
    }),
    [dy!, x!, h!, w!, a!, bb!],
    [{ shape: x!.shape }, { shape: a!.shape }, { shape: bb!.shape }],
  );
});

export const loraLinearKernels: readonly KernelConfig[] = [forward, backward];
