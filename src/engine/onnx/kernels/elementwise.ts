// Element-wise, reduction and softmax kernels as one-node (or few-node) ONNX graphs over float32. TF.js's cpu
// backend runs these as JavaScript loops, and broadcasting ones through per-element index arithmetic, which
// made them 90% of a training step once matmuls moved to ONNX Runtime.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../../tf.js';
import type { OnnxElemType, OnnxNode } from '../proto.js';
import { OnnxDataType, int64Tensor } from '../proto.js';
import type { OrtKernelFunc } from './define.js';
import { allFloat32, defineKernel, tooSmallForOrt } from './define.js';
import { floatValue, symbolicShape } from './graph-util.js';

const F = OnnxDataType.float;
const BOOL = OnnxDataType.bool;

/** A graph of `nodes` from inputs x0..xn-1 to output y. */
function runNodes(
  backend: Parameters<OrtKernelFunc>[0],
  key: string,
  inputs: readonly TensorInfo[],
  outShape: number[],
  nodes: () => OnnxNode[],
  outType: { elem: OnnxElemType; dtype: 'float32' | 'bool' } = { elem: F, dtype: 'float32' },
  initializers: () => ReturnType<typeof int64Tensor>[] = () => [],
): TensorInfo {
  const fullKey = `${key}|${inputs.map((t) => t.shape.length).join(',')}`;
  if (tf.util.sizeFromShape(outShape) === 0) return backend.makeTensorInfo([...outShape], outType.dtype, outType.dtype === 'bool' ? new Uint8Array(0) : new Float32Array(0));
  const [y] = backend.runGraph(
    fullKey,
    () => ({
      graph: {
        name: key,
        nodes: nodes(),
        initializers: initializers(),
        inputs: inputs.map((t, i) => (floatValue(`x${i}`, t.shape.length))),
        outputs: [{ name: 'y', elemType: outType.elem, shape: symbolicShape('y', outShape.length) }],
      },
    }),
    inputs,
    [{ shape: outShape, dtype: outType.dtype }],
  );
  return y!;
}

function unary(kernelName: string, nodes: (attrs: Record<string, unknown>) => OnnxNode[], attrKey: (attrs: Record<string, unknown>) => string = () => ''): KernelConfig {
  return defineKernel(kernelName, (backend, inputs, attrs) => {
    if (!allFloat32(inputs) || tooSmallForOrt(inputs[0]!.shape)) return undefined;
    const [x] = inputs as [TensorInfo];
    return runNodes(backend, `${kernelName}:${attrKey(attrs)}`, [x], x.shape, () => nodes(attrs));
  });
}

const one = (opType: string, attributes?: OnnxNode['attributes']): OnnxNode[] => [{ opType, inputs: ['x0'], outputs: ['y'], attributes }];

function binary(kernelName: string, nodes: OnnxNode[], outType?: { elem: OnnxElemType; dtype: 'float32' | 'bool' }): KernelConfig {
  return defineKernel(kernelName, (backend, inputs) => {
    if (!allFloat32(inputs)) return undefined;
    const [a, b] = inputs as [TensorInfo, TensorInfo];
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    if (tooSmallForOrt(outShape)) return undefined;
    return runNodes(backend, kernelName, [a, b], outShape, () => nodes, outType);
  });
}

const two = (opType: string): OnnxNode[] => [{ opType, inputs: ['x0', 'x1'], outputs: ['y'] }];
const boolOut = { elem: BOOL, dtype: 'bool' } as const;

const binaryKernels: KernelConfig[] = [
  binary('Add', two('Add')),
  binary('Sub', two('Sub')),
  binary('Multiply', two('Mul')),
  binary('RealDiv', two('Div')),
  binary('Maximum', two('Max')),
  binary('Minimum', two('Min')),
  binary('Pow', two('Pow')),
  binary('Prelu', two('PRelu')),
  binary('SquaredDifference', [
    { opType: 'Sub', inputs: ['x0', 'x1'], outputs: ['d'] },
    { opType: 'Mul', inputs: ['d', 'd'], outputs: ['y'] },
  ]),
  binary('Less', two('Less'), boolOut),
  binary('LessEqual', two('LessOrEqual'), boolOut),
  binary('Greater', two('Greater'), boolOut),
  binary('GreaterEqual', two('GreaterOrEqual'), boolOut),
  binary('Equal', two('Equal'), boolOut),
  binary('NotEqual', [
    { opType: 'Equal', inputs: ['x0', 'x1'], outputs: ['e'] },
    { opType: 'Not', inputs: ['e'], outputs: ['y'] },
  ], boolOut),
];

const unaryKernels: KernelConfig[] = [
  ...(['Exp', 'Log', 'Neg', 'Sqrt', 'Abs', 'Sigmoid', 'Tanh', 'Relu', 'Erf', 'Cos', 'Sin', 'Reciprocal', 'Floor', 'Ceil', 'Sign', 'Elu', 'Selu', 'Softplus'] as const).map((name) =>
    unary(name, () => one(name)),
  ),
  unary('Round', () => one('Round')),
  unary('Rsqrt', () => [
    { opType: 'Sqrt', inputs: ['x0'], outputs: ['s'] },
    { opType: 'Reciprocal', inputs: ['s'], outputs: ['y'] },
  ]),
  unary('Square', () => [{ opType: 'Mul', inputs: ['x0', 'x0'], outputs: ['y'] }]),
  unary('LeakyRelu', (a) => one('LeakyRelu', { alpha: { float: a['alpha'] as number } }), (a) => String(a['alpha'])),
  unary(
    'ClipByValue',
    (a) => [
      { opType: 'Constant', inputs: [], outputs: ['lo'], attributes: { value_float: { float: a['clipValueMin'] as number } } },
      { opType: 'Constant', inputs: [], outputs: ['hi'], attributes: { value_float: { float: a['clipValueMax'] as number } } },
      { opType: 'Clip', inputs: ['x0', 'lo', 'hi'], outputs: ['y'] },
    ],
    (a) => `${a['clipValueMin']},${a['clipValueMax']}`,
  ),
];

/** AddN: the sum of same-shape tensors (gradient accumulation). */
const addN = defineKernel('AddN', (backend, inputs) => {
  if (!allFloat32(inputs) || inputs.length < 2 || tooSmallForOrt(inputs[0]!.shape)) return undefined;
  return runNodes(backend, `AddN:${inputs.length}`, inputs, inputs[0]!.shape, () => [
    { opType: 'Sum', inputs: inputs.map((_, i) => `x${i}`), outputs: ['y'] },
  ]);
});

/** Softmax over one axis (TF.js always passes the last). */
const softmax = defineKernel('Softmax', (backend, inputs, attrs) => {
  if (!allFloat32(inputs) || tooSmallForOrt(inputs[0]!.shape)) return undefined;
  const [x] = inputs as [TensorInfo];
  const dim = attrs['dim'] as number;
  const axis = dim < 0 ? dim + x.shape.length : dim;
  return runNodes(backend, `Softmax:${axis}`, [x], x.shape, () => one('Softmax', { axis }));
});

function reduction(kernelName: string, onnxOp: string, axisAttr: string): KernelConfig {
  return defineKernel(kernelName, (backend, inputs, attrs) => {
    if (!allFloat32(inputs) || tooSmallForOrt(inputs[0]!.shape)) return undefined;
    const [x] = inputs as [TensorInfo];
    const axes = tf.util.parseAxisParam(attrs[axisAttr] as number | number[], x.shape);
    const keepDims = attrs['keepDims'] as boolean;
    if (axes.length === 0) return undefined;
    const outShape = x.shape.flatMap((d, i) => (axes.includes(i) ? (keepDims ? [1] : []) : [d]));
    const axesInput = onnxOp === 'ReduceSum';
    // ONNX Runtime's ReduceMax / ReduceMin may skip a NaN (its SIMD max along the innermost axis); TF.js's
    // propagate it. NaN goes wherever the reduced slice held one (checked on uint8 flags: ~3x a bare ReduceMax
    // along the last axis, a float Where-and-sum was ~25x).
    const propagateNaN = onnxOp === 'ReduceMax' || onnxOp === 'ReduceMin';
    return runNodes(
      backend,
      `${kernelName}:${axes.join(',')}:${+keepDims}`,
      [x],
      outShape,
      () => [
        {
          opType: onnxOp,
          inputs: axesInput ? ['x0', 'axes'] : ['x0'],
          outputs: [propagateNaN ? 'r' : 'y'],
          attributes: axesInput ? { keepdims: +keepDims } : ({ axes, keepdims: +keepDims } as OnnxNode['attributes']),
        },
        ...(propagateNaN
          ? [
              { opType: 'Constant', inputs: [], outputs: ['nan'], attributes: { value_float: { float: NaN } } },
              { opType: 'IsNaN', inputs: ['x0'], outputs: ['isnan'] },
              { opType: 'Cast', inputs: ['isnan'], outputs: ['isnan8'], attributes: { to: OnnxDataType.uint8 } },
              { opType: 'ReduceMax', inputs: ['isnan8'], outputs: ['anynan8'], attributes: { axes, keepdims: +keepDims } as OnnxNode['attributes'] },
              { opType: 'Cast', inputs: ['anynan8'], outputs: ['anynan'], attributes: { to: OnnxDataType.bool } },
              { opType: 'Where', inputs: ['anynan', 'nan', 'r'], outputs: ['y'] },
            ]
          : []),
      ],
      undefined,
      () => (axesInput ? [{ ...int64Tensor(axes), name: 'axes' }] : []),
    );
  });
}

const reductionKernels: KernelConfig[] = [
  reduction('Sum', 'ReduceSum', 'axis'),
  reduction('Mean', 'ReduceMean', 'axis'),
  reduction('Max', 'ReduceMax', 'reductionIndices'),
  reduction('Min', 'ReduceMin', 'axis'),
  reduction('Prod', 'ReduceProd', 'axis'),
];

export const elementwiseKernels: readonly KernelConfig[] = [...binaryKernels, ...unaryKernels, addN, softmax, ...reductionKernels];
