// Conv2D and its two gradients as ONNX Runtime graphs. TF.js tensors are NHWC with [kh, kw, in, out] filters,
// ONNX's Conv is NCHW with [out, in, kh, kw]; the graphs transpose on the way in and out (inside ORT, fast).
//   Conv2D               Conv
//   Conv2DBackpropInput  ConvTranspose with the forward's pads and an output_padding that restores the exact input
//                        size (SAME padding and strides that do not divide it evenly leave a remainder)
//   Conv2DBackpropFilter a Conv over the batch: x as [in, N, H, W] "images", dy as [out, N, H', W'] "filters",
//                        stride = forward dilation and dilation = forward stride, which yields
//                        dW[i, o, j, l] = sum over n, h', w' of x[n, h'*s + j*d - pad, ...] * dy[n, h', w', o];
//                        the first kh x kw outputs are the filter gradient.
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../../tf.js';
import type { OnnxNode } from '../proto.js';
import { int64Tensor } from '../proto.js';
import { asOnnxRuntimeBackend } from '../backend.js';
import { floatValue } from './graph-util.js';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

interface ConvAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

type Shape4 = [number, number, number, number];

function convInfo(xShape: readonly number[], filterShape: readonly number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
}

const toNCHW = [0, 3, 1, 2];
const toNHWC = [0, 2, 3, 1];
/** [kh, kw, in, out] -> [out, in, kh, kw]. */
const filterToOIHW = [3, 2, 0, 1];

function transpose(input: string, output: string, perm: number[]): OnnxNode {
  return { opType: 'Transpose', inputs: [input], outputs: [output], attributes: { perm } };
}

function convAttributes(info: tf.backend_util.Conv2DInfo): Record<string, number[]> {
  const p = info.padInfo;
  return {
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: [p.top, p.left, p.bottom, p.right],
  };
}

function attrKey(info: tf.backend_util.Conv2DInfo, nchw: boolean): string {
  return JSON.stringify([convAttributes(info), nchw]);
}

const conv2D: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs;
  const ort = asOnnxRuntimeBackend(backend);
  const info = convInfo(x.shape, filter.shape, a);
  const nchw = a.dataFormat === 'NCHW';
  const key = `conv2d:${attrKey(info, nchw)}`;
  const [y] = ort.runGraph(
    key,
    () => ({
      graph: {
        name: 'conv2d',
        nodes: [
          ...(nchw ? [] : [transpose('x', 'xt', toNCHW)]),
          transpose('w', 'wt', filterToOIHW),
          { opType: 'Conv', inputs: [nchw ? 'x' : 'xt', 'wt'], outputs: [nchw ? 'y' : 'yt'], attributes: convAttributes(info) },
          ...(nchw ? [] : [transpose('yt', 'y', toNHWC)]),
        ],
        inputs: [
          floatValue('x', 4),
          floatValue('w', 4),
        ],
        outputs: [floatValue('y', 4)],
      },
    }),
    [x, filter],
    [{ shape: info.outShape }],
  );
  return y!;
};

const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { inputShape: Shape4 };
  const ort = asOnnxRuntimeBackend(backend);
  const info = convInfo(a.inputShape, filter.shape, a);
  const nchw = a.dataFormat === 'NCHW';
  const p = info.padInfo;
  const outputPadding = [
    info.inHeight - (info.strideHeight * (info.outHeight - 1) + info.effectiveFilterHeight - p.top - p.bottom),
    info.inWidth - (info.strideWidth * (info.outWidth - 1) + info.effectiveFilterWidth - p.left - p.right),
  ];
  const attributes = { ...convAttributes(info), output_padding: outputPadding };
  const key = `conv2d-dx:${JSON.stringify([attributes, nchw])}`;
  const [dx] = ort.runGraph(
    key,
    () => ({
      graph: {
        name: 'conv2d_backprop_input',
        nodes: [
          ...(nchw ? [] : [transpose('dy', 'dyt', toNCHW)]),
          transpose('w', 'wt', filterToOIHW),
          { opType: 'ConvTranspose', inputs: [nchw ? 'dy' : 'dyt', 'wt'], outputs: [nchw ? 'dx' : 'dxt'], attributes },
          ...(nchw ? [] : [transpose('dxt', 'dx', toNHWC)]),
        ],
        inputs: [
          floatValue('dy', 4),
          floatValue('w', 4),
        ],
        outputs: [floatValue('dx', 4)],
      },
    }),
    [dy, filter],
    [{ shape: a.inputShape }],
  );
  return dx!;
};

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: Shape4 };
  const ort = asOnnxRuntimeBackend(backend);
  const info = convInfo(x.shape, a.filterShape, a);
  const nchw = a.dataFormat === 'NCHW';
  const p = info.padInfo;
  const attributes = {
    strides: [info.dilationHeight, info.dilationWidth],
    dilations: [info.strideHeight, info.strideWidth],
    pads: [p.top, p.left, p.bottom, p.right],
  };
  const [kh, kw] = a.filterShape;
  const key = `conv2d-dw:${JSON.stringify([attributes, nchw, kh, kw])}`;
  // Channels to the front: NHWC -> [C, N, H, W]; NCHW -> [C, N, H, W].
  const toCNHW = nchw ? [1, 0, 2, 3] : [3, 0, 1, 2];
  const [dw] = ort.runGraph(
    key,
    () => ({
      graph: {
        name: 'conv2d_backprop_filter',
        nodes: [
          transpose('x', 'xc', toCNHW),
          transpose('dy', 'dyc', toCNHW),
          { opType: 'Conv', inputs: ['xc', 'dyc'], outputs: ['full'], attributes },
          { opType: 'Slice', inputs: ['full', 'starts', 'ends', 'axes'], outputs: ['cut'] },
          // [in, out, kh, kw] -> [kh, kw, in, out]
          transpose('cut', 'dw', [2, 3, 0, 1]),
        ],
        initializers: [
          { ...int64Tensor([0, 0]), name: 'starts' },
          { ...int64Tensor([kh, kw]), name: 'ends' },
          { ...int64Tensor([2, 3]), name: 'axes' },
        ],
        inputs: [
          floatValue('x', 4),
          floatValue('dy', 4),
        ],
        outputs: [floatValue('dw', 4)],
      },
    }),
    [x, dy],
    [{ shape: a.filterShape }],
  );
  return dw!;
};

export const convKernels: readonly KernelConfig[] = [
  { kernelName: 'Conv2D', backendName: 'onnxruntime', kernelFunc: conv2D },
  { kernelName: 'Conv2DBackpropInput', backendName: 'onnxruntime', kernelFunc: conv2DBackpropInput },
  { kernelName: 'Conv2DBackpropFilter', backendName: 'onnxruntime', kernelFunc: conv2DBackpropFilter },
];
