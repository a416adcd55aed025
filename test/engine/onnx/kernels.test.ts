// The "onnxruntime" backend's kernels (src/engine/onnx/kernels/*) against TF.js's own cpu kernels, through
// public tf ops: each case runs on both backends and must give the same shapes, dtypes and values (float32
// within 1e-5, exactly for bool and int32 outputs and for data movement). Cases cover awkward shapes (rank 0 to
// 5, broadcasting both ways, size-1 and size-0 dimensions, negative axes), the fallbacks to cpu kernels (int32,
// bool, cases a graph does not take), gradients through tf.grads, and NaN / Infinity. Each case also checks
// that it went where it should: through an ONNX graph, or (fallback cases) through no graph at all.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import type { BackendName } from '../../../src/engine/index.js';
import type { OnnxRuntimeBackend } from '../../../src/engine/onnx/backend.js';
import { setOrtMinElements } from '../../../src/engine/onnx/kernels/define.js';
import { tf } from '../../../src/engine/tf.js';
import type { Spec } from '../_compare.js';
import { ortAvailable, randoms, toTensor } from '../fused/_fused.js';

interface Out {
  shape: number[];
  dtype: string;
  values: ArrayLike<number>;
}

interface Case {
  name: string;
  fn: () => tf.Tensor | tf.Tensor[];
  /** The cpu reference when it must differ from `fn` (TF.js's cpu kernel is wrong for some shapes). */
  ref?: () => tf.Tensor | tf.Tensor[];
  /** Exact comparison even for float32 (data movement). */
  exact?: boolean;
  /** 'ort': at least one ONNX graph ran; 'cpu': none did (the fallback path). */
  path?: 'ort' | 'cpu';
  tol?: number;
}

const TOL = 1e-5;

// Counts graph look-ups on the onnxruntime backend: every kernel that runs a graph asks for it first.
let graphCalls = 0;
let counting = false;

async function countGraphs(): Promise<void> {
  if (counting) return;
  await setBackend('onnxruntime');
  const backend = tf.backend() as OnnxRuntimeBackend;
  const graph = backend.graph.bind(backend);
  backend.graph = (key, build) => {
    graphCalls++;
    return graph(key, build);
  };
  counting = true;
}

async function outputs(backend: BackendName, fn: () => tf.Tensor | tf.Tensor[]): Promise<Out[]> {
  await setBackend(backend);
  const saved = seed;
  seed = caseSeed;
  let out: tf.Tensor | tf.Tensor[];
  try {
    out = tf.tidy(fn);
  } finally {
    seed = saved;
  }
  const tensors = Array.isArray(out) ? out : [out];
  const results = tensors.map((t) => ({ shape: t.shape, dtype: t.dtype, values: t.dataSync() as ArrayLike<number> }));
  tf.dispose(tensors);
  return results;
}

function close(a: number, e: number, tol: number): boolean {
  if (Number.isNaN(e)) return Number.isNaN(a);
  if (!Number.isFinite(e)) return a === e;
  return Math.abs(a - e) <= tol + tol * Math.abs(e);
}

function assertSame(actual: Out[], expected: Out[], exact: boolean, tol: number): void {
  assert.equal(actual.length, expected.length, 'output count');
  actual.forEach((a, i) => {
    const e = expected[i]!;
    assert.deepEqual(a.shape, e.shape, `output ${i} shape`);
    assert.equal(a.dtype, e.dtype, `output ${i} dtype`);
    assert.equal(a.values.length, e.values.length, `output ${i} length`);
    const strict = exact || a.dtype !== 'float32';
    for (let j = 0; j < a.values.length; j++) {
      const x = a.values[j]!;
      const y = e.values[j]!;
      const ok = strict ? x === y || (Number.isNaN(x) && Number.isNaN(y)) : close(x, y, tol);
      if (!ok) assert.fail(`output ${i} differs at ${j}: onnxruntime ${x} vs cpu ${y}`);
    }
  });
}

async function check(c: Case): Promise<void> {
  const cpu = await outputs('cpu', c.ref ?? c.fn);
  const before = graphCalls;
  const tensors = tf.memory().numTensors;
  const ort = await outputs('onnxruntime', c.fn);
  assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
  assertSame(ort, cpu, c.exact ?? false, c.tol ?? TOL);
  if (c.path === 'ort') assert.ok(graphCalls > before, 'expected an ONNX graph to run');
  if (c.path === 'cpu') assert.equal(graphCalls, before, 'expected the cpu fallback (no ONNX graph)');
}

function table(cases: Case[]): void {
  for (const c of cases) test(c.name, () => check(c));
}

// --- inputs (values fixed here, tensors made on whichever backend runs) ---

// Seeds for random inputs. Specs made while the table is built get seeds from 1; a case function that makes its
// own inputs starts again from `caseSeed` on each backend, so both backends see the same values.
let seed = 1;
const caseSeed = 1_000_000;

function rnd(shape: number[]): Spec {
  return { shape, values: randoms(shape.reduce((a, b) => a * b, 1), seed++) };
}

const T = (s: Spec): tf.Tensor => toTensor(s);

function ints(shape: number[], lo: number, hi: number, salt = 7): Spec {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Int32Array(n);
  let s = salt;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    v[i] = lo + (s % (hi - lo + 1));
  }
  return { shape, values: v };
}

/** Floats on a coarse grid, so that comparisons see ties. */
function grid(shape: number[]): Spec {
  const r = rnd(shape);
  return { shape, values: r.values.map((v) => Math.round(v * 2) / 2) };
}

function positive(shape: number[]): Spec {
  const r = rnd(shape);
  return { shape, values: r.values.map((v) => 0.1 + Math.abs(v) * 2) };
}

function scaled(shape: number[], k: number): Spec {
  const r = rnd(shape);
  return { shape, values: r.values.map((v) => v * k) };
}

function bools(shape: number[], salt = 3): tf.Tensor {
  const s = ints(shape, 0, 1, salt);
  return tf.tensor(Uint8Array.from(s.values), shape, 'bool');
}

const special: Spec = {
  shape: [16],
  values: Float32Array.of(NaN, Infinity, -Infinity, 0, -0, 0.5, 1.5, 2.5, -0.5, -2.5, 100, -100, 1e-30, 3, -7.25, 0.999),
};

/** A scalar spec. */
const scalar = (v: number): Spec => ({ shape: [], values: Float32Array.of(v) });

const skip = ortAvailable ? false : 'onnxruntime-node is not installed';

describe('onnxruntime kernels vs cpu', { skip }, () => {
  // Small element-wise and data-movement ops normally stay on the cpu kernels; here every size goes to ONNX Runtime.
  let minElements = 0;
  before(async () => {
    minElements = setOrtMinElements(0);
    await countGraphs();
  });
  after(() => {
    setOrtMinElements(minElements);
  });

  describe('BatchMatMul', () => {
    const cases: Case[] = [];
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = rnd(ta ? [7, 5] : [5, 7]);
        const b = rnd(tb ? [3, 7] : [7, 3]);
        cases.push({ name: `2d transposeA=${ta} transposeB=${tb}`, fn: () => tf.matMul(T(a), T(b), ta, tb), path: 'ort' });
        const a4 = rnd(ta ? [2, 1, 4, 3] : [2, 1, 3, 4]);
        const b3 = rnd(tb ? [5, 6, 4] : [5, 4, 6]);
        cases.push({
          name: `batch broadcast [2,1,3,4]@[5,4,6] ta=${ta} tb=${tb}`,
          fn: () => tf.matMul(T(a4), T(b3), ta, tb),
          // TF.js's cpu BatchMatMul mis-broadcasts when both sides have batch dims above 1 (it returns 90 values for
          // a [2,5,3,6] result): the reference broadcasts explicitly.
          ref: () => tf.matMul(tf.broadcastTo(T(a4), [2, 5, ...a4.shape.slice(2)]), tf.broadcastTo(T(b3), [2, 5, ...b3.shape.slice(1)]), ta, tb),
          path: 'ort',
        });
      }
    }
    const r5a = rnd([2, 1, 3, 2, 4]);
    const r5b = rnd([1, 3, 1, 4, 2]);
    const vecA = rnd([1, 6]);
    const vecB = rnd([6, 1]);
    const left = rnd([3, 4]);
    const right = rnd([2, 2, 4, 5]);
    cases.push(
      {
        name: 'rank 5 both sides broadcast',
        fn: () => tf.matMul(T(r5a), T(r5b)),
        ref: () => tf.matMul(tf.broadcastTo(T(r5a), [2, 3, 3, 2, 4]), tf.broadcastTo(T(r5b), [2, 3, 3, 4, 2])),
        path: 'ort',
      },
      { name: 'row times column (1x1 output)', fn: () => tf.matMul(T(vecA), T(vecB)), path: 'ort' },
      { name: 'column times row (outer product)', fn: () => tf.matMul(T(vecB), T(vecA)), path: 'ort' },
      { name: 'rank 2 @ rank 4 (batch from the right)', fn: () => tf.matMul(T(left), T(right)), path: 'ort' },
      { name: 'empty inner dimension gives zeros', fn: () => tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3])) },
      { name: 'empty outer dimension', fn: () => tf.matMul(tf.zeros([0, 4]), T(rnd([4, 3]))) },
      // TF.js's cpu kernel returns 6 values for this [0, 2, 3] result.
      { name: 'empty batch', fn: () => tf.matMul(tf.zeros([0, 2, 4]), T(rnd([4, 3]))), ref: () => tf.zeros([0, 2, 3]) },
      { name: 'int32 falls back', fn: () => tf.matMul(T(ints([3, 4], -5, 5)), T(ints([4, 2], -5, 5, 11))), path: 'cpu' },
    );
    table(cases);
  });

  describe('_FusedMatMul (tf.fused.matMul)', () => {
    const a = scaled([2, 3, 4], 3);
    const b = scaled([4, 6], 3);
    const bias = rnd([6]);
    const bias2 = rnd([3, 6]);
    const alpha = rnd([6]);
    const cases: Case[] = [];
    for (const activation of ['linear', 'relu', 'relu6', 'prelu', 'leakyrelu', 'sigmoid', 'elu'] as const) {
      const prelu = (): { preluActivationWeights?: tf.Tensor } => (activation === 'prelu' ? { preluActivationWeights: T(alpha) } : {});
      cases.push(
        {
          name: `${activation} with bias [n]`,
          fn: () => tf.fused.matMul({ a: T(a), b: T(b), bias: T(bias), activation, ...prelu() }),
          path: 'ort',
        },
        { name: `${activation} without bias`, fn: () => tf.fused.matMul({ a: T(a), b: T(b), activation, ...prelu() }), path: 'ort' },
      );
    }
    const at = scaled([2, 4, 3], 3);
    const bt = scaled([6, 4], 3);
    cases.push(
      { name: 'bias [m, n], relu', fn: () => tf.fused.matMul({ a: T(a), b: T(b), bias: T(bias2), activation: 'relu' }), path: 'ort' },
      { name: 'scalar bias, sigmoid', fn: () => tf.fused.matMul({ a: T(a), b: T(b), bias: T(scalar(0.3)), activation: 'sigmoid' }), path: 'ort' },
      {
        name: 'both transposed, bias, leakyrelu alpha 0.1',
        fn: () => tf.fused.matMul({ a: T(at), b: T(bt), transposeA: true, transposeB: true, bias: T(bias), activation: 'leakyrelu', leakyreluAlpha: 0.1 }),
        path: 'ort',
      },
      {
        name: 'transposeB, relu6',
        fn: () => tf.fused.matMul({ a: T(a), b: T(bt), transposeB: true, bias: T(bias), activation: 'relu6' }),
        path: 'ort',
      },
      {
        name: 'empty inner dimension: bias and activation still apply',
        fn: () => tf.fused.matMul({ a: tf.zeros([2, 0]), b: tf.zeros([0, 6]), bias: T(bias), activation: 'sigmoid' }),
      },
    );
    table(cases);
  });

  describe('Conv2D', () => {
    type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
    const conv = (
      name: string,
      xShape: number[],
      fShape: number[],
      strides: number | [number, number],
      pad: Pad,
      dilations: number | [number, number] = 1,
      dataFormat: 'NHWC' | 'NCHW' = 'NHWC',
      dimRoundingMode?: 'floor' | 'round' | 'ceil',
    ): Case => {
      const x = rnd(xShape);
      const f = rnd(fShape);
      return { name, fn: () => tf.conv2d(T(x) as tf.Tensor4D, T(f) as tf.Tensor4D, strides, pad, dataFormat, dilations, dimRoundingMode), path: 'ort' };
    };
    const cases: Case[] = [
      conv('3x3 same stride 1', [2, 6, 5, 3], [3, 3, 3, 4], 1, 'same'),
      conv('3x3 valid', [1, 7, 6, 2], [3, 3, 2, 3], 1, 'valid'),
      conv('stride 2 same on odd sizes', [2, 7, 9, 3], [3, 3, 3, 2], 2, 'same'),
      conv('stride [2, 3] valid', [1, 9, 11, 2], [2, 4, 2, 3], [2, 3], 'valid'),
      conv('dilation 2 same on odd sizes', [1, 9, 7, 2], [3, 3, 2, 3], 1, 'same', 2),
      conv('dilation [2, 1] valid', [1, 9, 7, 2], [3, 2, 2, 3], 1, 'valid', [2, 1]),
      conv('explicit padding', [1, 6, 5, 2], [3, 2, 2, 3], 1, [[0, 0], [1, 2], [0, 3], [0, 0]]),
      conv('explicit padding stride 2', [2, 7, 6, 2], [3, 3, 2, 2], 2, [[0, 0], [2, 0], [1, 1], [0, 0]]),
      conv('numeric pad with dimRoundingMode', [1, 8, 8, 2], [3, 3, 2, 2], 2, 1, 1, 'NHWC', 'floor'),
      conv('1x1 filter', [3, 4, 4, 5], [1, 1, 5, 2], 1, 'valid'),
      conv('filter as large as the input', [1, 4, 4, 2], [4, 4, 2, 3], 1, 'valid'),
      conv('NCHW same stride 2', [2, 3, 7, 9], [3, 3, 3, 2], 2, 'same', 1, 'NCHW'),
      conv('NCHW dilation 2', [1, 2, 9, 8], [3, 3, 2, 3], 1, 'same', 2, 'NCHW'),
      conv('NCHW explicit padding', [1, 2, 6, 5], [3, 2, 2, 3], 1, [[0, 0], [0, 0], [1, 2], [0, 3]], 1, 'NCHW'),
    ];
    // tf.conv2d refuses strides and dilations both above 1; the kernel itself takes them.
    const x = rnd([1, 11, 10, 2]);
    const f = rnd([3, 3, 2, 3]);
    cases.push({
      name: 'kernel: stride 2 and dilation 2, same, odd sizes',
      fn: () =>
        tf.engine().runKernel('Conv2D', { x: T(x), filter: T(f) }, { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dilations: [2, 2] }) as tf.Tensor,
      path: 'ort',
    });
    table(cases);
  });

  describe('Conv2DBackpropInput (tf.conv2dTranspose)', () => {
    const cases: Case[] = [];
    const add = (name: string, xShape: number[], fShape: number[], outShape: number[], strides: number, pad: 'same' | 'valid' | number): void => {
      const x = rnd(xShape);
      const f = rnd(fShape);
      cases.push({
        name,
        fn: () => tf.conv2dTranspose(T(x) as tf.Tensor4D, T(f) as tf.Tensor4D, outShape as [number, number, number, number], strides, pad),
        path: 'ort',
      });
    };
    add('stride 2 same to an odd size', [1, 4, 4, 3], [3, 3, 2, 3], [1, 7, 7, 2], 2, 'same');
    add('stride 2 same to an even size', [2, 4, 4, 3], [3, 3, 2, 3], [2, 8, 8, 2], 2, 'same');
    add('stride 3 valid with a remainder', [1, 3, 3, 2], [2, 2, 4, 2], [1, 10, 9, 4], 3, 'valid');
    add('stride 1 valid', [1, 5, 4, 2], [3, 2, 3, 2], [1, 7, 5, 3], 1, 'valid');
    add('numeric pad', [1, 4, 4, 2], [3, 3, 2, 2], [1, 8, 8, 2], 2, 1);
    table(cases);
  });

  describe('binary ops', () => {
    const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
      ['maximum', tf.maximum],
      ['minimum', tf.minimum],
      ['squaredDifference', tf.squaredDifference],
      ['less', tf.less],
      ['lessEqual', tf.lessEqual],
      ['greater', tf.greater],
      ['greaterEqual', tf.greaterEqual],
      ['equal', tf.equal],
      ['notEqual', tf.notEqual],
    ];
    const shapes: [number[], number[]][] = [
      [[2, 3], [2, 3]],
      [[2, 1, 4], [3, 1]],
      [[3, 1], [2, 1, 4]],
      [[], [2, 3]],
      [[2, 3], []],
      [[], []],
      [[4, 1, 1, 2, 3], [1, 5, 1, 3]],
      [[1], [1, 1, 1]],
      [[0, 3], [1, 3]],
      [[2, 0, 3], [3]],
    ];
    const cases: Case[] = [];
    for (const [name, op] of ops) {
      for (const [sa, sb] of shapes) {
        const a = grid(sa);
        const b = grid(sb);
        const empty = sa.includes(0) || sb.includes(0);
        cases.push({ name: `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, fn: () => op(T(a), T(b)), path: empty ? undefined : 'ort' });
      }
    }
    const base = positive([2, 3, 4]);
    const exp = rnd([3, 1]);
    const negBase = grid([2, 5]);
    const intExp: Spec = { shape: [5], values: Float32Array.of(0, 1, 2, 3, -1) };
    const x = rnd([2, 3, 4]);
    cases.push(
      { name: 'pow broadcast', fn: () => tf.pow(T(base), T(exp)), path: 'ort' },
      { name: 'pow with scalar exponent', fn: () => tf.pow(T(base), T(scalar(2.5))), path: 'ort' },
      { name: 'pow of negative bases by integer exponents', fn: () => tf.pow(T(negBase), T(intExp)), path: 'ort' },
      { name: 'prelu per-channel alpha', fn: () => tf.prelu(T(x), T(rnd([4]))), path: 'ort' },
      { name: 'prelu scalar alpha', fn: () => tf.prelu(T(x), T(scalar(0.2))), path: 'ort' },
      { name: 'prelu alpha [3, 1]', fn: () => tf.prelu(T(x), T(rnd([3, 1]))), path: 'ort' },
      { name: 'div by zero and NaN', fn: () => tf.div(T(special), T(grid([16]))), path: 'ort' },
      { name: 'div special by special', fn: () => tf.div(T(special), T({ shape: [16], values: special.values.slice().reverse() })), path: 'ort' },
      { name: 'maximum with NaN and infinities', fn: () => tf.maximum(T(special), T(grid([16]))), path: 'ort' },
      { name: 'minimum with NaN and infinities', fn: () => tf.minimum(T(grid([16])), T(special)), path: 'ort' },
      { name: 'comparisons with NaN', fn: () => [tf.less(T(special), T(scalar(0))), tf.equal(T(special), T(special)), tf.notEqual(T(special), T(special))], path: 'ort' },
      { name: 'int32 add falls back', fn: () => tf.add(T(ints([2, 3], -9, 9)), T(ints([3], -9, 9, 5))), path: 'cpu' },
      { name: 'int32 mul broadcast falls back', fn: () => tf.mul(T(ints([2, 1, 3], -9, 9)), T(ints([4, 1], -9, 9, 5))), path: 'cpu' },
      { name: 'int32 comparison falls back', fn: () => tf.greater(T(ints([5], -2, 2)), T(ints([5], -2, 2, 9))), path: 'cpu' },
      { name: 'int32 div (FloorDiv) stays on cpu', fn: () => tf.div(T(ints([6], 1, 9)), T(ints([6], 1, 9, 4))), path: 'cpu' },
      { name: 'bool equal falls back', fn: () => tf.equal(bools([6]), bools([6], 9)), path: 'cpu' },
      { name: 'int32 maximum falls back', fn: () => tf.maximum(T(ints([4], -3, 3)), T(ints([4], -3, 3, 2))), path: 'cpu' },
    );
    table(cases);
  });

  describe('unary ops', () => {
    const ops: [string, (x: tf.Tensor) => tf.Tensor][] = [
      ['exp', tf.exp],
      ['log', tf.log],
      ['neg', tf.neg],
      ['sqrt', tf.sqrt],
      ['rsqrt', tf.rsqrt],
      ['square', tf.square],
      ['abs', tf.abs],
      ['sigmoid', tf.sigmoid],
      ['tanh', tf.tanh],
      ['relu', tf.relu],
      ['erf', tf.erf],
      ['cos', tf.cos],
      ['sin', tf.sin],
      ['reciprocal', tf.reciprocal],
      ['floor', tf.floor],
      ['ceil', tf.ceil],
      ['round', tf.round],
      ['sign', tf.sign],
      ['elu', tf.elu],
      ['selu', tf.selu],
      ['softplus', tf.softplus],
      ['leakyRelu 0.3', (x) => tf.leakyRelu(x, 0.3)],
      ['leakyRelu 0.05', (x) => tf.leakyRelu(x, 0.05)],
      ['clipByValue [-0.3, 0.5]', (x) => tf.clipByValue(x, -0.3, 0.5)],
      ['clipByValue [0, 6]', (x) => tf.clipByValue(x, 0, 6)],
    ];
    const moderate: Spec = {
      shape: [16],
      values: Float32Array.of(0, -0, 0.5, 1.5, 2.5, -0.5, -2.5, 20, -20, 1e-30, 3, -7.25, 0.999, 8, -3.5, 4.5),
    };
    const cases: Case[] = [];
    for (const [name, op] of ops) {
      const x3 = scaled([2, 3, 4], 3);
      const x5 = rnd([2, 1, 3, 1, 2]);
      cases.push(
        { name: `${name} rank 3`, fn: () => op(T(x3)), path: 'ort' },
        { name: `${name} rank 5`, fn: () => op(T(x5)), path: 'ort' },
        { name: `${name} scalar`, fn: () => op(T(scalar(0.7))), path: 'ort' },
        { name: `${name} size 0`, fn: () => op(tf.zeros([2, 0, 3])) },
        { name: `${name} ties, zeros, large and tiny values`, fn: () => op(T(moderate)), path: 'ort' },
      );
    }
    cases.push(
      { name: 'exp of NaN and infinities', fn: () => tf.exp(T(special)), path: 'ort' },
      { name: 'log of NaN, infinities, zero, negatives', fn: () => tf.log(T(special)), path: 'ort' },
      { name: 'sqrt / rsqrt / reciprocal of specials', fn: () => [tf.sqrt(T(special)), tf.rsqrt(T(special)), tf.reciprocal(T(special))], path: 'ort' },
      { name: 'sigmoid / tanh of specials', fn: () => [tf.sigmoid(T(special)), tf.tanh(T(special))], path: 'ort' },
      { name: 'abs / neg / square / floor / ceil / round of specials', fn: () => [tf.abs(T(special)), tf.neg(T(special)), tf.square(T(special)), tf.floor(T(special)), tf.ceil(T(special)), tf.round(T(special))], path: 'ort' },
      // TF.js's cpu sign(NaN) is 0, ONNX Runtime's (like TensorFlow's and numpy's) NaN: compared without NaN.
      { name: 'sign of specials except NaN', fn: () => tf.sign(T({ shape: [15], values: special.values.slice(1) })), path: 'ort' },
      ...(['relu', 'elu', 'selu', 'softplus', 'erf', 'cos', 'sin', 'leakyRelu 0.3', 'clipByValue [-0.3, 0.5]'] as const).map(
        (name): Case => ({ name: `${name} of specials`, fn: () => ops.find((o) => o[0] === name)![1](T(special)), path: 'ort' }),
      ),
      { name: 'int32 abs / neg / square fall back', fn: () => [tf.abs(T(ints([7], -5, 5))), tf.neg(T(ints([7], -5, 5))), tf.square(T(ints([7], -5, 5)))], path: 'cpu' },
      { name: 'int32 relu / sign fall back', fn: () => [tf.relu(T(ints([7], -5, 5))), tf.sign(T(ints([7], -5, 5)))], path: 'cpu' },
    );
    table(cases);
  });

  describe('AddN', () => {
    const a = rnd([2, 3, 4]);
    const b = rnd([2, 3, 4]);
    const c = rnd([2, 3, 4]);
    const d = rnd([2, 3, 4]);
    const e = rnd([2, 3, 4]);
    table([
      { name: 'two inputs', fn: () => tf.addN([T(a), T(b)]), path: 'ort' },
      { name: 'five inputs', fn: () => tf.addN([T(a), T(b), T(c), T(d), T(e)]), path: 'ort' },
      { name: 'scalars', fn: () => tf.addN([T(scalar(1)), T(scalar(2)), T(scalar(-0.5))]), path: 'ort' },
      { name: 'one input', fn: () => tf.addN([T(a)]) },
      { name: 'size 0', fn: () => tf.addN([tf.zeros([0, 3]), tf.zeros([0, 3])]) },
      { name: 'with NaN and infinities', fn: () => tf.addN([T(special), T(special), T(grid([16]))]), path: 'ort' },
      { name: 'int32 falls back', fn: () => tf.addN([T(ints([3, 2], -5, 5)), T(ints([3, 2], -5, 5, 4))]), path: 'cpu' },
    ]);
  });

  describe('Softmax', () => {
    const masked: Spec = { shape: [2, 4], values: Float32Array.of(1, -Infinity, 2, -Infinity, -Infinity, 0.5, -Infinity, 3) };
    table([
      { name: 'rank 1', fn: () => tf.softmax(T(rnd([7]))), path: 'ort' },
      { name: 'rank 3', fn: () => tf.softmax(T(scaled([2, 3, 5], 10))), path: 'ort' },
      { name: 'rank 5 with a size-1 last axis', fn: () => tf.softmax(T(rnd([2, 1, 3, 2, 1]))), path: 'ort' },
      { name: 'dim -1 explicitly', fn: () => tf.softmax(T(rnd([3, 4])), -1), path: 'ort' },
      { name: 'large logits', fn: () => tf.softmax(T(scaled([3, 4], 200))), path: 'ort' },
      { name: 'masked with -Infinity', fn: () => tf.softmax(T(masked)), path: 'ort' },
      { name: 'size 0', fn: () => tf.softmax(tf.zeros([0, 4])) },
      { name: 'logSoftmax (composite)', fn: () => tf.logSoftmax(T(rnd([3, 5]))), path: 'ort' },
    ]);
  });

  describe('reductions', () => {
    const ops: [string, (x: tf.Tensor, axis?: number | number[], keepDims?: boolean) => tf.Tensor][] = [
      ['sum', (x, axis, keep) => tf.sum(x, axis, keep)],
      ['mean', (x, axis, keep) => tf.mean(x, axis, keep)],
      ['max', (x, axis, keep) => tf.max(x, axis, keep)],
      ['min', (x, axis, keep) => tf.min(x, axis, keep)],
      ['prod', (x, axis, keep) => tf.prod(x, axis, keep)],
    ];
    const axesList: [number[], number | number[] | undefined][] = [
      [[2, 3, 4], 0],
      [[2, 3, 4], -1],
      [[2, 3, 4], [0, 2]],
      [[2, 3, 4], [-1, -3]],
      [[2, 3, 4], undefined],
      [[2, 3, 4], [2, 0, 1]],
      [[5], 0],
      [[2, 1, 3, 1, 2], [1, 3]],
      [[2, 1, 3, 1, 2], [0, -1, 2]],
      [[1, 1, 1], -2],
    ];
    const cases: Case[] = [];
    for (const [name, op] of ops) {
      for (const [shape, axis] of axesList) {
        for (const keepDims of [false, true]) {
          const x = rnd(shape);
          cases.push({ name: `${name} ${JSON.stringify(shape)} axis ${JSON.stringify(axis ?? 'all')} keepDims ${keepDims}`, fn: () => op(T(x), axis, keepDims), path: 'ort' });
        }
      }
      const nanRows: Spec = { shape: [4, 3], values: Float32Array.of(1, NaN, 2, -Infinity, 0, 1, Infinity, -Infinity, 0, 5, 6, 7) };
      cases.push(
        { name: `${name} of a scalar`, fn: () => op(T(scalar(2.5))) },
        { name: `${name} over an empty output`, fn: () => op(tf.zeros([0, 3]), 1) },
        { name: `${name} with NaN and infinities per row`, fn: () => op(T(nanRows), 1), path: 'ort' },
        { name: `${name} with NaN and infinities per column`, fn: () => op(T(nanRows), 0, true), path: 'ort' },
        { name: `${name} int32 falls back`, fn: () => op(T(ints([3, 4], -3, 3)), 1), path: 'cpu' },
      );
    }
    cases.push(
      { name: 'max of all specials', fn: () => tf.max(T(special)), path: 'ort' },
      { name: 'min of all specials', fn: () => tf.min(T(special)), path: 'ort' },
      { name: 'sum of bool falls back', fn: () => tf.sum(bools([3, 4]), 1) },
      { name: 'argMax unaffected (cpu kernel)', fn: () => tf.argMax(T(rnd([3, 4])), 1), path: 'cpu' },
    );
    table(cases);
  });

  describe('data movement', () => {
    const x2 = rnd([3, 4]);
    const x3 = rnd([2, 3, 4]);
    const x5 = rnd([2, 3, 1, 4, 2]);
    const x4 = rnd([4, 5, 6, 2]);
    const i3 = ints([2, 3, 4], -50, 50);
    const cases: Case[] = [
      // Transpose
      { name: 'transpose rank 2', fn: () => tf.transpose(T(x2)), path: 'ort' },
      { name: 'transpose rank 3 [2, 0, 1]', fn: () => tf.transpose(T(x3), [2, 0, 1]), path: 'ort' },
      { name: 'transpose rank 3 identity perm', fn: () => tf.transpose(T(x3), [0, 1, 2]) },
      { name: 'transpose rank 5 [4, 0, 2, 1, 3]', fn: () => tf.transpose(T(x5), [4, 0, 2, 1, 3]), path: 'ort' },
      { name: 'transpose rank 1 and rank 0', fn: () => [tf.transpose(T(rnd([5]))), tf.transpose(T(scalar(3)))] },
      { name: 'transpose size 0', fn: () => tf.transpose(tf.zeros([2, 0, 3]), [2, 0, 1]), path: 'cpu' },
      { name: 'transpose int32 falls back', fn: () => tf.transpose(T(i3), [1, 2, 0]), path: 'cpu' },
      { name: 'transpose bool falls back', fn: () => tf.transpose(bools([2, 3]), [1, 0]), path: 'cpu' },
      // Slice
      { name: 'slice non-contiguous rank 3', fn: () => tf.slice(T(x4), [1, 2, 1], [2, -1, 3]), path: 'ort' },
      { name: 'slice non-contiguous rank 5', fn: () => tf.slice(T(x5), [1, 1, 0, 1, 0], [1, 2, 1, 2, 1]), path: 'ort' },
      { name: 'slice last axis only', fn: () => tf.slice(T(x2), [0, 1], [3, 2]), path: 'ort' },
      { name: 'slice contiguous (cpu view)', fn: () => tf.slice(T(x4), [1, 0, 0, 0], [2, -1, -1, -1]), path: 'cpu' },
      { name: 'slice size 0', fn: () => tf.slice(T(x4), [1, 2, 0, 0], [2, 0, 3, 2]), path: 'cpu' },
      { name: 'slice rank 1 (always contiguous)', fn: () => tf.slice(T(rnd([9])), [2], [4]), path: 'cpu' },
      { name: 'slice int32 falls back', fn: () => tf.slice(T(i3), [0, 1, 1], [2, 2, 2]), path: 'cpu' },
      { name: 'stridedSlice (composite)', fn: () => tf.stridedSlice(T(x4), [0, 1, 0, 0], [4, 5, 6, 2], [2, 2, 1, 1]) },
      // SplitV
      { name: 'split sizes along axis 1', fn: () => tf.split(T(x4), [1, 3, 1], 1), path: 'ort' },
      { name: 'split number along axis -1', fn: () => tf.split(T(x4), 2, -1), path: 'ort' },
      { name: 'split with a -1 size', fn: () => tf.split(T(x4), [2, -1], 2), path: 'ort' },
      { name: 'split along axis 0 (contiguous views)', fn: () => tf.split(T(x4), [1, 3], 0), path: 'cpu' },
      { name: 'split after leading 1s (contiguous views)', fn: () => tf.split(T(rnd([1, 1, 6, 2])), [4, 2], 2), path: 'cpu' },
      { name: 'split with a 0 size', fn: () => tf.split(T(x4), [0, 5, 0], 1), path: 'cpu' },
      { name: 'split int32 falls back', fn: () => tf.split(T(i3), [1, 3], 2), path: 'cpu' },
      { name: 'unstack (composite)', fn: () => tf.unstack(T(x3), 2) },
      // Concat
      { name: 'concat rank 1', fn: () => tf.concat([T(rnd([3])), T(rnd([1])), T(rnd([4]))]), path: 'ort' },
      { name: 'concat rank 3 axis 1', fn: () => tf.concat([T(rnd([2, 1, 4])), T(rnd([2, 3, 4]))], 1), path: 'ort' },
      { name: 'concat rank 5 axis -1', fn: () => tf.concat([T(rnd([2, 1, 2, 1, 3])), T(rnd([2, 1, 2, 1, 1])), T(rnd([2, 1, 2, 1, 2]))], -1), path: 'ort' },
      { name: 'concat axis 0', fn: () => tf.concat([T(rnd([1, 3])), T(rnd([2, 3]))], 0), path: 'ort' },
      { name: 'concat with an empty input', fn: () => tf.concat([T(rnd([2, 3])), tf.zeros([2, 0]), T(rnd([2, 2]))], 1), path: 'ort' },
      { name: 'concat of one non-empty and one empty', fn: () => tf.concat([tf.zeros([0, 3]), T(rnd([2, 3]))], 0), path: 'cpu' },
      { name: 'concat of a single tensor', fn: () => tf.concat([T(rnd([2, 3]))], 1) },
      { name: 'concat int32 falls back', fn: () => tf.concat([T(ints([2, 2], 0, 9)), T(ints([2, 1], 0, 9, 3))], 1), path: 'cpu' },
      { name: 'concat bool falls back', fn: () => tf.concat([bools([3]), bools([2], 8)]), path: 'cpu' },
      { name: 'stack (composite)', fn: () => tf.stack([T(rnd([2, 3])), T(rnd([2, 3]))], 1) },
      // PadV2
      { name: 'pad rank 2 with a constant', fn: () => tf.pad(T(x2), [[1, 2], [0, 3]], 0.5), path: 'ort' },
      { name: 'pad rank 1', fn: () => tf.pad(T(rnd([4])), [[3, 0]]), path: 'ort' },
      { name: 'pad rank 5', fn: () => tf.pad(T(x5), [[0, 1], [1, 0], [2, 2], [0, 0], [1, 1]], -2), path: 'ort' },
      { name: 'pad with zeros everywhere', fn: () => tf.pad(T(x3), [[0, 0], [0, 0], [0, 0]]), path: 'ort' },
      { name: 'pad of an empty tensor', fn: () => tf.pad(tf.zeros([0, 2]), [[1, 1], [0, 1]], 3), path: 'cpu' },
      { name: 'pad with NaN constant', fn: () => tf.pad(T(x2), [[1, 0], [0, 1]], NaN), path: 'ort' },
      { name: 'pad int32 falls back', fn: () => tf.pad(T(i3), [[1, 0], [0, 1], [2, 0]], 7), path: 'cpu' },
      // GatherV2
      { name: 'gather axis 0', fn: () => tf.gather(T(x4), T(ints([5], 0, 3)), 0), path: 'ort' },
      { name: 'gather axis 1 with repeats', fn: () => tf.gather(T(x4), T({ shape: [4], values: Int32Array.of(4, 0, 4, 2) }), 1), path: 'ort' },
      { name: 'gather axis -1', fn: () => tf.gather(T(x4), T({ shape: [3], values: Int32Array.of(1, 1, 0) }), -1), path: 'ort' },
      { name: 'gather rank-2 indices', fn: () => tf.gather(T(x3), T(ints([2, 5], 0, 2)), 1), path: 'ort' },
      { name: 'gather scalar index', fn: () => tf.gather(T(x3), T({ shape: [], values: Int32Array.of(2) }), 2), path: 'ort' },
      { name: 'gather from rank 1', fn: () => tf.gather(T(rnd([7])), T(ints([9], 0, 6))), path: 'ort' },
      { name: 'gather with no indices', fn: () => tf.gather(T(x3), T({ shape: [0], values: new Int32Array(0) }), 1), path: 'cpu' },
      { name: 'gather batchDims 1 falls back', fn: () => tf.gather(T(x3), T(ints([2, 2], 0, 2)), 1, 1), path: 'cpu' },
      { name: 'gather int32 values falls back', fn: () => tf.gather(T(i3), T(ints([3], 0, 1)), 0), path: 'cpu' },
      { name: 'gather bool values falls back', fn: () => tf.gather(bools([5, 2]), T(ints([3], 0, 4)), 0), path: 'cpu' },
      // Tile
      { name: 'tile rank 2', fn: () => tf.tile(T(x2), [2, 1]), path: 'ort' },
      { name: 'tile rank 1', fn: () => tf.tile(T(rnd([3])), [4]), path: 'ort' },
      { name: 'tile rank 5', fn: () => tf.tile(T(x5), [1, 2, 3, 1, 2]), path: 'ort' },
      { name: 'tile with a 0 repeat', fn: () => tf.tile(T(x2), [0, 2]), path: 'cpu' },
      { name: 'tile int32 falls back', fn: () => tf.tile(T(i3), [2, 1, 2]), path: 'cpu' },
      { name: 'tile bool falls back', fn: () => tf.tile(bools([2, 2]), [1, 3]), path: 'cpu' },
      { name: 'broadcastTo (tile / reshape)', fn: () => tf.broadcastTo(T(rnd([3, 1])), [2, 3, 4]) },
    ];
    for (const c of cases) c.exact = true;
    table(cases);
  });

  describe('int32 and bool data cast to float32 (the feed converts the cpu cast\'s source array)', () => {
    const i = ints([4, 8], -20, 20);
    const x = rnd([4, 8]);
    table([
      { name: 'exp of cast int32', fn: () => tf.exp(tf.cast(T(i), 'float32')), path: 'ort' },
      { name: 'add of cast bool and float', fn: () => tf.add(tf.cast(bools([4, 8]), 'float32'), T(x)), path: 'ort' },
      { name: 'matMul of cast int32', fn: () => tf.matMul(tf.cast(T(i), 'float32'), T(x), false, true), path: 'ort' },
      { name: 'transpose of cast bool', fn: () => tf.transpose(tf.cast(bools([4, 8], 5), 'float32')), path: 'ort', exact: true },
      { name: 'where / mask arithmetic', fn: () => tf.where(tf.greater(T(x), 0), T(x), tf.mul(T(x), 0.1)), path: 'ort' },
    ]);
  });

  describe('larger sizes (multi-threaded ONNX Runtime paths)', () => {
    const big = rnd([64, 300]);
    const nanRow: Spec = { shape: [3, 1000], values: randoms(3000, 17).map((v, j) => (j === 1500 || j === 2999 ? NaN : v)) };
    const a = rnd([96, 128]);
    const b = rnd([128, 80]);
    table([
      { name: 'broadcast add [64, 300] + [300]', fn: () => tf.add(T(big), T(rnd([300]))), path: 'ort' },
      { name: 'sum / mean over the last axis', fn: () => [tf.sum(T(big), -1), tf.mean(T(big), 0, true)], path: 'ort', tol: 1e-4 },
      { name: 'max / min over long rows with NaN in the middle and at the end', fn: () => [tf.max(T(nanRow), 1), tf.min(T(nanRow), 1), tf.max(T(nanRow)), tf.min(T(nanRow), 0)], path: 'ort' },
      { name: 'softmax over 300', fn: () => tf.softmax(T(big)), path: 'ort' },
      { name: 'matMul 96x128 @ 128x80', fn: () => tf.matMul(T(a), T(b)), path: 'ort', tol: 1e-4 },
      { name: 'transpose [64, 300]', fn: () => tf.transpose(T(big)), path: 'ort', exact: true },
    ]);
  });

  describe('size threshold', () => {
    const small = rnd([4, 8]);
    const large = rnd([32, 64]);
    let saved = 0;
    before(() => {
      saved = setOrtMinElements(1024);
    });
    after(() => {
      setOrtMinElements(saved);
    });
    table([
      { name: 'small element-wise ops stay on the cpu kernels', fn: () => [tf.exp(T(small)), tf.add(T(small), T(small)), tf.transpose(T(small))], path: 'cpu' },
      { name: 'large element-wise ops go to ONNX Runtime', fn: () => tf.add(tf.exp(T(large)), T(large)), path: 'ort' },
      { name: 'small matmuls (under 16 x 1024 multiply-adds) stay on the cpu kernel', fn: () => tf.matMul(T(small), T(small), false, true), path: 'cpu' },
      { name: 'larger matmuls go to ONNX Runtime', fn: () => tf.matMul(T(large), T(large), false, true), path: 'ort' },
    ]);
  });

  describe('gather out of range', () => {
    const x = rnd([4, 3]);
    for (const bad of [4, -1, 100]) {
      test(`index ${bad} throws on both backends`, async () => {
        const fn = (): tf.Tensor => tf.gather(T(x), T({ shape: [3], values: Int32Array.of(0, bad, 1) }), 0);
        const messages: string[] = [];
        for (const backend of ['cpu', 'onnxruntime'] as const) {
          await setBackend(backend);
          const before = tf.memory().numTensors;
          assert.throws(() => tf.tidy(fn), (e: unknown) => {
            messages.push((e as Error).message);
            return true;
          });
          assert.equal(tf.memory().numTensors, before, `${backend} leaked tensors after the error`);
        }
        assert.equal(messages[1], messages[0]);
        assert.match(messages[0]!, /GatherV2: the index value/);
      });
    }
  });

  describe('gradients', () => {
    /** Gradients of sum(f(xs) * dy) with respect to every input, plus the forward value. */
    const grads = (specs: Spec[], f: (...xs: tf.Tensor[]) => tf.Tensor, outShape: number[]): (() => tf.Tensor[]) => {
      const dy: Spec = { shape: outShape, values: randoms(outShape.reduce((m, n) => m * n, 1), 99) };
      return () => {
        const xs = specs.map(T);
        const g = tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(f(...ys), T(dy))));
        return [f(...xs), ...g(xs)];
      };
    };
    const a = rnd([3, 4]);
    const b = rnd([4, 5]);
    const a4 = rnd([2, 1, 3, 4]);
    const b3 = rnd([5, 4, 6]);
    const bias = rnd([5]);
    const cases: Case[] = [];
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const sa = ta ? rnd([4, 3]) : a;
        const sb = tb ? rnd([5, 4]) : b;
        cases.push({ name: `matMul ta=${ta} tb=${tb}`, fn: grads([sa, sb], (x, y) => tf.matMul(x!, y!, ta, tb), [3, 5]), path: 'ort' });
      }
    }
    const x = rnd([2, 7, 9, 3]);
    const f = rnd([3, 3, 3, 2]);
    const xc = rnd([2, 3, 7, 9]);
    const x3 = scaled([2, 3, 5], 3);
    const x4 = rnd([4, 5, 6, 2]);
    cases.push(
      {
        name: 'matMul batch broadcast [2,1,3,4]@[5,4,6]',
        // TF.js's BatchMatMul gradient does not reduce broadcast batch dims (on any backend): broadcast explicitly.
        fn: grads([a4, b3], (p, q) => tf.matMul(tf.broadcastTo(p!, [2, 5, 3, 4]), tf.broadcastTo(q!, [2, 5, 4, 6])), [2, 5, 3, 6]),
        path: 'ort',
      },
      {
        name: 'fused matMul with bias (linear)',
        fn: grads([a, b, bias], (p, q, r) => tf.fused.matMul({ a: p!, b: q!, bias: r! }), [3, 5]),
        path: 'ort',
      },
      {
        name: 'fused matMul with bias and relu',
        fn: grads([a, b, bias], (p, q, r) => tf.fused.matMul({ a: p!, b: q!, bias: r!, activation: 'relu' }), [3, 5]),
        path: 'ort',
      },
      { name: 'conv2d stride 2 same, odd sizes', fn: grads([x, f], (p, q) => tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 2, 'same'), [2, 4, 5, 2]), path: 'ort' },
      { name: 'conv2d valid', fn: grads([x, f], (p, q) => tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 1, 'valid'), [2, 5, 7, 2]), path: 'ort' },
      {
        name: 'conv2d explicit padding, stride [2, 3]',
        fn: grads([x, f], (p, q) => tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, [2, 3], [[0, 0], [1, 2], [0, 1], [0, 0]]), [2, 4, 3, 2]),
        path: 'ort',
      },
      { name: 'conv2d NCHW stride 2 same', fn: grads([xc, f], (p, q) => tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 2, 'same', 'NCHW'), [2, 2, 4, 5]), path: 'ort' },
      { name: 'softmax', fn: grads([x3], (p) => tf.softmax(p!), [2, 3, 5]), path: 'ort' },
      { name: 'slice (non-contiguous)', fn: grads([x4], (p) => tf.slice(p!, [1, 2, 1, 0], [2, 3, 4, 1]), [2, 3, 4, 1]), path: 'ort' },
      { name: 'slice (contiguous)', fn: grads([x4], (p) => tf.slice(p!, [1, 0, 0, 0], [2, 5, 6, 2]), [2, 5, 6, 2]) },
      { name: 'concat', fn: grads([rnd([2, 3, 4]), rnd([2, 1, 4])], (p, q) => tf.concat([p!, q!], 1), [2, 4, 4]), path: 'ort' },
      {
        name: 'gather',
        fn: grads([x4], (p) => tf.gather(p!, T({ shape: [4], values: Int32Array.of(4, 0, 4, 2) }), 1), [4, 4, 6, 2]),
        path: 'ort',
      },
      { name: 'pad', fn: grads([x3], (p) => tf.pad(p!, [[1, 0], [0, 2], [3, 1]], 0.25), [3, 5, 9]), path: 'ort' },
      { name: 'split', fn: grads([x4], (p) => tf.concat(tf.split(p!, [2, 4], 2).reverse(), 2), [4, 5, 6, 2]), path: 'ort' },
      { name: 'tile', fn: grads([rnd([2, 3])], (p) => tf.tile(p!, [2, 3]), [4, 9]), path: 'ort' },
      { name: 'transpose', fn: grads([x4], (p) => tf.transpose(p!, [3, 1, 0, 2]), [2, 5, 4, 6]), path: 'ort' },
      {
        name: 'broadcasting binary ops',
        fn: grads([rnd([2, 1, 4]), positive([3, 1])], (p, q) => tf.add(tf.mul(p!, q!), tf.div(p!, q!)), [2, 3, 4]),
        path: 'ort',
      },
      { name: 'reductions', fn: grads([x3], (p) => tf.add(tf.add(tf.sum(p!, 1, true), tf.mean(p!, [0, 1], true)), tf.max(p!, -2, true)), [2, 1, 5]), path: 'ort' },
      { name: 'unary chain', fn: grads([x3], (p) => tf.tanh(tf.sigmoid(tf.exp(tf.neg(tf.square(p!))))), [2, 3, 5]), path: 'ort' },
    );
    table(cases);
  });
});
