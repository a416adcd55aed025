// RMSNorm over the last dim of x [N, D] (callers flatten leading dims) and its gradient:
//   r = rsqrt(mean(x^2) + eps) per row, y = x * r * w
//   g = dy * w
//   dx = r * g - x * r^3 * mean(g * x)
//   dw = sum over rows of dy * x * r
// Forward also returns r [N, 1] for backward to reuse. Without a weight, w = 1 and there is no dw.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode } from '../../proto.js';
import { OnnxDataType, floatTensor, int64Tensor } from '../../proto.js';
import { defineKernel } from '../define.js';

const F = OnnxDataType.float;
const rows = (name: string) => ({ name, elemType: F, shape: ['N', 'D'] });
const perRow = (name: string) => ({ name, elemType: F, shape: ['N', 1] });
const perCol = (name: string) => ({ name, elemType: F, shape: ['D'] });

/** Nodes making `ones` [D] from x [N, D]: for the ops below whose scale input is not optional. */
export function onesLikeLastDim(x: string, out: string): OnnxNode[] {
  return [
    { opType: 'Shape', inputs: [x], outputs: [`${out}_shape`], attributes: { start: -1 } },
    { opType: 'ConstantOfShape', inputs: [`${out}_shape`], outputs: [out], attributes: { value: floatTensor([1], [1]) } },
  ];
}

const forward = defineKernel('PeftTsRmsNorm', (backend, inputs, attrs) => {
  const [x, w] = inputs as [TensorInfo, TensorInfo | undefined];
  const eps = attrs['eps'] as number;
  const hasWeight = w !== undefined;
  return backend.runGraph(
    `PeftTsRmsNorm:${eps}:${hasWeight}`,
    () => ({
      graph: {
        name: 'rms_norm',
        nodes: [
          ...(hasWeight ? [] : onesLikeLastDim('x', 'w')),
          // ONNX Runtime's contrib op (registered in the default domain): one pass per row.
          {
            opType: 'SimplifiedLayerNormalization',
            inputs: ['x', 'w'],
            outputs: ['y', 'r'],
            attributes: { axis: -1, epsilon: { float: eps } },
          },
        ],
        inputs: hasWeight ? [rows('x'), perCol('w')] : [rows('x')],
        outputs: [rows('y'), perRow('r')],
      },
    }),
    hasWeight ? [x, w] : [x],
    [{ shape: x.shape }, { shape: [x.shape[0]!, 1] }],
  );
});

const weightGrad: OnnxNode[] = [
  { opType: 'Mul', inputs: ['x', 'r'], outputs: ['xn'] },
  { opType: 'Mul', inputs: ['dy', 'xn'], outputs: ['dy_xn'] },
  { opType: 'ReduceSum', inputs: ['dy_xn', 'axis0'], outputs: ['dw'], attributes: { keepdims: 0 } },
];

const backward = defineKernel('PeftTsRmsNormGrad', (backend, inputs) => {
  const [dy, x, r, w] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo | undefined];
  const hasWeight = w !== undefined;
  const g = hasWeight ? 'g' : 'dy';
  return backend.runGraph(
    `PeftTsRmsNormGrad:${hasWeight}`,
    () => ({
      graph: {
        name: 'rms_norm_grad',
        nodes: [
          ...(hasWeight ? [{ opType: 'Mul', inputs: ['dy', 'w'], outputs: ['g'] }] : []),
          { opType: 'Mul', inputs: [g, 'x'], outputs: ['gx'] },
          { opType: 'ReduceMean', inputs: ['gx'], outputs: ['m'], attributes: { axes: [-1], keepdims: 1 } },
          // Per-row factors first ([N, 1]), so the full-size passes are few.
          { opType: 'Mul', inputs: ['r', 'r'], outputs: ['r2'] },
          { opType: 'Mul', inputs: ['r2', 'r'], outputs: ['r3'] },
          { opType: 'Mul', inputs: ['r3', 'm'], outputs: ['c'] },
          { opType: 'Mul', inputs: [g, 'r'], outputs: ['gr'] },
          { opType: 'Mul', inputs: ['x', 'c'], outputs: ['xc'] },
          { opType: 'Sub', inputs: ['gr', 'xc'], outputs: ['dx'] },
          ...(hasWeight ? weightGrad : []),
        ],
        inputs: hasWeight ? [rows('dy'), rows('x'), perRow('r'), perCol('w')] : [rows('dy'), rows('x'), perRow('r')],
        outputs: hasWeight ? [rows('dx'), perCol('dw')] : [rows('dx')],
        initializers: hasWeight ? [{ ...int64Tensor([0]), name: 'axis0' }] : [],
      },
    }),
    hasWeight ? [dy, x, r, w] : [dy, x, r],
    hasWeight ? [{ shape: x.shape }, { shape: [x.shape[1]!] }] : [{ shape: x.shape }],
  );
});

export const rmsNormKernels: readonly KernelConfig[] = [forward, backward];
