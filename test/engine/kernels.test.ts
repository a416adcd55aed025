// peft-ts's wasm kernels for what tfjs-backend-wasm 4.22 lacks (UnsortedSegmentSum, Conv2DBackpropFilter,
// DepthwiseConv2dNativeBackpropFilter / Input) or runs slowly (Conv2DBackpropInput): each against the cpu
// backend's kernel on random inputs, by adjointness where the cpu kernel lacks a feature (dilations), and end
// to end through tf.grad.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { setConv2DBackpropFilterChunk } from '../../src/engine/kernels/conv-backprop.js';
import { tf } from '../../src/engine/tf.js';
import { assertAllClose, assertNoLeak } from '../helpers/assert.js';
import type { Result, Spec } from './_compare.js';
import { onBoth, rand, runOn, toTensor } from './_compare.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };

function assertSame(actual: Result[], expected: Result[], tol = TOL, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} output count`);
  actual.forEach((a, i) => {
    assert.deepEqual(a.shape, expected[i]!.shape, `${what} output ${i} shape`);
    assertAllClose(a.values, expected[i]!.values, tol, `${what} output ${i}`);
  });
}

function runKernel(name: string, inputs: Record<string, Spec>, attrs: Record<string, unknown>): tf.Tensor {
  const ins: tf.NamedTensorMap = {};
  for (const [k, v] of Object.entries(inputs)) ins[k] = toTensor(v);
  return tf.engine().runKernel(name, ins, attrs as tf.NamedAttrMap) as tf.Tensor;
}

function ints(values: number[], shape = [values.length]): Spec {
  return { shape, values: Int32Array.from(values) };
}

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

describe('wasm kernel registration', () => {
  test('the gap kernels are registered for wasm and setBackend is idempotent', async () => {
    for (let i = 0; i < 3; i++) {
      await setBackend('wasm');
      await setBackend('cpu');
    }
    await setBackend('wasm');
    for (const name of ['UnsortedSegmentSum', 'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'Conv2DBackpropInput']) {
      assert.ok(tf.getKernel(name, 'wasm'), `${name} registered for wasm`);
    }
    // The overridden matmul still works after repeated registration (no wrapper around a wrapper).
    const y = tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 3]), false, true).dataSync());
    assert.deepEqual(Array.from(y), new Array(8).fill(3));
  });
});

describe('UnsortedSegmentSum (wasm vs cpu)', () => {
  const cases: { name: string; x: Spec; ids: Spec; numSegments: number }[] = [
    { name: 'rank 2, repeats', x: rand([7, 5]), ids: ints([3, 0, 3, 1, 6, 3, 0]), numSegments: 8 },
    { name: 'rank 3 values', x: rand([6, 2, 3]), ids: ints([1, 1, 0, 4, 2, 1]), numSegments: 5 },
    { name: 'rank 1 values', x: rand([9]), ids: ints([0, 2, 2, 2, 1, 0, 3, 3, 0]), numSegments: 4 },
    { name: 'out-of-range ids are dropped', x: rand([5, 3]), ids: ints([-1, 2, 9, 0, 2]), numSegments: 3 },
    { name: 'int32 values', x: ints([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]), ids: ints([1, 0, 1, 1]), numSegments: 3 },
    { name: 'embedding-shaped', x: rand([300, 64]), ids: ints(Array.from({ length: 300 }, (_, i) => (i * 7919) % 97)), numSegments: 100 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const run = (): tf.Tensor => runKernel('UnsortedSegmentSum', { x: c.x, segmentIds: c.ids }, { numSegments: c.numSegments });
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, { atol: 1e-5, rtol: 1e-5 }, c.name);
    });
  }

  test('does not leak and is fast at GPT-2 embedding size', async () => {
    await setBackend('wasm');
    const vocab = 50257;
    const dim = 768;
    const dy = tf.randomNormal([2048, dim]);
    const ids = tf.randomUniform([2048], 0, vocab, 'int32');
    await assertNoLeak(() => {
      const start = performance.now();
      const out = tf.engine().runKernel('UnsortedSegmentSum', { x: dy, segmentIds: ids }, { numSegments: vocab }) as tf.Tensor;
      assert.deepEqual(out.shape, [vocab, dim]);
      out.dispose();
      const ms = performance.now() - start;
      assert.ok(ms < 2000, `UnsortedSegmentSum [2048, 768] -> [50257, 768] took ${ms.toFixed(0)} ms`);
    }, 'UnsortedSegmentSum');
    tf.dispose([dy, ids]);
  });
});

describe('Conv2DBackpropFilter (wasm vs cpu)', () => {
  const cases: { name: string; x: number[]; filter: [number, number, number, number]; strides: number | [number, number]; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil'; dataFormat?: 'NHWC' | 'NCHW' }[] = [
    { name: '3x3 same, stride 1', x: [2, 7, 6, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
    { name: '3x3 valid, stride 2', x: [2, 9, 8, 5], filter: [3, 3, 5, 2], strides: 2, pad: 'valid' },
    { name: '2x4 same, strides [2, 1]', x: [1, 8, 7, 20], filter: [2, 4, 20, 6], strides: [2, 1], pad: 'same' },
    { name: '3x3 numeric pad 1, stride 2, ceil', x: [3, 7, 7, 2], filter: [3, 3, 2, 3], strides: 2, pad: 1, dimRoundingMode: 'ceil' },
    { name: 'explicit asymmetric pad', x: [2, 6, 5, 17], filter: [3, 2, 17, 5], strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
    { name: 'patch embedding 4x4 stride 4', x: [2, 16, 16, 3], filter: [4, 4, 3, 32], strides: 4, pad: 'valid' },
    { name: '1x1', x: [2, 5, 5, 16], filter: [1, 1, 16, 8], strides: 1, pad: 'valid' },
    { name: 'NCHW', x: [2, 3, 7, 6], filter: [3, 3, 3, 4], strides: [1, 2], pad: 'same', dataFormat: 'NCHW' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const dataFormat = c.dataFormat ?? 'NHWC';
      const nhwc = dataFormat === 'NCHW' ? [c.x[0]!, c.x[2]!, c.x[3]!, c.x[1]!] : c.x;
      const info = tf.backend_util.computeConv2DInfo(nhwc as [number, number, number, number], c.filter, c.strides, 1, c.pad, c.dimRoundingMode);
      const dyShape = dataFormat === 'NCHW' ? [info.batchSize, info.outChannels, info.outHeight, info.outWidth] : info.outShape;
      const x = rand(c.x);
      const dy = rand(dyShape);
      const run = (): tf.Tensor =>
        runKernel('Conv2DBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dataFormat, dimRoundingMode: c.dimRoundingMode, filterShape: c.filter });
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, TOL, c.name);
    });

    test(`${c.name}: Conv2DBackpropInput (peft-ts replaces TF.js's slow wasm kernel)`, async () => {
      const dataFormat = c.dataFormat ?? 'NHWC';
      const nhwc = dataFormat === 'NCHW' ? [c.x[0]!, c.x[2]!, c.x[3]!, c.x[1]!] : c.x;
      const info = tf.backend_util.computeConv2DInfo(nhwc as [number, number, number, number], c.filter, c.strides, 1, c.pad, c.dimRoundingMode);
      const dyShape = dataFormat === 'NCHW' ? [info.batchSize, info.outChannels, info.outHeight, info.outWidth] : info.outShape;
      const filter = rand(c.filter);
      const dy = rand(dyShape);
      const run = (): tf.Tensor =>
        runKernel('Conv2DBackpropInput', { dy, filter }, { strides: c.strides, pad: c.pad, dataFormat, dimRoundingMode: c.dimRoundingMode, inputShape: c.x });
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, TOL, c.name);
    });
  }
});

describe('Conv2DBackpropFilter / Conv2DBackpropInput in im2col chunks (wasm vs cpu)', () => {
  for (const floats of [1, 200, 1000]) {
    test(`chunks of at most ${floats} floats`, async () => {
      const x = rand([2, 7, 6, 5]);
      const filter: [number, number, number, number] = [3, 3, 5, 4];
      const info = tf.backend_util.computeConv2DInfo([2, 7, 6, 5], filter, 2, 1, 'same');
      const dy = rand(info.outShape);
      const f = rand(filter);
      const run = (): tf.Tensor[] => [
        runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: filter }),
        runKernel('Conv2DBackpropInput', { dy, filter: f }, { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: [2, 7, 6, 5] }),
      ];
      const cpu = await runOn('cpu', run);
      const previous = setConv2DBackpropFilterChunk(floats);
      try {
        assertSame(await runOn('wasm', run), cpu, TOL, `chunk ${floats}`);
      } finally {
        setConv2DBackpropFilterChunk(previous);
      }
    });
  }
});

describe('Depthwise conv backprops (wasm vs cpu)', () => {
  const cases: { name: string; x: [number, number, number, number]; filter: [number, number, number, number]; strides: number | [number, number]; pad: Pad }[] = [
    { name: '3x3 same, multiplier 1', x: [2, 7, 6, 5], filter: [3, 3, 5, 1], strides: 1, pad: 'same' },
    { name: '3x3 valid, stride 2, multiplier 2', x: [2, 9, 8, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'valid' },
    { name: '5x3 same, strides [1, 2], multiplier 3', x: [1, 8, 9, 4], filter: [5, 3, 4, 3], strides: [1, 2], pad: 'same' },
    { name: 'explicit pad', x: [2, 6, 6, 6], filter: [3, 3, 6, 1], strides: 2, pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
    { name: 'numeric pad', x: [1, 5, 7, 2], filter: [2, 2, 2, 2], strides: 1, pad: 1 },
  ];
  for (const c of cases) {
    test(`${c.name}: filter and input gradients`, async () => {
      const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, undefined, true);
      const x = rand(c.x);
      const f = rand(c.filter);
      const dy = rand(info.outShape);
      const attrs = { strides: c.strides, dilations: 1, pad: c.pad };
      const run = (): tf.Tensor[] => [
        runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter }),
        runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { ...attrs, inputShape: c.x }),
      ];
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, TOL, c.name);
    });
  }

  // tfjs's cpu depthwise backprop kernels ignore dilations, so dilated cases are checked by adjointness against
  // the forward depthwise convolution (which both backends dilate): <conv(x, f), dy> = <x, dX(dy)> = <f, dF(dy)>.
  for (const dilations of [2, [2, 3] as [number, number]]) {
    test(`dilations ${JSON.stringify(dilations)}: adjoint of the forward convolution`, async () => {
      const xShape: [number, number, number, number] = [2, 11, 10, 3];
      const fShape: [number, number, number, number] = [3, 3, 3, 2];
      for (const pad of ['same', 'valid'] as const) {
        const info = tf.backend_util.computeConv2DInfo(xShape, fShape, 1, dilations, pad, undefined, true);
        const x = rand(xShape);
        const f = rand(fShape);
        const dy = rand(info.outShape);
        const [res] = await runOn('wasm', () => {
          const [tx, tf_, tdy] = [toTensor(x), toTensor(f), toTensor(dy)];
          const attrs = { strides: 1, dilations, pad };
          const y = tf.depthwiseConv2d(tx as tf.Tensor4D, tf_ as tf.Tensor4D, 1, pad, 'NHWC', dilations);
          const dX = tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: tdy, filter: tf_ }, { ...attrs, inputShape: xShape }) as tf.Tensor;
          const dF = tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: tx, dy: tdy }, { ...attrs, filterShape: fShape }) as tf.Tensor;
          return tf.stack([tf.sum(tf.mul(y, tdy)), tf.sum(tf.mul(tx, dX)), tf.sum(tf.mul(tf_, dF))]);
        });
        const [lhs, viaInput, viaFilter] = Array.from(res!.values);
        assertAllClose(viaInput!, lhs!, { atol: 1e-3, rtol: 1e-4 }, `${pad} input adjoint`);
        assertAllClose(viaFilter!, lhs!, { atol: 1e-3, rtol: 1e-4 }, `${pad} filter adjoint`);
      }
    });
  }
});

describe('tf.grad through the new kernels (wasm vs cpu)', () => {
  test('gather (embedding lookup)', async () => {
    const table = rand([40, 6]);
    const ids = ints([3, 17, 3, 0, 39, 17, 17, 5, 3, 22], [2, 5]);
    const g = rand([2, 5, 6]);
    const run = (): tf.Tensor[] => {
      const [t, i, w] = [toTensor(table), toTensor(ids), toTensor(g)];
      const f = (x: tf.Tensor): tf.Tensor => tf.sum(tf.mul(tf.gather(x, i), w));
      return [tf.grad(f)(t)];
    };
    const { wasm, cpu } = await onBoth(run);
    assertSame(wasm, cpu, { atol: 1e-5, rtol: 1e-5 }, 'gather grad');
  });

  test('gather on axis 1', async () => {
    const params = rand([3, 12, 4]);
    const ids = ints([11, 0, 5, 5, 2]);
    const g = rand([3, 5, 4]);
    const run = (): tf.Tensor[] => {
      const [p, i, w] = [toTensor(params), toTensor(ids), toTensor(g)];
      return [tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, i, 1), w)))(p)];
    };
    const { wasm, cpu } = await onBoth(run);
    assertSame(wasm, cpu, { atol: 1e-5, rtol: 1e-5 }, 'gather axis 1 grad');
  });

  for (const { strides, pad } of [
    { strides: 1, pad: 'same' as const },
    { strides: 2, pad: 'valid' as const },
    { strides: 2, pad: 1 },
  ]) {
    test(`conv2d weight and input gradients (stride ${strides}, pad ${pad})`, async () => {
      const x = rand([2, 9, 8, 3]);
      const w = rand([3, 3, 3, 5]);
      const info = tf.backend_util.computeConv2DInfo([2, 9, 8, 3], [3, 3, 3, 5], strides, 1, pad);
      const g = rand(info.outShape);
      const run = (): tf.Tensor[] => {
        const [tx, tw, tg] = [toTensor(x), toTensor(w), toTensor(g)];
        const loss = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), tg));
        return tf.grads(loss)([tx, tw]);
      };
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, TOL, 'conv2d grads');
    });
  }

  for (const mult of [1, 2]) {
    test(`depthwiseConv2d weight and input gradients (multiplier ${mult})`, async () => {
      const x = rand([2, 8, 7, 4]);
      const w = rand([3, 3, 4, mult]);
      const info = tf.backend_util.computeConv2DInfo([2, 8, 7, 4], [3, 3, 4, mult], 2, 1, 'same', undefined, true);
      const g = rand(info.outShape);
      const run = (): tf.Tensor[] => {
        const [tx, tw, tg] = [toTensor(x), toTensor(w), toTensor(g)];
        const loss = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), tg));
        return tf.grads(loss)([tx, tw]);
      };
      const { wasm, cpu } = await onBoth(run);
      assertSame(wasm, cpu, TOL, 'depthwise grads');
    });
  }

  test('grouped conv2d (as split + conv2d) gradients', async () => {
    const x = rand([1, 6, 6, 4]);
    const w = rand([3, 3, 2, 3]);
    const w2 = rand([3, 3, 2, 3]);
    const run = (): tf.Tensor[] => {
      const [tx, ta, tb] = [toTensor(x), toTensor(w), toTensor(w2)];
      const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor => {
        const [x1, x2] = tf.split(a, 2, 3);
        const y = tf.concat([tf.conv2d(x1 as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), tf.conv2d(x2 as tf.Tensor4D, c as tf.Tensor4D, 1, 'same')], 3);
        return tf.sum(tf.square(y));
      };
      return tf.grads(loss)([tx, ta, tb]);
    };
    const { wasm, cpu } = await onBoth(run);
    assertSame(wasm, cpu, { atol: 1e-3, rtol: 1e-4 }, 'grouped conv grads');
  });

  test('no tensors leak from the new kernels', async () => {
    await setBackend('wasm');
    const x = tf.randomNormal([2, 8, 8, 4]);
    const w = tf.randomNormal([3, 3, 4, 6]);
    const dw = tf.randomNormal([3, 3, 4, 2]);
    const table = tf.randomNormal([20, 8]);
    const ids = tf.tensor1d([1, 5, 5, 19], 'int32');
    await assertNoLeak(() => {
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, t: tf.Tensor) =>
        tf.add(
          tf.add(tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')), tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, c as tf.Tensor4D, 1, 'valid'))),
          tf.sum(tf.gather(t, ids)),
        ),
      )([x, w, dw, table]);
      tf.dispose(grads);
    }, 'conv / depthwise / gather grads');
    tf.dispose([x, w, dw, table, ids]);
  });
});
