// The routed wasm BatchMatMul / _FusedMatMul (src/engine/kernels/matmul.ts) against the cpu backend: all four
// transpose combinations, 2-D and batched (with broadcast batch dimensions), fused bias / activation, and
// gradients, with routing forced on (every strategy runs) and with the automatic choice.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { setMatMulRouting } from '../../src/engine/kernels/matmul.js';
import type { MatMulRouting } from '../../src/engine/kernels/matmul.js';
import { tf } from '../../src/engine/tf.js';
import { assertAllClose, assertNoLeak } from '../helpers/assert.js';
import type { Result } from './_compare.js';
import { rand, runOn, toTensor } from './_compare.js';

const TOL = { atol: 2e-4, rtol: 2e-4 };

after(() => setMatMulRouting('auto'));

function assertSame(actual: Result[], expected: Result[], what: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    assert.deepEqual(a.shape, expected[i]!.shape, `${what} output ${i} shape`);
    assertAllClose(a.values, expected[i]!.values, TOL, `${what} output ${i}`);
  });
}

async function compare(fn: () => tf.Tensor | tf.Tensor[], what: string, modes: MatMulRouting[] = ['always', 'auto']): Promise<void> {
  const cpu = await runOn('cpu', fn);
  for (const mode of modes) {
    setMatMulRouting(mode);
    try {
      assertSame(await runOn('wasm', fn), cpu, `${what} [routing ${mode}]`);
    } finally {
      setMatMulRouting('auto');
    }
  }
}

function operand(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return transposed ? [...batch, cols, rows] : [...batch, rows, cols];
}

const forms = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

describe('wasm BatchMatMul routing equals cpu', () => {
  const layouts: { name: string; a: number[]; b: number[] }[] = [
    { name: '2-D', a: [], b: [] },
    { name: 'batched [3] x [3]', a: [3], b: [3] },
    { name: 'batched [2, 3] x [2, 3]', a: [2, 3], b: [2, 3] },
    { name: 'broadcast [2, 3] x unbatched', a: [2, 3], b: [] },
    { name: 'broadcast [4] x [1]', a: [4], b: [1] },
    { name: 'broadcast unbatched x [3]', a: [], b: [3] },
    { name: 'broadcast [1] x [2, 2]', a: [1], b: [2, 2] },
  ];
  for (const layout of layouts) {
    for (const [ta, tb] of forms) {
      test(`${layout.name}, transposeA=${ta} transposeB=${tb}`, async () => {
        const [m, k, n] = [13, 37, 11];
        const a = rand(operand(layout.a, m, k, ta));
        const b = rand(operand(layout.b, k, n, tb));
        await compare(() => tf.matMul(toTensor(a), toTensor(b), ta, tb), layout.name);
      });
    }
  }

  test('large enough for the automatic routing to take the fast path', async () => {
    for (const [ta, tb] of forms) {
      const a = rand(operand([], 256, 192, ta));
      const b = rand(operand([], 192, 160, tb));
      await compare(() => tf.matMul(toTensor(a), toTensor(b), ta, tb), `256x192x160 ta=${ta} tb=${tb}`, ['auto']);
    }
    const a = rand([4, 64, 96]);
    const b = rand([96, 128]);
    await compare(() => tf.matMul(toTensor(a), toTensor(b)), '[4, 64, 96] x [96, 128]', ['auto']);
  });

  test('a matrix-vector product and a 1-row product', async () => {
    const a = rand([1, 50]);
    const b = rand([30, 50]);
    await compare(() => tf.matMul(toTensor(a), toTensor(b), false, true), '1x50 @ (30x50)^T');
    const v = rand([50]);
    await compare(() => tf.dot(toTensor(b), toTensor(v)), 'dot');
  });
});

describe('wasm _FusedMatMul routing equals cpu', () => {
  for (const [ta, tb] of forms) {
    for (const activation of ['linear', 'relu'] as const) {
      test(`bias + ${activation}, transposeA=${ta} transposeB=${tb}`, async () => {
        const [m, k, n] = [9, 21, 14];
        const a = rand(operand([], m, k, ta));
        const b = rand(operand([], k, n, tb));
        const bias = rand([n]);
        await compare(
          () => tf.fused.matMul({ a: toTensor(a) as tf.Tensor2D, b: toTensor(b) as tf.Tensor2D, transposeA: ta, transposeB: tb, bias: toTensor(bias), activation }),
          `fused ${activation}`,
        );
      });
    }
  }

  test('batched a against an unbatched b, with bias', async () => {
    const a = rand([3, 8, 16]);
    const b = rand([12, 16]);
    const bias = rand([12]);
    await compare(() => tf.fused.matMul({ a: toTensor(a) as tf.Tensor3D, b: toTensor(b) as tf.Tensor2D, transposeB: true, bias: toTensor(bias), activation: 'relu' }), 'fused batched');
  });

  test('batched on both sides, with and without bias', async () => {
    const a = rand([2, 8, 16]);
    const b = rand([2, 12, 16]);
    const bias = rand([12]);
    await compare(() => tf.fused.matMul({ a: toTensor(a) as tf.Tensor3D, b: toTensor(b) as tf.Tensor3D, transposeB: true }), 'fused batched both');
    await compare(
      () => tf.fused.matMul({ a: toTensor(a) as tf.Tensor3D, b: toTensor(b) as tf.Tensor3D, transposeB: true, bias: toTensor(bias), activation: 'relu' }),
      'fused batched both, bias',
    );
  });

  test('shared a against a batched b, with bias', async () => {
    const a = rand([1, 8, 16]);
    const b = rand([3, 16, 12]);
    const bias = rand([12]);
    await compare(() => tf.fused.matMul({ a: toTensor(a) as tf.Tensor3D, b: toTensor(b) as tf.Tensor3D, bias: toTensor(bias) }), 'fused shared a, bias');
  });

  // TF.js 4.22's own wasm kernel adds bias[min(row * N + col, N - 1)] (the last bias entry on every row after
  // the first) whenever it is off its XNNPACK path: a transpose flag or a batch. Routing takes every biased
  // product onto the XNNPACK path, whatever its size.
  test('a small transposed product with bias is correct under automatic routing', async () => {
    const a = rand([3, 4]);
    const b = rand([5, 4]);
    const bias = rand([5]);
    await compare(() => tf.fused.matMul({ a: toTensor(a) as tf.Tensor2D, b: toTensor(b) as tf.Tensor2D, transposeB: true, bias: toTensor(bias) }), 'tiny fused', ['auto']);
  });

  test('a one-entry bias (broadcast to every column) stays correct', async () => {
    const a = rand([2, 6, 4]);
    const b = rand([5, 4]);
    const bias = rand([1]);
    await compare(() => tf.fused.matMul({ a: toTensor(a) as tf.Tensor3D, b: toTensor(b) as tf.Tensor2D, transposeB: true, bias: toTensor(bias) }), 'scalar bias');
  });
});

describe('gradients through routed matmuls equal cpu', () => {
  // TF.js's BatchMatMul gradient does not reduce broadcast batch dimensions (on any backend), so layers fold
  // their batch into rows first, as src/nn/linear.ts does.
  test('Linear layers in [out, in] layout (x @ W^T)', async () => {
    const x = rand([10, 24]);
    const w1 = rand([32, 24]);
    const w2 = rand([8, 32]);
    const fn = (): tf.Tensor[] => {
      const [tx, t1, t2] = [toTensor(x), toTensor(w1), toTensor(w2)];
      const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor => tf.sum(tf.square(tf.matMul(tf.relu(tf.matMul(a, b, false, true)), c, false, true)));
      return tf.grads(loss)([tx, t1, t2]);
    };
    await compare(fn, 'linear grads');
  });

  test('attention-shaped batched products', async () => {
    const q = rand([2, 3, 7, 8]);
    const k = rand([2, 3, 7, 8]);
    const v = rand([2, 3, 7, 8]);
    const fn = (): tf.Tensor[] => {
      const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor => tf.sum(tf.square(tf.matMul(tf.softmax(tf.matMul(a, b, false, true)), c)));
      return tf.grads(loss)([toTensor(q), toTensor(k), toTensor(v)]);
    };
    await compare(fn, 'attention grads');
  });
});

describe('routed matmuls do not leak', () => {
  test('every strategy', async () => {
    await setBackend('wasm');
    setMatMulRouting('always');
    try {
      const shapes: [number[], number[], boolean, boolean][] = [
        [[6, 5], [4, 5], false, true],
        [[5, 6], [5, 4], true, false],
        [[3, 6, 5], [5, 4], false, false],
        [[6, 5], [3, 5, 4], false, false],
        [[3, 6, 5], [3, 4, 5], false, true],
      ];
      const ts = shapes.map(([a, b]) => [tf.randomNormal(a), tf.randomNormal(b)] as const);
      await assertNoLeak(() => {
        shapes.forEach(([, , ta, tb], i) => {
          const [a, b] = ts[i]!;
          tf.matMul(a, b, ta, tb).dispose();
          if (a.rank === b.rank) tf.dispose(tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.matMul(x, y, ta, tb)))([a, b]));
          tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, transposeA: ta, transposeB: tb, activation: 'relu' }).dispose();
        });
      }, 'routed matmuls');
      // The backend's own count of data buffers is back where it was too (no intermediate left behind).
      const before = tf.engine().backend.numDataIds();
      tf.matMul(ts[4]![0], ts[4]![1], false, true).dispose();
      tf.matMul(ts[3]![0], ts[3]![1]).dispose();
      assert.equal(tf.engine().backend.numDataIds(), before);
      tf.dispose(ts.flat());
    } finally {
      setMatMulRouting('auto');
    }
  });
});
