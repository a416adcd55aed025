// Data-movement kernels (transpose, slice, split, concat, pad, gather, tile) as ONNX graphs. Sizes that change
// from call to call (slice bounds, split sizes, paddings) are int64 graph inputs, not constants, so generation
// with a growing cache reuses one compiled graph per rank instead of compiling one per length.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../../tf.js';
import type { OnnxValueInfo } from '../proto.js';
import { OnnxDataType } from '../proto.js';
import { allFloat32, defineKernel, tooSmallForOrt } from './define.js';
import { floatValue, int64Feed, symbolicShape } from './graph-util.js';

const F = OnnxDataType.float;
const I64 = OnnxDataType.int64;

const i64 = int64Feed;

const i64Input = (name: string): OnnxValueInfo => ({ name, elemType: I64, shape: [`${name}_n`] });

/** Whether `perm` keeps the dimensions larger than 1 in order: the transpose then moves no data. */
function movesNoData(shape: readonly number[], perm: readonly number[]): boolean {
  const order = perm.filter((p) => shape[p]! > 1);
  return order.every((p, i) => i === 0 || p > order[i - 1]!);
}

const transpose = defineKernel('Transpose', (backend, inputs, attrs) => {
  const [x] = inputs as [TensorInfo];
  const perm = attrs['perm'] as number[];
  const outShape = perm.map((p) => x.shape[p]!);
  // splitHeads/mergeHeads of one decoded token ([1, 1, H, D] <-> [1, H, 1, D]): share the data, as a reshape.
  if (movesNoData(x.shape, perm)) {
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: outShape, dtype: x.dtype };
  }
  if (!allFloat32(inputs) || tf.util.sizeFromShape(x.shape) === 0 || tooSmallForOrt(x.shape)) return undefined;
  const key = `Transpose:${perm.join(',')}`;
  return backend.runGraph(
    key,
    () => ({
      graph: {
        name: 'transpose',
        nodes: [{ opType: 'Transpose', inputs: ['x'], outputs: ['y'], attributes: { perm } }],
        inputs: [floatValue('x', x.shape.length)],
        outputs: [floatValue('y', outShape.length)],
      },
    }),
    [x],
    [{ shape: outShape }],
  )[0];
});

/** Slices `x` to `size` from `begin` (all resolved); one graph per rank, bounds as inputs. */
function sliceGraph(backend: Parameters<Parameters<typeof defineKernel>[1]>[0], x: TensorInfo, begin: readonly number[], size: readonly number[]): TensorInfo {
  const rank = x.shape.length;
  const key = `Slice:${rank}`;
  const graph = backend.graph(key, () => ({
    graph: {
      name: 'slice',
      nodes: [{ opType: 'Slice', inputs: ['x', 'starts', 'ends'], outputs: ['y'] }],
      inputs: [floatValue('x', rank), i64Input('starts'), i64Input('ends')],
      outputs: [floatValue('y', rank)],
    },
  }));
  const out = backend.output(size);
  graph.run([backend.feed(x), i64(begin), i64(begin.map((b, i) => b + size[i]!))], [out.value]);
  return out.info;
}

const slice = defineKernel('Slice', (backend, inputs, attrs) => {
  const [x] = inputs as [TensorInfo];
  if (!allFloat32(inputs)) return undefined;
  const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs['begin'] as number[], attrs['size'] as number[]);
  // A contiguous slice is a zero-copy view in the cpu kernel.
  if (tf.util.sizeFromShape(size) === 0 || tooSmallForOrt(size) || tf.slice_util.isSliceContinous(x.shape, begin, size)) return undefined;
  return sliceGraph(backend, x, begin, size);
});

const splitV = defineKernel('SplitV', (backend, inputs, attrs) => {
  const [x] = inputs as [TensorInfo];
  if (!allFloat32(inputs)) return undefined;
  const axis = tf.util.parseAxisParam(attrs['axis'] as number, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs['numOrSizeSplits'] as number[] | number, axis);
  // Splitting the leading non-trivial axis gives contiguous pieces: the cpu kernel's views are free.
  if (x.shape.slice(0, axis).every((d) => d === 1) || sizes.some((s) => s === 0) || tooSmallForOrt(x.shape)) return undefined;
  const rank = x.shape.length;
  const key = `SplitV:${rank}:${axis}:${sizes.length}`;
  const graph = backend.graph(key, () => ({
    graph: {
      name: 'split',
      nodes: [{ opType: 'Split', inputs: ['x', 'split'], outputs: sizes.map((_, i) => `y${i}`), attributes: { axis } }],
      inputs: [floatValue('x', rank), i64Input('split')],
      outputs: sizes.map((_, i) => floatValue(`y${i}`, rank)),
    },
  }));
  const outs = sizes.map((s) => backend.output(x.shape.map((d, i) => (i === axis ? s : d))));
  graph.run([backend.feed(x), i64(sizes)], outs.map((o) => o.value));
  return outs.map((o) => o.info);
});

const concat = defineKernel('Concat', (backend, inputs, attrs) => {
  const nonEmpty = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (!allFloat32(inputs) || nonEmpty.length < 2) return undefined;
  const rank = nonEmpty[0]!.shape.length;
  const axis = tf.util.parseAxisParam(attrs['axis'] as number, nonEmpty[0]!.shape)[0]!;
  const outShape = tf.backend_util.computeOutShape(nonEmpty.map((t) => t.shape), axis);
  if (tooSmallForOrt(outShape)) return undefined;
  const key = `Concat:${rank}:${axis}:${nonEmpty.length}`;
  return backend.runGraph(
    key,
    () => ({
      graph: {
        name: 'concat',
        nodes: [{ opType: 'Concat', inputs: nonEmpty.map((_, i) => `x${i}`), outputs: ['y'], attributes: { axis } }],
        inputs: nonEmpty.map((_, i) => floatValue(`x${i}`, rank)),
        outputs: [floatValue('y', rank)],
      },
    }),
    nonEmpty,
    [{ shape: outShape }],
  )[0];
});

const padV2 = defineKernel('PadV2', (backend, inputs, attrs) => {
  const [x] = inputs as [TensorInfo];
  if (!allFloat32(inputs) || tf.util.sizeFromShape(x.shape) === 0) return undefined;
  const paddings = attrs['paddings'] as [number, number][];
  const constantValue = attrs['constantValue'] as number;
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
  if (tooSmallForOrt(outShape)) return undefined;
  const key = `PadV2:${rank}`;
  const graph = backend.graph(key, () => ({
    graph: {
      name: 'pad',
      nodes: [{ opType: 'Pad', inputs: ['x', 'pads', 'value'], outputs: ['y'], attributes: { mode: 'constant' } }],
      inputs: [floatValue('x', rank), i64Input('pads'), { name: 'value', elemType: F, shape: [] }],
      outputs: [floatValue('y', rank)],
    },
  }));
  const out = backend.output(outShape);
  graph.run(
    [backend.feed(x), i64([...paddings.map((p) => p[0]), ...paddings.map((p) => p[1])]), { data: Float32Array.of(constantValue), dims: [] }],
    [out.value],
  );
  return out.info;
});

const gatherV2 = defineKernel('GatherV2', (backend, inputs, attrs) => {
  const [x, indices] = inputs as [TensorInfo, TensorInfo];
  if (x.dtype !== 'float32' || indices.dtype !== 'int32' || (attrs['batchDims'] as number) !== 0) return undefined;
  const axis = tf.util.parseAxisParam(attrs['axis'] as number, x.shape)[0]!;
  const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  if (tf.util.sizeFromShape(outShape) === 0 || tooSmallForOrt(outShape)) return undefined;
  // TF.js checks indices here; ONNX Runtime would accept negative ones.
  const idx = backend.values(indices);
  const n = x.shape[axis]!;
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < 0 || v >= n) return undefined; // the cpu kernel reports the bad index
  }
  const key = `GatherV2:${x.shape.length}:${indices.shape.length}:${axis}`;
  return backend.runGraph(
    key,
    () => ({
      graph: {
        name: 'gather',
        nodes: [{ opType: 'Gather', inputs: ['x', 'i'], outputs: ['y'], attributes: { axis } }],
        inputs: [floatValue('x', x.shape.length), { name: 'i', elemType: OnnxDataType.int32, shape: symbolicShape('i_', indices.shape.length) }],
        outputs: [floatValue('y', outShape.length)],
      },
    }),
    [x, indices],
    [{ shape: outShape }],
  )[0];
});

const tile = defineKernel('Tile', (backend, inputs, attrs) => {
  const [x] = inputs as [TensorInfo];
  const reps = attrs['reps'] as number[];
  if (!allFloat32(inputs) || tf.util.sizeFromShape(x.shape) === 0 || reps.some((r) => r === 0)) return undefined;
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => d * reps[i]!);
  if (tooSmallForOrt(outShape)) return undefined;
  const graph = backend.graph(`Tile:${rank}`, () => ({
    graph: {
      name: 'tile',
      nodes: [{ opType: 'Tile', inputs: ['x', 'reps'], outputs: ['y'] }],
      inputs: [floatValue('x', rank), i64Input('reps')],
      outputs: [floatValue('y', rank)],
    },
  }));
  const out = backend.output(outShape);
  graph.run([backend.feed(x), i64(reps)], [out.value]);
  return out.info;
});

export const shapeKernels: readonly KernelConfig[] = [transpose, slice, splitV, concat, padV2, gatherV2, tile];
