// Rotary position embedding y = x * cos + rotate_half(x) * sin and its gradient (graph-parts.ts), one graph each
// way; cos/sin arrive broadcastable to x at x's rank.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { defineKernel } from '../define.js';
import { floatValue } from '../graph-util.js';
import { rotary, rotaryGrad } from './graph-parts.js';


const forward = defineKernel('PeftTsRotary', (backend, inputs) => {
  const [x, cos, sin] = inputs as [TensorInfo, TensorInfo, TensorInfo];
  const rank = x.shape.length;
  return backend.runGraph(
    `PeftTsRotary:${rank}`,
    () => ({
      graph: {
        name: 'rotary',
        nodes: rotary('x', 'y', 'cos', 'sin'),
        inputs: [floatValue('x', rank), floatValue('cos', rank), floatValue('sin', rank)],
        outputs: [floatValue('y', rank)],
      },
    }),
    [x, cos, sin],
    [{ shape: x.shape }],
  )[0];
});

const backward = defineKernel('PeftTsRotaryGrad', (backend, inputs) => {
  const [dy, cos, sin] = inputs as [TensorInfo, TensorInfo, TensorInfo];
  const rank = dy.shape.length;
  return backend.runGraph(
    `PeftTsRotaryGrad:${rank}`,
    () => ({
      graph: {
        name: 'rotary_grad',
        nodes: rotaryGrad('dy', 'dx', 'cos', 'sin'),
        inputs: [floatValue('dy', rank), floatValue('cos', rank), floatValue('sin', rank)],
        outputs: [floatValue('dx', rank)],
      },
    }),
    [dy, cos, sin],
    [{ shape: dy.shape }],
  )[0];
});

export const rotaryKernels: readonly KernelConfig[] = [forward, backward];
