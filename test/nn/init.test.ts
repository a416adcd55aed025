import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import type { tf } from '../../src/engine/tf.js';
import { ConfigError } from '../../src/errors.js';
import { Conv1D, Conv2d, Embedding, Linear, init } from '../../src/nn/index.js';
import { pyFloat } from '../../src/nn/repr.js';
import { assertNoLeak } from '../helpers/assert.js';

process.env['PEFT_TS_QUIET'] = '1';

function stats(t: tf.Tensor): { min: number; max: number; mean: number; std: number } {
  const v = t.dataSync();
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = sum / v.length;
  let sq = 0;
  for (const x of v) sq += (x - mean) ** 2;
  return { min, max, mean, std: Math.sqrt(sq / v.length) };
}

describe('nn.init (PyTorch torch.nn.init semantics)', () => {
  before(async () => {
    await setBackend('cpu');
  });

  test('computeFans and calculateGain', () => {
    assert.deepEqual(init.computeFans([8, 3, 5, 5]), { fanIn: 75, fanOut: 200 });
    assert.deepEqual(init.computeFans([10, 4]), { fanIn: 4, fanOut: 10 });
    assert.throws(() => init.computeFans([4]), ConfigError);
    assert.equal(init.calculateGain('relu'), Math.SQRT2);
    assert.equal(init.calculateGain('tanh'), 5 / 3);
    assert.equal(init.calculateGain('linear'), 1);
    assert.ok(Math.abs(init.calculateGain('leaky_relu', Math.sqrt(5)) - Math.sqrt(1 / 3)) < 1e-12);
  });

  test('kaimingUniform(a = sqrt 5) draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)); seeds reproduce', () => {
    const shape = [256, 64];
    const w = init.kaimingUniform(shape, { a: Math.sqrt(5), seed: 11 });
    const s = stats(w);
    const bound = 1 / Math.sqrt(64);
    assert.ok(s.min >= -bound && s.max <= bound, 'within the bound');
    assert.ok(s.max > 0.95 * bound && s.min < -0.95 * bound, 'fills the interval');
    assert.ok(Math.abs(s.std - bound / Math.sqrt(3)) < 0.01 * bound * 3, `std ${s.std}`);
    const again = init.kaimingUniform(shape, { a: Math.sqrt(5), seed: 11 });
    assert.deepEqual(again.dataSync(), w.dataSync());
    const other = init.kaimingUniform(shape, { a: Math.sqrt(5), seed: 12 });
    assert.notDeepEqual(other.dataSync(), w.dataSync());
    // explicit fan_in override (LoRA-style use on a tensor that is not [out, in])
    const custom = stats(init.kaimingUniform([1000], { a: Math.sqrt(5), fanIn: 16, seed: 1 }));
    assert.ok(custom.max <= 0.25 && custom.max > 0.24);
  });

  test('kaimingNormal, normal, xavier', () => {
    const kn = stats(init.kaimingNormal([128, 200], { nonlinearity: 'relu', seed: 1 }));
    assert.ok(Math.abs(kn.std - Math.sqrt(2 / 200)) < 0.005, `kaiming normal std ${kn.std}`);
    const kfo = stats(init.kaimingNormal([400, 100], { mode: 'fan_out', nonlinearity: 'relu', seed: 2 }));
    assert.ok(Math.abs(kfo.std - Math.sqrt(2 / 400)) < 0.005, `fan_out std ${kfo.std}`);
    const n = stats(init.normal([20000], 1, 0.5, { seed: 3 }));
    assert.ok(Math.abs(n.mean - 1) < 0.02 && Math.abs(n.std - 0.5) < 0.02);
    const xu = stats(init.xavierUniform([30, 70], { seed: 4 }));
    const xb = Math.sqrt(6 / 100);
    assert.ok(xu.min >= -xb && xu.max <= xb && xu.max > 0.95 * xb);
    const xn = stats(init.xavierNormal([300, 700], { gain: 2, seed: 5 }));
    assert.ok(Math.abs(xn.std - 2 * Math.sqrt(2 / 1000)) < 0.003);
    assert.deepEqual([...init.zeros([2]).dataSync()], [0, 0]);
    assert.deepEqual([...init.ones([2]).dataSync()], [1, 1]);
    assert.deepEqual([...init.uniform([2], 3, 3).dataSync()], [3, 3]);
  });

  test('layers initialise as PyTorch does', () => {
    const lin = new Linear(50, 300, { seed: 1 });
    const lw = stats(lin.weight);
    const lb = stats(lin.bias!);
    const bound = 1 / Math.sqrt(50);
    assert.ok(lw.min >= -bound && lw.max <= bound && lw.max > 0.9 * bound);
    assert.ok(lb.min >= -bound && lb.max <= bound && lb.max > 0.8 * bound);
    assert.notDeepEqual(lin.weight.dataSync().slice(0, 300), lin.bias!.dataSync(), 'bias draws its own stream');

    const conv = new Conv2d(6, 40, 3, { groups: 2, seed: 2 });
    const cb = 1 / Math.sqrt(3 * 9);
    const cw = stats(conv.weight);
    assert.ok(cw.min >= -cb && cw.max <= cb && cw.max > 0.9 * cb);

    const emb = new Embedding(100, 64, { seed: 3 });
    const es = stats(emb.weight);
    assert.ok(Math.abs(es.std - 1) < 0.03 && Math.abs(es.mean) < 0.03);

    const c1 = new Conv1D(200, 100, { seed: 4 });
    assert.ok(Math.abs(stats(c1.weight).std - 0.02) < 0.001);
    assert.deepEqual(stats(c1.bias), { min: 0, max: 0, mean: 0, std: 0 });

    // seeded layers are reproducible
    assert.deepEqual(new Linear(5, 4, { seed: 9 }).weight.dataSync(), new Linear(5, 4, { seed: 9 }).weight.dataSync());
    // skipInit gives zeros without drawing
    const skipped = new Linear(5, 4, { skipInit: true });
    assert.deepEqual(stats(skipped.weight), { min: 0, max: 0, mean: 0, std: 0 });
    for (const m of [lin, conv, emb, c1, skipped]) m.dispose();
  });

  test('initialisers leave no intermediates behind', async () => {
    await assertNoLeak(() => {
      init.kaimingUniform([4, 4], { a: Math.sqrt(5) }).dispose();
      init.xavierNormal([4, 4]).dispose();
      const { weight, bias } = init.defaultLayerInit([3, 2, 2, 2], [3], { seed: 1 });
      weight.dispose();
      bias!.dispose();
      new Embedding(5, 2, { paddingIdx: 0 }).dispose();
    }, 'init');
  });

  test('pyFloat formats like Python repr', () => {
    assert.equal(pyFloat(1e-5), '1e-05');
    assert.equal(pyFloat(1e-6), '1e-06');
    assert.equal(pyFloat(0.1), '0.1');
    assert.equal(pyFloat(0.0001), '0.0001');
    assert.equal(pyFloat(2.5e-7), '2.5e-07');
    assert.equal(pyFloat(1), '1.0');
    assert.equal(pyFloat(0), '0.0');
    assert.equal(pyFloat(1e20), '1e+20');
  });
});
