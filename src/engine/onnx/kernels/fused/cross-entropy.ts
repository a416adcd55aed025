// Mean softmax cross-entropy of [n, V] logits against [n] int32 labels, and its gradient:
//   lse = logsumexp(x, 1), loss = sum(in * (lse - x[label])) / sum(label != -100)
//   dx = (exp(x - lse) - onehot(label)) * in * dloss / count
// where `in` marks labels in [0, V). That matches the composite in src/models/loss.ts exactly: -100 (and any
// other out-of-range label) picks no class, but only -100 is left out of the count. No valid row gives 0 / 0.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode, OnnxTensor } from '../../proto.js';
import { OnnxDataType, int64Tensor } from '../../proto.js';
import { defineKernel } from '../define.js';

const F = OnnxDataType.float;
const I32 = OnnxDataType.int32;
const ignoreIndex = -100;

const x = { name: 'x', elemType: F, shape: ['n', 'v'] };
const labels = { name: 'labels', elemType: I32, shape: ['n'] };
const lse = { name: 'lse', elemType: F, shape: ['n', 1] };

/** From `labels`: `idx` [n, 1] int64 (out-of-range clamped to 0), `in_f` [n, 1] (1 where in range), `count` (). */
const labelNodes: readonly OnnxNode[] = [
  { opType: 'Cast', inputs: ['labels'], outputs: ['l_flat'], attributes: { to: OnnxDataType.int64 } },
  { opType: 'Unsqueeze', inputs: ['l_flat', 'axis1'], outputs: ['l'] },
  { opType: 'Shape', inputs: ['x'], outputs: ['v'], attributes: { start: 1, end: 2 } },
  { opType: 'GreaterOrEqual', inputs: ['l', 'zero_i'], outputs: ['ge0'] },
  { opType: 'Less', inputs: ['l', 'v'], outputs: ['ltv'] },
  { opType: 'And', inputs: ['ge0', 'ltv'], outputs: ['in'] },
  { opType: 'Where', inputs: ['in', 'l', 'zero_i'], outputs: ['idx'] },
  { opType: 'Cast', inputs: ['in'], outputs: ['in_f'], attributes: { to: F } },
  { opType: 'Equal', inputs: ['l', 'ignore'], outputs: ['ignored'] },
  { opType: 'Not', inputs: ['ignored'], outputs: ['valid'] },
  { opType: 'Cast', inputs: ['valid'], outputs: ['valid_f'], attributes: { to: F } },
  { opType: 'ReduceSum', inputs: ['valid_f'], outputs: ['count'], attributes: { keepdims: 0 } },
];

const labelInitializers = (): OnnxTensor[] => [
  { ...int64Tensor([1]), name: 'axis1' },
  { ...int64Tensor([0], []), name: 'zero_i' },
  { ...int64Tensor([ignoreIndex], []), name: 'ignore' },
];

// No cpu kernel to fall back on: softmaxCrossEntropy casts before it gets here.
function checkDtypes(logits: TensorInfo, labelsInfo: TensorInfo): void {
  if (logits.dtype !== 'float32' || labelsInfo.dtype !== 'int32') {
    throw new TypeError(`PeftTsCrossEntropy needs float32 logits and int32 labels, got ${logits.dtype} and ${labelsInfo.dtype}`);
  }
}

const forward = defineKernel('PeftTsCrossEntropy', (backend, inputs) => {
  const [logits, labelsInfo] = inputs as [TensorInfo, TensorInfo];
  checkDtypes(logits, labelsInfo);
  const n = logits.shape[0]!;
  return backend.runGraph(
    'PeftTsCrossEntropy',
    () => ({
      graph: {
        name: 'cross_entropy',
        nodes: [
          ...labelNodes,
          // logsumexp by hand: ORT's ReduceLogSumExp is ~6x slower (scalar) at [1024, 8192]. The row max keeps
          // exp from overflowing.
          { opType: 'ReduceMax', inputs: ['x'], outputs: ['max'], attributes: { axes: [1], keepdims: 1 } },
          { opType: 'Sub', inputs: ['x', 'max'], outputs: ['centred'] },
          { opType: 'Exp', inputs: ['centred'], outputs: ['e'] },
          { opType: 'ReduceSum', inputs: ['e', 'axis1'], outputs: ['z'], attributes: { keepdims: 1 } },
          { opType: 'Log', inputs: ['z'], outputs: ['log_z'] },
          { opType: 'Add', inputs: ['log_z', 'max'], outputs: ['lse'] },
          { opType: 'GatherElements', inputs: ['x', 'idx'], outputs: ['picked'], attributes: { axis: 1 } },
          { opType: 'Sub', inputs: ['lse', 'picked'], outputs: ['nll'] },
          { opType: 'Mul', inputs: ['nll', 'in_f'], outputs: ['nll_in'] },
          { opType: 'ReduceSum', inputs: ['nll_in'], outputs: ['total'], attributes: { keepdims: 0 } },
          { opType: 'Div', inputs: ['total', 'count'], outputs: ['loss'] },
        ],
        inputs: [x, labels],
        outputs: [{ name: 'loss', elemType: F, shape: [] }, lse],
        initializers: labelInitializers(),
      },
    }),
    [logits, labelsInfo],
    [{ shape: [] }, { shape: [n, 1] }],
  );
});

const backward = defineKernel('PeftTsCrossEntropyGrad', (backend, inputs) => {
  const [dy, logits, labelsInfo, lseInfo] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  checkDtypes(logits, labelsInfo);
  return backend.runGraph(
    'PeftTsCrossEntropyGrad',
    () => ({
      graph: {
        name: 'cross_entropy_grad',
        nodes: [
          ...labelNodes,
          // 0 * (dy / 0) keeps the composite's NaN gradient when no row counts.
          { opType: 'Div', inputs: ['dy', 'count'], outputs: ['dy_mean'] },
          { opType: 'Mul', inputs: ['in_f', 'dy_mean'], outputs: ['scale'] },
          { opType: 'Sub', inputs: ['x', 'lse'], outputs: ['shifted'] },
          { opType: 'Exp', inputs: ['shifted'], outputs: ['p'] },
          { opType: 'Mul', inputs: ['p', 'scale'], outputs: ['dp'] },
          { opType: 'Neg', inputs: ['scale'], outputs: ['minus_scale'] },
          // The one-hot term touches one element a row: a scatter-add instead of an [n, V] one-hot.
          { opType: 'ScatterElements', inputs: ['dp', 'idx', 'minus_scale'], outputs: ['dx'], attributes: { axis: 1, reduction: 'add' } },
        ],
        inputs: [{ name: 'dy', elemType: F, shape: [] }, x, labels, lse],
        outputs: [{ name: 'dx', elemType: F, shape: ['n', 'v'] }],
        initializers: labelInitializers(),
      },
    }),
    [dy, logits, labelsInfo, lseInfo],
    [{ shape: logits.shape }],
  )[0];
});

export const crossEntropyKernels: readonly KernelConfig[] = [forward, backward];
