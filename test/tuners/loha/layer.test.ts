// LoHa layers against PEFT's `tuners/loha/layer.py` semantics: parameter shapes, initialisation, the delta weight
// (flat and Tucker), the forward (base op applied with ΔW), rank and module dropout, merge, gradients.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { MergeError } from '../../../src/errors.js';
import { Conv1d, Conv2d, Linear, conv2dNCHW, linear } from '../../../src/nn/index.js';
import { LoHaConv1d, LoHaConv2d, LoHaLinear } from '../../../src/tuners/loha/layer.js';
import type { LoHaLayer, LoHaLayerOptions } from '../../../src/tuners/loha/layer.js';
import { tuckerRebuild } from '../../../src/tuners/lycoris.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';

before(async () => {
  await setBackend();
});

const opts = (o: Partial<LoHaLayerOptions> = {}): LoHaLayerOptions => ({
  r: 4,
  alpha: 8,
  rankDropout: 0,
  moduleDropout: 0,
  initWeights: true,
  useEffectiveConv2d: false,
  ...o,
});

const shapes = (layer: LoHaLayer, name = 'default') =>
  Object.fromEntries(layer.adapterLayerNames.flatMap((role) => {
    const dict = (layer as unknown as Record<string, { get(n: string): tf.Variable | undefined }>)[role]!;
    const p = dict.get(name);
    return p ? [[role, p.shape]] : [];
  }));

const params = (layer: LoHaLayer, name = 'default') =>
  layer.adapterLayerNames.flatMap((role) => {
    const p = (layer as unknown as Record<string, { get(n: string): tf.Variable | undefined }>)[role]!.get(name);
    return p ? [[role, p] as const] : [];
  });

function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

describe('LoHa parameter shapes (PEFT create_adapter_parameters)', () => {
  test('Linear: w*_a [out, r], w*_b [r, in], no Tucker cores', () => {
    const layer = new LoHaLinear(new Linear(6, 5, { seed: 1 }), 'default', opts({ r: 3 }));
    assert.deepEqual(shapes(layer), { hada_w1_a: [5, 3], hada_w1_b: [3, 6], hada_w2_a: [5, 3], hada_w2_b: [3, 6] });
    layer.dispose();
  });

  test('Conv2d 5->10 k3, r 8: flat [10, 8] / [8, 45]; effective [8, 10] / [8, 5] / t [8, 8, 3, 3]', () => {
    const flat = new LoHaConv2d(new Conv2d(5, 10, 3, { seed: 1 }), 'default', opts({ r: 8 }));
    assert.deepEqual(shapes(flat), { hada_w1_a: [10, 8], hada_w1_b: [8, 45], hada_w2_a: [10, 8], hada_w2_b: [8, 45] });
    const eff = new LoHaConv2d(new Conv2d(5, 10, 3, { seed: 1 }), 'default', opts({ r: 8, useEffectiveConv2d: true }));
    assert.deepEqual(shapes(eff), {
      hada_w1_a: [8, 10], hada_w1_b: [8, 5], hada_w2_a: [8, 10], hada_w2_b: [8, 5], hada_t1: [8, 8, 3, 3], hada_t2: [8, 8, 3, 3],
    });
    assert.equal(eff.isEffective('default'), true);
    flat.dispose();
    eff.dispose();
  });

  test('Conv1d 64->16 k2, r 2: effective core [2, 2, 2, 1] (trailing 1), flat [16, 2] / [2, 128]', () => {
    const eff = new LoHaConv1d(new Conv1d(64, 16, 2, { seed: 1 }), 'default', opts({ r: 2, useEffectiveConv2d: true }));
    assert.deepEqual(shapes(eff), {
      hada_w1_a: [2, 16], hada_w1_b: [2, 64], hada_w2_a: [2, 16], hada_w2_b: [2, 64], hada_t1: [2, 2, 2, 1], hada_t2: [2, 2, 2, 1],
    });
    const flat = new LoHaConv1d(new Conv1d(64, 16, 2, { seed: 1 }), 'default', opts({ r: 2 }));
    assert.deepEqual(shapes(flat), { hada_w1_a: [16, 2], hada_w1_b: [2, 128], hada_w2_a: [16, 2], hada_w2_b: [2, 128] });
    eff.dispose();
    flat.dispose();
  });

  test('grouped Conv2d 16->16 k3 groups 8, r 8: in_channels / groups (flat w1_b [8, 18])', () => {
    const layer = new LoHaConv2d(new Conv2d(16, 16, 3, { groups: 8, seed: 1 }), 'default', opts({ r: 8 }));
    assert.deepEqual(shapes(layer)['hada_w1_b'], [8, 18]);
    const eff = new LoHaConv2d(new Conv2d(16, 16, 3, { groups: 8, seed: 1 }), 'default', opts({ r: 8, useEffectiveConv2d: true }));
    assert.deepEqual(shapes(eff)['hada_w1_b'], [8, 2]);
    layer.dispose();
    eff.dispose();
  });

  test('1x1 Conv2d and k=1 Conv1d stay flat with useEffectiveConv2d', () => {
    const c2 = new LoHaConv2d(new Conv2d(8, 6, 1, { seed: 1 }), 'default', opts({ useEffectiveConv2d: true }));
    const c1 = new LoHaConv1d(new Conv1d(8, 6, 1, { seed: 1 }), 'default', opts({ useEffectiveConv2d: true }));
    assert.deepEqual(shapes(c2), { hada_w1_a: [6, 4], hada_w1_b: [4, 8], hada_w2_a: [6, 4], hada_w2_b: [4, 8] });
    assert.deepEqual(shapes(c1), { hada_w1_a: [6, 4], hada_w1_b: [4, 8], hada_w2_a: [6, 4], hada_w2_b: [4, 8] });
    c1.dispose();
    c2.dispose();
  });

  test('r must be a positive integer', () => {
    assert.throws(() => new LoHaLinear(new Linear(4, 4), 'default', opts({ r: 0 })), /positive integer/);
  });
});

describe('LoHa initialisation (PEFT reset_adapter_parameters / _random)', () => {
  test('initWeights true: hada_w2_b is zero, so ΔW = 0 and the layer equals its base; the rest kaiming-uniform(a=√5)', () => {
    const base = new Conv2d(16, 32, 3, { seed: 2 });
    const layer = new LoHaConv2d(base, 'default', opts({ r: 8, useEffectiveConv2d: true, seed: 5 }));
    const fanIn: Record<string, number> = { hada_w1_a: 32, hada_w1_b: 16, hada_w2_a: 32, hada_t1: 8 * 9, hada_t2: 8 * 9 };
    for (const [role, p] of params(layer)) {
      const v = Array.from(p.dataSync());
      if (role === 'hada_w2_b') {
        assert.ok(v.every((x) => x === 0), role);
        continue;
      }
      const bound = 1 / Math.sqrt(fanIn[role]!);
      const maxAbs = Math.max(...v.map(Math.abs));
      assert.ok(maxAbs <= bound && maxAbs > 0.7 * bound, `${role}: max |v| ${maxAbs} vs bound ${bound}`);
      const variance = v.reduce((s, x) => s + x * x, 0) / v.length;
      assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.35, `${role}: variance ${variance} vs U(-b, b) ${bound * bound / 3}`);
    }
    const delta = layer.getDeltaWeight('default');
    assert.ok(delta.dataSync().every((x) => x === 0));
    const x = randn([2, 16, 6, 6], 3);
    assertAllClose(layer.forward(x), base.forward(x), { atol: 0, rtol: 0 });
    layer.dispose();
  });

  test('initWeights false: every tensor kaiming-uniform, ΔW non-zero', () => {
    const layer = new LoHaLinear(new Linear(64, 48, { seed: 2 }), 'default', opts({ r: 8, initWeights: false, seed: 7 }));
    const w2b = layer.hada_w2_b.get('default')!.dataSync();
    const bound = 1 / Math.sqrt(64);
    assert.ok(w2b.every((x) => Math.abs(x) <= bound) && Math.max(...w2b.map(Math.abs)) > 0.8 * bound);
    assert.ok(tf.max(tf.abs(layer.getDeltaWeight('default'))).dataSync()[0]! > 1e-3);
    layer.dispose();
  });

  test('seeded layers draw the same tensors; skipInit gives zeros', () => {
    const a = new LoHaLinear(new Linear(8, 8, { seed: 1 }), 'default', opts({ initWeights: false, seed: 11 }));
    const b = new LoHaLinear(new Linear(8, 8, { seed: 1 }), 'default', opts({ initWeights: false, seed: 11 }));
    for (const [[role, p], [, q]] of params(a).map((e, i) => [e, params(b)[i]!] as const)) assert.deepEqual(p.dataSync(), q.dataSync(), role);
    const z = new LoHaLinear(new Linear(8, 8, { seed: 1 }), 'default', opts({ initWeights: false, skipInit: true }));
    for (const [role, p] of params(z)) assert.ok(p.dataSync().every((x) => x === 0), role);
    for (const l of [a, b, z]) l.dispose();
  });
});

/** Naive reference of PEFT's ΔW: loops over the einsum / matmul definitions. */
function referenceDelta(layer: LoHaLayer, name = 'default'): Float64Array {
  const get = (role: string) => {
    const p = (layer as unknown as Record<string, { get(n: string): tf.Variable | undefined }>)[role]!.get(name);
    return p ? { v: p.dataSync(), s: p.shape } : undefined;
  };
  const s = layer.scaling.get(name)!;
  const [w1a, w1b, w2a, w2b, t1, t2] = ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'].map(get);
  if (!t1) {
    const [out, r] = w1a!.s as [number, number];
    const inDim = w1b!.s[1]!;
    const d = new Float64Array(out * inDim);
    for (let o = 0; o < out; o++) {
      for (let c = 0; c < inDim; c++) {
        let a = 0;
        let b = 0;
        for (let k = 0; k < r; k++) {
          a += w1a!.v[o * r + k]! * w1b!.v[k * inDim + c]!;
          b += w2a!.v[o * r + k]! * w2b!.v[k * inDim + c]!;
        }
        d[o * inDim + c] = a * b * s;
      }
    }
    return d;
  }
  const [r, , kh, kw] = t1.s as [number, number, number, number];
  const out = w1a!.s[1]!;
  const inDim = w1b!.s[1]!;
  const rebuild = (t: Float32Array, wa: Float32Array, wb: Float32Array) => {
    const R = new Float64Array(out * inDim * kh * kw);
    for (let p = 0; p < out; p++)
      for (let c = 0; c < inDim; c++)
        for (let h = 0; h < kh; h++)
          for (let w = 0; w < kw; w++) {
            let acc = 0;
            for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) acc += t[((i * r + j) * kh + h) * kw + w]! * wb[j * inDim + c]! * wa[i * out + p]!;
            R[((p * inDim + c) * kh + h) * kw + w] = acc;
          }
    return R;
  };
  const r1 = rebuild(t1.v as Float32Array, w1a!.v as Float32Array, w1b!.v as Float32Array);
  const r2 = rebuild(t2!.v as Float32Array, w2a!.v as Float32Array, w2b!.v as Float32Array);
  return r1.map((x, i) => x * r2[i]! * s);
}

describe('LoHa delta weight and forward', () => {
  const cases: [string, () => LoHaLayer, tf.Tensor][] = [];
  before(() => {
    cases.push(
      ['Linear', () => new LoHaLinear(new Linear(7, 5, { seed: 1 }), 'default', opts({ r: 3, alpha: 5, initWeights: false, seed: 2 })), randn([2, 3, 7], 9)],
      ['Conv2d flat, stride 2, dilation 2', () => new LoHaConv2d(new Conv2d(4, 6, 3, { stride: 2, dilation: 2, padding: 2, seed: 1 }), 'default', opts({ initWeights: false, seed: 3 })), randn([2, 4, 9, 9], 9)],
      ['Conv2d Tucker, groups 2', () => new LoHaConv2d(new Conv2d(4, 6, [3, 2], { groups: 2, padding: 1, seed: 1 }), 'default', opts({ r: 3, alpha: 2, initWeights: false, useEffectiveConv2d: true, seed: 4 })), randn([2, 4, 5, 5], 9)],
      ['Conv2d depthwise Tucker', () => new LoHaConv2d(new Conv2d(4, 8, 3, { groups: 4, padding: 1, seed: 1 }), 'default', opts({ r: 2, initWeights: false, useEffectiveConv2d: true, seed: 4 })), randn([2, 4, 5, 5], 9)],
      ['Conv1d Tucker', () => new LoHaConv1d(new Conv1d(3, 5, 3, { padding: 1, seed: 1 }), 'default', opts({ r: 2, alpha: 3, initWeights: false, useEffectiveConv2d: true, seed: 5 })), randn([2, 3, 8], 9)],
      ['Conv1d flat, unbatched input', () => new LoHaConv1d(new Conv1d(3, 5, 3, { seed: 1 }), 'default', opts({ r: 2, initWeights: false, seed: 5 })), randn([3, 8], 9)],
    );
  });

  test('ΔW = ((W1a W1b) ⊙ (W2a W2b)) · alpha / r, or the Tucker einsum, reshaped to the base weight', () => {
    for (const [what, make] of cases) {
      const layer = make();
      const delta = layer.getDeltaWeight('default');
      assert.deepEqual(delta.shape, layer.base_layer.weight.shape, what);
      assertAllClose(delta, referenceDelta(layer), { atol: 1e-6, rtol: 1e-5 }, what);
      delta.dispose();
      layer.dispose();
    }
  });

  test('tuckerRebuild is einsum("i j k l, j r, i p -> p r k l", t, wb, wa)', () => {
    const t = randn([2, 3, 2, 1], 1);
    const wa = randn([2, 4], 2);
    const wb = randn([3, 5], 3);
    const got = tuckerRebuild(t, wa, wb);
    assert.deepEqual(got.shape, [4, 5, 2, 1]);
    const [tv, av, bv] = [t.dataSync(), wa.dataSync(), wb.dataSync()];
    const want: number[] = [];
    for (let p = 0; p < 4; p++) for (let r = 0; r < 5; r++) for (let k = 0; k < 2; k++) {
      let acc = 0;
      for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) acc += tv[(i * 3 + j) * 2 + k]! * bv[j * 5 + r]! * av[i * 4 + p]!;
      want.push(acc);
    }
    assertAllClose(got, want, { atol: 1e-5, rtol: 1e-5 });
  });

  test('forward = base(x) + the base op with ΔW, which equals the base layer with W + ΔW (merge)', () => {
    for (const [what, make, x] of cases) {
      const layer = make();
      const y = layer.forward(x);
      const base = layer.base_layer.forward(x);
      const delta = layer.getDeltaWeight('default');
      const expected = layer.kind === 'linear' ? tf.add(base, linear(x, delta)) : undefined;
      if (expected) assertAllClose(y, expected, { atol: 1e-5, rtol: 1e-5 }, `${what} (linear)`);
      layer.merge({ safeMerge: true });
      assertAllClose(layer.forward(x), y, { atol: 1e-5, rtol: 1e-4 }, `${what}: merged vs unmerged`);
      layer.unmerge();
      assertAllClose(layer.forward(x), y, { atol: 1e-6, rtol: 1e-6 }, `${what}: unmerged`);
      for (const t of [y, base, delta, ...(expected ? [expected] : [])]) t.dispose();
      layer.dispose();
    }
  });

  test('convolution deltas ignore the base padding_mode (PEFT calls F.conv2d with zero padding)', () => {
    const base = new Conv2d(3, 4, 3, { padding: 1, paddingMode: 'reflect', seed: 1 });
    const layer = new LoHaConv2d(base, 'default', opts({ r: 2, initWeights: false, useEffectiveConv2d: true, seed: 8 }));
    const x = randn([1, 3, 5, 5], 4);
    const adapterPart = tf.sub(layer.forward(x), base.forward(x));
    const zeroPadded = conv2dNCHW(x, layer.getDeltaWeight('default'), null, { ...base.convParams, paddingMode: 'zeros' });
    assertAllClose(adapterPart, zeroPadded, { atol: 1e-5, rtol: 1e-5 });
    layer.dispose();
  });

  test('safe merge refuses a non-finite ΔW and leaves the base weight untouched', () => {
    const layer = new LoHaLinear(new Linear(4, 3, { seed: 1 }), 'default', opts({ initWeights: false, seed: 2 }));
    const before = layer.base_layer.weight.dataSync().slice();
    const w1a = layer.hada_w1_a.get('default')!;
    w1a.assign(tf.fill(w1a.shape, Number.NaN));
    assert.throws(() => layer.merge({ safeMerge: true }), MergeError);
    assert.deepEqual(layer.base_layer.weight.dataSync(), before);
    assert.equal(layer.merged, false);
    layer.dispose();
  });

  test('scale helpers: setScale, scaleLayer, unscaleLayer', () => {
    const layer = new LoHaLinear(new Linear(4, 3), 'default', opts({ r: 4, alpha: 8 }));
    assert.equal(layer.scaling.get('default'), 2);
    layer.scaleLayer(3);
    assert.equal(layer.scaling.get('default'), 6);
    layer.unscaleLayer(2);
    assert.equal(layer.scaling.get('default'), 3);
    layer.unscaleLayer();
    assert.equal(layer.scaling.get('default'), 2);
    layer.setScale('default', 0.5);
    assert.equal(layer.scaling.get('default'), 1);
    layer.dispose();
  });

  test('no tensor leaks across forward, merge, unmerge, training-mode dropout', async () => {
    const layer = new LoHaConv2d(new Conv2d(4, 6, 3, { padding: 1, seed: 1 }), 'default', opts({ initWeights: false, useEffectiveConv2d: true, rankDropout: 0.3, moduleDropout: 0.3, seed: 3 }));
    const x = randn([2, 4, 5, 5], 1);
    layer.forward(x).dispose();
    await assertNoLeak(() => {
      for (let i = 0; i < 5; i++) {
        layer.train();
        layer.forward(x).dispose();
        layer.eval();
        layer.forward(x).dispose();
        layer.merge();
        layer.forward(x).dispose();
        layer.unmerge();
        layer.getDeltaWeight('default').dispose();
      }
    });
    layer.dispose();
    x.dispose();
  });
});

describe('LoHa rank dropout and module dropout (training only)', () => {
  test('rank dropout keeps whole output rows of ΔW, rescaled by 1 / fraction kept; eval and merge never drop', () => {
    const base = new Linear(6, 40, { seed: 1 });
    const layer = new LoHaLinear(base, 'default', opts({ r: 3, initWeights: false, rankDropout: 0.5, seed: 21 }));
    const x = randn([5, 6], 2);
    const full = linear(x, layer.getDeltaWeight('default')).arraySync() as number[][];
    layer.train();
    for (let trial = 0; trial < 3; trial++) {
      const part = tf.sub(layer.forward(x), base.forward(x)).arraySync() as number[][];
      const kept = [...Array(40).keys()].filter((j) => part.some((row) => Math.abs(row[j]!) > 1e-6));
      assert.ok(kept.length > 5 && kept.length < 35, `kept ${kept.length} of 40 rows`);
      const scale = 40 / kept.length;
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 40; j++) {
          const want = kept.includes(j) ? full[i]![j]! * scale : 0;
          assert.ok(Math.abs(part[i]![j]! - want) <= 1e-5 + 1e-5 * Math.abs(want), `row ${j}: ${part[i]![j]} vs ${want}`);
        }
      }
    }
    // Merging in training mode adds the full ΔW (PEFT 0.21 merges with apply_rank_dropout=False).
    const w = base.weight.dataSync().slice();
    const delta = layer.getDeltaWeight('default').dataSync();
    layer.merge();
    assertAllClose(base.weight, w.map((v, i) => v + delta[i]!), { atol: 1e-6, rtol: 1e-6 });
    layer.unmerge();
    layer.eval();
    assertAllClose(tf.sub(layer.forward(x), base.forward(x)), full.flat(), { atol: 1e-5, rtol: 1e-5 }, 'eval');
    layer.dispose();
  });

  test('rank dropout masks are reproducible from a seed', () => {
    const run = () => {
      const layer = new LoHaLinear(new Linear(6, 16, { seed: 1 }), 'default', opts({ initWeights: false, rankDropout: 0.4, seed: 3 }));
      layer.train();
      const x = randn([2, 6], 2);
      const ys = [0, 1, 2].map(() => Array.from(layer.forward(x).dataSync()));
      layer.reseedDropout(99);
      const again = Array.from(layer.forward(x).dataSync());
      layer.reseedDropout(99);
      assert.deepEqual(Array.from(layer.forward(x).dataSync()), again);
      layer.dispose();
      return ys;
    };
    const a = run();
    assert.deepEqual(run(), a);
    assert.notDeepEqual(a[0], a[1]);
  });

  test('module dropout skips the whole adapter in training with probability p, never in eval', () => {
    const base = new Linear(4, 3, { seed: 1 });
    const always = new LoHaLinear(base, 'default', opts({ initWeights: false, moduleDropout: 1, seed: 4 }));
    const x = randn([2, 4], 5);
    always.eval();
    const withAdapter = always.forward(x).dataSync().slice();
    assert.notDeepEqual(withAdapter, base.forward(x).dataSync());
    always.train();
    assert.deepEqual(always.forward(x).dataSync(), base.forward(x).dataSync());
    always.eval();
    assert.deepEqual(always.forward(x).dataSync(), withAdapter);

    const half = new LoHaLinear(new Linear(4, 3, { seed: 1 }), 'default', opts({ initWeights: false, moduleDropout: 0.5, seed: 6 }));
    half.train();
    const baseOut = half.base_layer.forward(x).dataSync();
    const pattern = Array.from({ length: 200 }, () => (half.forward(x).dataSync().every((v, i) => v === baseOut[i]) ? 0 : 1));
    const skipped = pattern.filter((k) => k === 0).length;
    assert.ok(skipped > 70 && skipped < 130, `skipped ${skipped} of 200`);
    half.reseedDropout(123);
    const replay = Array.from({ length: 20 }, () => (half.forward(x).dataSync().every((v, i) => v === baseOut[i]) ? 0 : 1));
    half.reseedDropout(123);
    assert.deepEqual(Array.from({ length: 20 }, () => (half.forward(x).dataSync().every((v, i) => v === baseOut[i]) ? 0 : 1)), replay);
    always.dispose();
    half.dispose();
  });
});

describe('LoHa gradients (autodiff vs finite differences)', () => {
  /**
   * y is linear in each single entry of each hada_* tensor (every factor appears once in the multilinear ΔW, and
   * the layer output is linear in ΔW), so for L = Σ y ⊙ G central differences are exact up to rounding for any
   * step: a step of 1 makes the float32 check sharp (relative 1e-3). A non-linear loss checks the chain through
   * tanh with a small step on a sample of entries.
   */
  const cases: [string, () => LoHaLayer, number[]][] = [
    ['Linear', () => new LoHaLinear(new Linear(5, 4, { seed: 1 }), 'default', opts({ r: 2, alpha: 3, initWeights: false, seed: 2 })), [3, 5]],
    ['Conv2d flat', () => new LoHaConv2d(new Conv2d(3, 4, 3, { padding: 1, seed: 1 }), 'default', opts({ r: 2, initWeights: false, seed: 3 })), [2, 3, 4, 4]],
    ['Conv2d Tucker, groups 2, stride 2', () => new LoHaConv2d(new Conv2d(4, 4, [3, 2], { groups: 2, stride: 2, padding: 1, seed: 1 }), 'default', opts({ r: 2, initWeights: false, useEffectiveConv2d: true, seed: 4 })), [2, 4, 5, 5]],
    ['Conv1d Tucker', () => new LoHaConv1d(new Conv1d(3, 4, 3, { padding: 1, seed: 1 }), 'default', opts({ r: 2, alpha: 5, initWeights: false, useEffectiveConv2d: true, seed: 5 })), [2, 3, 6]],
  ];

  for (const [what, make, xShape] of cases) {
    test(`${what}: every hada_* entry`, () => {
      const layer = make();
      const x = randn(xShape, 11);
      const yShape = layer.forward(x).shape;
      const g = randn(yShape, 12);
      const linearLoss = () => tf.tidy(() => tf.sum(tf.mul(layer.forward(x), g)) as tf.Scalar);
      const tanhLoss = () => tf.tidy(() => tf.sum(tf.mul(tf.tanh(layer.forward(x)), g)) as tf.Scalar);
      const vars = params(layer);
      const roles = vars.map(([role]) => role);
      assert.ok(roles.includes('hada_w2_b'));
      if (layer.isEffective('default')) assert.ok(roles.includes('hada_t1') && roles.includes('hada_t2'));
      for (const [lossFn, step, sample] of [[linearLoss, 1, Infinity], [tanhLoss, 1e-2, 6]] as const) {
        const { value, grads } = tf.variableGrads(lossFn, vars.map(([, p]) => p));
        value.dispose();
        for (const [role, p] of vars) {
          const analytic = grads[p.name]!.dataSync();
          const original = p.dataSync().slice();
          const indices = sample === Infinity ? [...original.keys()] : [...original.keys()].filter((i) => i % Math.ceil(original.length / sample) === 0);
          let worst = 0;
          for (const i of indices) {
            const at = (d: number) => {
              const v = original.slice();
              v[i] = v[i]! + d;
              p.assign(tf.tensor(v, p.shape));
              const l = lossFn();
              const out = l.dataSync()[0]!;
              l.dispose();
              return out;
            };
            const fd = (at(step) - at(-step)) / (2 * step);
            const err = Math.abs(fd - analytic[i]!) / (Math.abs(analytic[i]!) + 1e-2);
            worst = Math.max(worst, err);
          }
          p.assign(tf.tensor(original, p.shape));
          const tol = step === 1 ? 1e-3 : 2e-2;
          assert.ok(worst <= tol, `${what} ${role} (${step === 1 ? 'linear' : 'tanh'} loss): worst relative error ${worst}`);
        }
        for (const t of Object.values(grads)) t.dispose();
      }
      layer.dispose();
    });
  }
});
