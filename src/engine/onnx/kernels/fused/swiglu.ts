// silu(g) * u and its gradient:
//   s = sigmoid(g), y = g * s * u
//   dU = dy * g * s
//   dG = dy * u * s * (1 + g * (1 - s))
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { defineKernel } from '../define.js';
import { floatValue } from '../graph-util.js';
import { swiGluGrad } from './graph-parts.js';


const forward = defineKernel('PeftTsSwiGlu', (backend, inputs) => {
  const [gate, up] = inputs as [TensorInfo, TensorInfo];
  const rank = gate.shape.length;
  return backend.runGraph(
    `PeftTsSwiGlu:${rank}`,
    () => ({
      graph: {
        name: 'swiglu',
        nodes: [
          { opType: 'Sigmoid', inputs: ['g'], outputs: ['s'] },
          { opType: 'Mul', inputs: ['g', 's'], outputs: ['act'] },
          { opType: 'Mul', inputs: ['act', 'u'], outputs: ['y'] },
        ],
        inputs: [floatValue('g', rank), floatValue('u', rank)],
        outputs: [floatValue('y', rank)],
      },
    }),
    [gate, up],
    [{ shape: gate.shape }],
  )[0];
});

const backward = defineKernel('PeftTsSwiGluGrad', (backend, inputs) => {
  const [dy, gate, up] = inputs as [TensorInfo, TensorInfo, TensorInfo];
  const rank = gate.shape.length;
  return backend.runGraph(
    `PeftTsSwiGluGrad:${rank}`,
    () => ({
      graph: {
        name: 'swiglu_grad',
        nodes: swiGluGrad('dy', 'g', 'u', 'dg', 'du'),
        inputs: [floatValue('dy', rank), floatValue('g', rank), floatValue('u', rank)],
        outputs: [floatValue('dg', rank), floatValue('du', rank)],
      },
    }),
    [dy, gate, up],
    [{ shape: gate.shape }, { shape: gate.shape }],
  );
});

export const swiGluKernels: readonly KernelConfig[] = [forward, backward];
