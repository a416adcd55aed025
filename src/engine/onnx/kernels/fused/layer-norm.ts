// LayerNorm over the last dim of x [N, D] (callers flatten the normalised dims into one) and its gradient:
//   mu, r = mean(x), rsqrt(var(x) + eps) per row (biased variance), xhat = (x - mu) * r, y = xhat * w + b
//   g = dy * w
//   dx = r * (g - mean(g) - xhat * mean(g * xhat))
//   dw = sum over rows of dy * xhat, db = sum over rows of dy
// Forward also returns mu and r [N, 1] for backward to reuse. Weight and bias are each optional.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode, OnnxValueInfo } from '../../proto.js';
import { OnnxDataType, int64Tensor } from '../../proto.js';
import { defineKernel } from '../define.js';
import { onesLikeLastDim } from './rms-norm.js';

const F = OnnxDataType.float;
const rows = (name: string): OnnxValueInfo => ({ name, elemType: F, shape: ['N', 'D'] });
const perRow = (name: string): OnnxValueInfo => ({ name, elemType: F, shape: ['N', 1] });
const perCol = (name: string): OnnxValueInfo => ({ name, elemType: F, shape: ['D'] });

/** Splits the kernel's inputs after x (or after dy, x, mean, rstd) into weight and bias by the attributes. */
function affine(rest: TensorInfo[], hasWeight: boolean, hasBias: boolean): { w?: TensorInfo; b?: TensorInfo } {
  return { w: hasWeight ? rest[0] : undefined, b: hasBias ? rest[hasWeight ? 1 : 0] : undefined };
}

const forward = defineKernel('PeftTsLayerNorm', (backend, inputs, attrs) => {
  const eps = attrs['eps'] as number;
  const hasWeight = attrs['hasWeight'] === true;
  const hasBias = attrs['hasBias'] === true;
  const [x, ...rest] = inputs as [TensorInfo, ...TensorInfo[]];
  const { w, b } = affine(rest, hasWeight, hasBias);
  const feeds = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return backend.runGraph(
    `PeftTsLayerNorm:${eps}:${hasWeight}:${hasBias}`,
    () => ({
      graph: {
        name: 'layer_norm',
        nodes: [
          ...(hasWeight ? [] : onesLikeLastDim('x', 'w')),
          {
            opType: 'LayerNormalization',
            inputs: hasBias ? ['x', 'w', 'b'] : ['x', 'w'],
            outputs: ['y', 'mean', 'r'],
            attributes: { axis: -1, epsilon: { float: eps } },
          },
        ],
        inputs: [rows('x'), ...(hasWeight ? [perCol('w')] : []), ...(hasBias ? [perCol('b')] : [])],
        outputs: [rows('y'), perRow('mean'), perRow('r')],
      },
    }),
    feeds,
    [{ shape: x.shape }, { shape: [x.shape[0]!, 1] }, { shape: [x.shape[0]!, 1] }],
  );
});

const backward = defineKernel('PeftTsLayerNormGrad', (backend, inputs, attrs) => {
  const hasWeight = attrs['hasWeight'] === true;
  const hasBias = attrs['hasBias'] === true;
  const [dy, x, mean, r, ...rest] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]];
  const { w } = affine(rest, hasWeight, false);
  const g = hasWeight ? 'g' : 'dy';
  const rowMean = (input: string, output: string): OnnxNode => ({
    opType: 'ReduceMean',
    inputs: [input],
    outputs: [output],
    attributes: { axes: [-1], keepdims: 1 },
  });
  const colSum = (input: string, output: string): OnnxNode => ({
    opType: 'ReduceSum',
    inputs: [input, 'axis0'],
    outputs: [output],
    attributes: { keepdims: 0 },
  });
  return backend.runGraph(
    `PeftTsLayerNormGrad:${hasWeight}:${hasBias}`,
    () => ({
      graph: {
        name: 'layer_norm_grad',
        nodes: [
          { opType: 'Sub', inputs: ['x', 'mean'], outputs: ['xc'] },
          { opType: 'Mul', inputs: ['xc', 'r'], outputs: ['xhat'] },
          ...(hasWeight ? [{ opType: 'Mul', inputs: ['dy', 'w'], outputs: ['g'] }] : []),
          rowMean(g, 'mg'),
          { opType: 'Mul', inputs: [g, 'xhat'], outputs: ['gxhat'] },
          rowMean('gxhat', 'mgx'),
          { opType: 'Mul', inputs: ['xhat', 'mgx'], outputs: ['t'] },
          { opType: 'Sub', inputs: [g, 'mg'], outputs: ['u'] },
          { opType: 'Sub', inputs: ['u', 't'], outputs: ['v'] },
          { opType: 'Mul', inputs: ['v', 'r'], outputs: ['dx'] },
          ...(hasWeight ? [{ opType: 'Mul', inputs: ['dy', 'xhat'], outputs: ['dy_xhat'] }, colSum('dy_xhat', 'dw')] : []),
          ...(hasBias ? [colSum('dy', 'db')] : []),
        ],
        inputs: [rows('dy'), rows('x'), perRow('mean'), perRow('r'), ...(hasWeight ? [perCol('w')] : [])],
        outputs: [rows('dx'), ...(hasWeight ? [perCol('dw')] : []), ...(hasBias ? [perCol('db')] : [])],
        initializers: hasWeight || hasBias ? [{ ...int64Tensor([0]), name: 'axis0' }] : [],
      },
    }),
    [dy, x, mean, r, ...(w ? [w] : [])],
    [{ shape: x.shape }, ...(hasWeight ? [{ shape: [x.shape[1]!] }] : []), ...(hasBias ? [{ shape: [x.shape[1]!] }] : [])],
  );
});

export const layerNormKernels: readonly KernelConfig[] = [forward, backward];
