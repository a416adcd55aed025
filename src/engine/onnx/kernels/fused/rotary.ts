// Rotary position embedding y = x * cos + R(x) * sin, R = rotate_half: [x1, x2] -> [-x2, x1] on the last axis.
// R is linear with Rᵀ = -R, so dx = dy * cos - R(dy * sin), and -R([t1, t2]) = [t2, -t1].
// cos/sin arrive broadcastable to x at x's rank.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { defineKernel } from '../define.js';
import { floatValue } from '../graph-util.js';


const forward = defineKernel('PeftTsRotary', (backend, inputs) => {
  const [x, cos, sin] = inputs as [TensorInfo, TensorInfo, TensorInfo];
  const rank = x.shape.length;
  return backend.runGraph(
    `PeftTsRotary:${rank}`,
    () => ({
      graph: {
        name: 'rotary',
        nodes: [
          { opType: 'Split', inputs: ['x'], outputs: ['x1', 'x2'], attributes: { axis: -1 } },
          { opType: 'Neg', inputs: ['x2'], outputs: ['neg_x2'] },
          { opType: 'Concat', inputs: ['neg_x2', 'x1'], outputs: ['rx'], attributes: { axis: -1 } },
          { opType: 'Mul', inputs: ['x', 'cos'], outputs: ['xc'] },
          { opType: 'Mul', inputs: ['rx', 'sin'], outputs: ['rs'] },
          { opType: 'Add', inputs: ['xc', 'rs'], outputs: ['y'] },
        ],
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
        nodes: [
          { opType: 'Mul', inputs: ['dy', 'sin'], outputs: ['t'] },
          { opType: 'Split', inputs: ['t'], outputs: ['t1', 't2'], attributes: { axis: -1 } },
          { opType: 'Neg', inputs: ['t1'], outputs: ['neg_t1'] },
          { opType: 'Concat', inputs: ['t2', 'neg_t1'], outputs: ['rt'], attributes: { axis: -1 } },
          { opType: 'Mul', inputs: ['dy', 'cos'], outputs: ['dc'] },
          { opType: 'Add', inputs: ['dc', 'rt'], outputs: ['dx'] },
        ],
        inputs: [floatValue('dy', rank), floatValue('cos', rank), floatValue('sin', rank)],
        outputs: [floatValue('dx', rank)],
      },
    }),
    [dy, cos, sin],
    [{ shape: dy.shape }],
  )[0];
});

export const rotaryKernels: readonly KernelConfig[] = [forward, backward];
