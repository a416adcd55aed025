// LoRA layers against hand computations in plain JavaScript (no TF.js in the expected values): ΔW of each layer
// kind, the forward of the LoRA branch, `lora_bias`, DoRA, scaling, initialisation statistics, GPT-2's Conv1D
// (`fan_in_fan_out`), and what merging refuses.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { ConfigError, MergeError } from '../../../src/errors.js';
import { Conv1D, Conv1d, Conv2d, Embedding, Linear, Module } from '../../../src/nn/index.js';
import type { PeftModel } from '../../../src/peft-model.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { LoraConv, LoraEmbedding, LoraLayer, LoraLinear } from '../../../src/tuners/lora/layer.js';
import {
  adapterModules,
  assertBitIdentical,
  assertClose,
  assertDiffers,
  baseWeights,
  captureWarnings,
  checkMergeLayers,
  checkSafeMerge,
  checkSaveLoad,
  leakFree,
  outputOf,
  quietly,
  trainableNames,
} from '../common.js';
import type { ModelSpec } from '../common.js';
import { TinyMLP, tinyInput } from '../tiny-mlp.js';

process.env['PEFT_TS_QUIET'] = '1';

type Mat = number[][];

const matOf = (t: tf.Tensor): Mat => t.arraySync() as Mat;
const flat = (t: tf.Tensor): Float32Array => Float32Array.from(t.dataSync());
const transpose = (a: Mat): Mat => a[0]!.map((_, j) => a.map((row) => row[j]!));
const matmul = (a: Mat, b: Mat): Mat => a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const scale = (a: Mat, s: number): Mat => a.map((row) => row.map((v) => v * s));
const add = (a: Mat, b: Mat): Mat => a.map((row, i) => row.map((v, j) => v + b[i]![j]!));
const toF32 = (a: Mat): Float32Array => Float32Array.from(a.flat());

const mlp: ModelSpec<TinyMLP> = { makeBase: () => new TinyMLP(1), input: tinyInput, run: (model, x) => model.forward(x) };

before(async () => {
  await setBackend();
});

function layerOf(peft: PeftModel, path: string): LoraLayer {
  const layer = peft.model.getSubmodule(path);
  assert.ok(layer instanceof LoraLayer, `${path} is a LoRA layer`);
  return layer;
}

describe('ΔW of each layer kind, by hand', () => {
  test('Linear: ΔW = s·B·A, [out, in]; Embedding: ΔW = s·(B·A)ᵀ, [num, dim]; Conv2d: ΔW[o,i,k] = s·Σ_r B[o,r]·A[r,i,k]', () => {
    const peft = getPeftModel(mlp.makeBase(), new LoraConfig({ targetModules: ['lin0', 'emb', 'conv2d'], r: 3, loraAlpha: 5, initLoraWeights: false }));
    try {
      const s = 5 / 3;
      const lin0 = layerOf(peft, 'lin0');
      assert.ok(lin0 instanceof LoraLinear);
      const a = matOf(lin0.lora_A.get('default')!.weight);
      const b = matOf(lin0.lora_B.get('default')!.weight);
      assert.deepEqual([a.length, a[0]!.length, b.length, b[0]!.length], [3, 12, 10, 3]);
      tf.tidy(() => assertClose(flat(lin0.getDeltaWeight('default')), toF32(scale(matmul(b, a), s)), 1e-6, 'Linear ΔW'));

      const emb = layerOf(peft, 'emb');
      assert.ok(emb instanceof LoraEmbedding);
      const ea = matOf(emb.lora_embedding_A.get('default')!);
      const eb = matOf(emb.lora_embedding_B.get('default')!);
      assert.deepEqual([ea.length, ea[0]!.length, eb.length, eb[0]!.length], [3, 20, 6, 3]);
      tf.tidy(() => {
        const delta = emb.getDeltaWeight('default');
        assert.deepEqual(delta.shape, [20, 6]);
        assertClose(flat(delta), toF32(scale(transpose(matmul(eb, ea)), s)), 1e-5, 'Embedding ΔW');
      });

      const conv = layerOf(peft, 'conv2d');
      assert.ok(conv instanceof LoraConv);
      const ca = conv.lora_A.get('default')!.weight.arraySync() as number[][][][]; // [r, in, kh, kw]
      const cb = conv.lora_B.get('default')!.weight.arraySync() as number[][][][]; // [out, r, 1, 1]
      const expected: number[] = [];
      for (let o = 0; o < 2; o++) for (let i = 0; i < 1; i++) for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) {
        let sum = 0;
        for (let r = 0; r < 3; r++) sum += cb[o]![r]![0]![0]! * ca[r]![i]![y]![x]!;
        expected.push(s * sum);
      }
      tf.tidy(() => {
        const delta = conv.getDeltaWeight('default');
        assert.deepEqual(delta.shape, [2, 1, 3, 3]);
        assertClose(flat(delta), Float32Array.from(expected), 1e-6, 'Conv2d ΔW');
      });
    } finally {
      peft.dispose();
    }
  });

  test('adapted Linear output = x (W + s·B·A)ᵀ + b, with ΔW from the hand product', async () => {
    await leakFree('linear forward', () => {
      const lin = new Linear(5, 3, { seed: 5 });
      const model = new (class extends Module {
        lin0 = this.registerModule('lin0', lin);
        forward(x: tf.Tensor) {
          return this.lin0.forward(x);
        }
      })();
      const w = matOf(lin.weight);
      const bias = Array.from(lin.bias!.dataSync());
      const peft = getPeftModel(model, new LoraConfig({ targetModules: ['lin0'], r: 2, loraAlpha: 3, initLoraWeights: false }));
      try {
        const layer = layerOf(peft, 'lin0');
        const merged = add(w, scale(matmul(matOf(layer.lora_B.get('default')!.weight), matOf(layer.lora_A.get('default')!.weight)), 1.5));
        const xs: Mat = [[1, -2, 0.5, 3, 0], [0.25, 0, -1, 2, -0.5]];
        const expected = matmul(xs, transpose(merged)).map((row) => row.map((v, j) => v + bias[j]!));
        const x = tf.tensor2d(xs);
        const y = peft.forward(x);
        assertClose(flat(y), toF32(expected), 1e-5, 'forward');
        tf.dispose([x, y]);
      } finally {
        peft.dispose();
      }
    });
  });
});

describe('scaling', () => {
  test('alpha / r, alpha / sqrt(r) with rsLoRA (PEFT test_initialization values)', () => {
    for (const [options, expected] of [
      [{ r: 16, loraAlpha: 3 }, 0.1875],
      [{ r: 16, loraAlpha: 3, useRslora: true }, 0.75],
      [{ r: 25, loraAlpha: 17, rankPattern: { lin0: 9 }, alphaPattern: { lin0: 11 } }, 11 / 9],
      [{ r: 25, loraAlpha: 17, rankPattern: { lin0: 9 }, alphaPattern: { lin0: 11 }, useRslora: true }, 11 / 3],
    ] as const) {
      const peft = getPeftModel(mlp.makeBase(), new LoraConfig({ targetModules: ['lin0'], ...options }));
      assert.equal(layerOf(peft, 'lin0').scaling.get('default'), expected, JSON.stringify(options));
      peft.dispose();
    }
  });
});

describe('initialisation', () => {
  // Large enough for the statistics (bounds below are >= 5 standard errors wide), small enough to be quick.
  const big = () =>
    new (class extends Module {
      lin = this.registerModule('lin', new Linear(400, 300, { seed: 1 }));
      emb = this.registerModule('emb', new Embedding(300, 200, { seed: 2 }));
      conv = this.registerModule('conv', new Conv2d(20, 8, 3, { seed: 3 }));
      forward(x: tf.Tensor) {
        return tf.clone(x);
      }
    })();
  const stats = (t: tf.Tensor) => {
    const d = t.dataSync();
    let sum = 0;
    let sq = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of d) {
      sum += v;
      sq += v * v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const mean = sum / d.length;
    return { mean, std: Math.sqrt(sq / d.length - mean * mean), min, max, zeros: d.every((v) => v === 0) };
  };

  test('default: A kaiming-uniform U(±1/√fan_in), B zeros; Embedding: A zeros, B N(0, 1)', () => {
    const peft = getPeftModel(big(), new LoraConfig({ targetModules: ['lin', 'emb', 'conv'], r: 8 }));
    try {
      const lin = layerOf(peft, 'lin') as LoraLinear;
      const a = stats(lin.lora_A.get('default')!.weight);
      const bound = 1 / Math.sqrt(400);
      assert.ok(a.max <= bound && a.min >= -bound && a.max > 0.9 * bound && a.min < -0.9 * bound, `A in ±${bound}: ${a.min}..${a.max}`);
      assert.ok(Math.abs(a.std - bound / Math.sqrt(3)) < 0.05 * bound, `uniform std ${a.std}`);
      assert.ok(stats(lin.lora_B.get('default')!.weight).zeros, 'B zeros');
      const conv = layerOf(peft, 'conv') as LoraConv;
      const ca = stats(conv.lora_A.get('default')!.weight);
      const cbound = 1 / Math.sqrt(20 * 9);
      assert.ok(ca.max <= cbound && ca.min >= -cbound && ca.max > 0.9 * cbound, `conv A in ±${cbound}`);
      assert.ok(stats(conv.lora_B.get('default')!.weight).zeros);
      const emb = layerOf(peft, 'emb') as LoraEmbedding;
      assert.ok(stats(emb.lora_embedding_A.get('default')!).zeros, 'embedding A zeros');
      const eb = stats(emb.lora_embedding_B.get('default')!);
      assert.ok(Math.abs(eb.mean) < 0.15 && Math.abs(eb.std - 1) < 0.15, `embedding B N(0,1): ${eb.mean}, ${eb.std}`);
    } finally {
      peft.dispose();
    }
  });

  test('"gaussian": A ~ N(0, 1/r) (std), B zeros', () => {
    const peft = getPeftModel(big(), new LoraConfig({ targetModules: ['lin'], r: 4, initLoraWeights: 'gaussian' }));
    try {
      const lin = layerOf(peft, 'lin') as LoraLinear;
      const a = stats(lin.lora_A.get('default')!.weight);
      assert.ok(Math.abs(a.std - 0.25) < 0.025 && Math.abs(a.mean) < 0.03, `A std ${a.std}, mean ${a.mean}`);
      assert.ok(stats(lin.lora_B.get('default')!.weight).zeros);
    } finally {
      peft.dispose();
    }
  });

  test('false: PyTorch defaults, A U(±1/√in) and B U(±1/√r) (non-zero); Embedding A and B N(0, 1)', () => {
    const peft = getPeftModel(big(), new LoraConfig({ targetModules: ['lin', 'emb'], r: 16, initLoraWeights: false }));
    try {
      const lin = layerOf(peft, 'lin') as LoraLinear;
      const b = stats(lin.lora_B.get('default')!.weight);
      assert.ok(b.max <= 0.25 && b.min >= -0.25 && b.max > 0.2, `B in ±1/√16: ${b.min}..${b.max}`);
      const emb = layerOf(peft, 'emb') as LoraEmbedding;
      const ea = stats(emb.lora_embedding_A.get('default')!);
      assert.ok(Math.abs(ea.std - 1) < 0.1, `embedding A std ${ea.std}`);
    } finally {
      peft.dispose();
    }
  });
});

describe('lora_bias', () => {
  const config = () => new LoraConfig({ targetModules: ['lin0'], loraBias: true, loraAlpha: 32, initLoraWeights: false });

  test("merging adds s·b_B to the base bias; unmerging takes it off", () => {
    const base = mlp.makeBase();
    const bias0 = Array.from(base.lin0.bias!.dataSync());
    const peft = getPeftModel(base, config()).eval();
    try {
      const layer = layerOf(peft, 'lin0');
      const bB = Array.from(layer.lora_B.get('default')!.bias!.dataSync());
      assert.ok(bB.some((v) => v !== 0), 'init false gives B a non-zero bias');
      const s = layer.scaling.get('default')!;
      const out = outputOf(mlp, peft);
      peft.mergeAdapter();
      assertClose(flat((layer.base_layer as Linear).bias!), Float32Array.from(bias0.map((v, i) => v + s * bB[i]!)), 1e-5, 'merged bias');
      assertClose(outputOf(mlp, peft), out, 1e-5);
      peft.unmergeAdapter();
      assertClose(flat((layer.base_layer as Linear).bias!), Float32Array.from(bias0), 1e-6, 'unmerged bias');
    } finally {
      peft.dispose();
    }
  });

  test('a NaN only in lora_B.bias is refused by safeMerge, weight and bias untouched', async () => {
    await leakFree('NaN bias', () => {
      const peft = getPeftModel(mlp.makeBase(), config()).eval();
      try {
        const bB = layerOf(peft, 'lin0').lora_B.get('default')!.bias!;
        const nan = tf.fill(bB.shape, NaN);
        bB.assign(nan);
        nan.dispose();
        const before = baseWeights(peft.model);
        assert.throws(() => peft.mergeAdapter({ safeMerge: true }), (e: unknown) => e instanceof MergeError && e.code === 'merge');
        assertBitIdentical(baseWeights(peft.model), before);
        assert.equal(layerOf(peft, 'lin0').merged, false);
      } finally {
        peft.dispose();
      }
    });
  });

  test('on a base layer without a bias, merge is a MergeError that changes nothing', async () => {
    await leakFree('no base bias', () => {
      const model = new (class extends Module {
        lin0 = this.registerModule('lin0', new Linear(4, 3, { bias: false, seed: 2 }));
        forward(x: tf.Tensor) {
          return this.lin0.forward(x);
        }
      })();
      const peft = getPeftModel(model, config());
      try {
        const before = baseWeights(peft.model);
        for (const safeMerge of [false, true]) {
          assert.throws(() => peft.mergeAdapter({ safeMerge }), (e: unknown) => e instanceof MergeError && e.code === 'merge');
          assertBitIdentical(baseWeights(peft.model), before, `safeMerge ${safeMerge}`);
          assert.equal(layerOf(peft, 'lin0').merged, false);
        }
      } finally {
        peft.dispose();
      }
    });
  });
});

describe('DoRA', () => {
  test('output = x ((m / ‖W + s·B·A‖_row) ⊙ (W + s·B·A))ᵀ + b, by hand; magnitude starts at the row norms', async () => {
    await leakFree('dora', () => {
      const model = new (class extends Module {
        lin0 = this.registerModule('lin0', new Linear(5, 3, { seed: 5 }));
        forward(x: tf.Tensor) {
          return this.lin0.forward(x);
        }
      })();
      const w = matOf(model.lin0.weight);
      const bias = Array.from(model.lin0.bias!.dataSync());
      const peft = getPeftModel(model, new LoraConfig({ targetModules: ['lin0'], r: 2, loraAlpha: 4, useDora: true, initLoraWeights: false }));
      try {
        const layer = layerOf(peft, 'lin0');
        const wd = add(w, scale(matmul(matOf(layer.lora_B.get('default')!.weight), matOf(layer.lora_A.get('default')!.weight)), 2));
        const norms = wd.map((row) => Math.sqrt(row.reduce((s, v) => s + v * v, 0)));
        const m = layer.lora_magnitude_vector.get('default')!;
        assertClose(flat(m), Float32Array.from(norms), 1e-5, 'initial magnitude = ‖W + ΔW‖');
        // Train the magnitude away from the norms so the rescaling matters.
        const mNew = norms.map((n, i) => n * (1.5 - 0.4 * i));
        const t = tf.tensor1d(mNew);
        m.assign(t);
        t.dispose();
        const wPrime = wd.map((row, i) => row.map((v) => (mNew[i]! / norms[i]!) * v));
        const xs: Mat = [[1, -2, 0.5, 3, 0], [0.25, 0, -1, 2, -0.5]];
        const expected = toF32(matmul(xs, transpose(wPrime)).map((row) => row.map((v, j) => v + bias[j]!)));
        const x = tf.tensor2d(xs);
        const y = peft.forward(x);
        assertClose(flat(y), expected, 1e-5, 'DoRA forward');
        peft.mergeAdapter();
        assertClose(flat((layer.base_layer as Linear).weight), toF32(wPrime), 1e-5, 'merged weight');
        const ym = peft.forward(x);
        assertClose(flat(ym), expected, 1e-5, 'merged forward');
        peft.unmergeAdapter();
        assertClose(flat((layer.base_layer as Linear).weight), toF32(w), 1e-5, 'unmerged weight');
        tf.dispose([x, y, ym]);
      } finally {
        peft.dispose();
      }
    });
  });

  test('the row norm is a constant for the gradient (PEFT detaches it): dL/dm = Σ (x Wdᵀ / n)', () => {
    const model = new (class extends Module {
      lin0 = this.registerModule('lin0', new Linear(4, 2, { seed: 8 }));
      forward(x: tf.Tensor) {
        return this.lin0.forward(x);
      }
    })();
    const peft = getPeftModel(model, new LoraConfig({ targetModules: ['lin0'], r: 2, useDora: true, initLoraWeights: false }));
    try {
      const layer = layerOf(peft, 'lin0');
      const m = layer.lora_magnitude_vector.get('default')!;
      const wd = add(matOf(model.lin0.weight), scale(matmul(matOf(layer.lora_B.get('default')!.weight), matOf(layer.lora_A.get('default')!.weight)), 4));
      const norms = wd.map((row) => Math.sqrt(row.reduce((s, v) => s + v * v, 0)));
      const xs: Mat = [[1, 2, -1, 0.5]];
      const x = tf.tensor2d(xs);
      const { grads, value } = tf.variableGrads(() => tf.sum(peft.forward(x)) as tf.Scalar, [m]);
      // With n constant, out_j = (m_j / n_j)·(x·Wd_j) + b_j, so d(sum)/dm_j = (x·Wd_j) / n_j.
      const expected = wd.map((row, j) => row.reduce((s, v, k) => s + v * xs[0]![k]!, 0) / norms[j]!);
      assertClose(flat(grads[m.name]!), Float32Array.from(expected), 1e-5, 'dL/dm');
      tf.dispose([x, value, ...Object.values(grads)]);
    } finally {
      peft.dispose();
    }
  });
});

describe("GPT-2's Conv1D (weight stored [in, out]): fan_in_fan_out", () => {
  const gpt2Like = () =>
    new (class extends Module {
      c_attn = this.registerModule('c_attn', new Conv1D(9, 6, { seed: 3 }));
      c_proj = this.registerModule('c_proj', new Conv1D(6, 9, { seed: 4 }));
      forward(x: tf.Tensor) {
        return tf.tidy(() => this.c_proj.forward(tf.tanh(this.c_attn.forward(x))));
      }
    })();
  const spec: ModelSpec<ReturnType<typeof gpt2Like>> = {
    makeBase: gpt2Like,
    input: () => tf.tensor3d([[[1, -1, 0.5, 2, 0, 3], [0.1, 0.2, 0.3, -0.4, 0.5, -0.6]]]),
    run: (model, x) => model.forward(x),
  };
  const config = (extra = {}) => new LoraConfig({ targetModules: ['c_attn', 'c_proj'], loraAlpha: 16, initLoraWeights: false, ...extra });

  test('fan_in_fan_out is corrected to true with a warning (and saved so); A [r, in], B [out, r], ΔW [in, out]', async () => {
    const { result: peft, warnings } = await captureWarnings(() => getPeftModel(gpt2Like(), config()));
    try {
      assert.ok(warnings.some((w) => w.includes('fan_in_fan_out')), warnings.join('\n'));
      assert.equal(peft.peftConfig.get('default')!.with({}).toJson()['fan_in_fan_out'], true);
      const layer = layerOf(peft, 'c_attn');
      assert.ok(layer instanceof LoraLinear && layer.fanInFanOut);
      assert.deepEqual(layer.lora_A.get('default')!.weight.shape, [8, 6]);
      assert.deepEqual(layer.lora_B.get('default')!.weight.shape, [9, 8]);
      const expected = toF32(transpose(scale(matmul(matOf(layer.lora_B.get('default')!.weight), matOf(layer.lora_A.get('default')!.weight)), 2)));
      tf.tidy(() => {
        const delta = layer.getDeltaWeight('default');
        assert.deepEqual(delta.shape, [6, 9]);
        assertClose(flat(delta), expected, 1e-6, 'ΔW');
      });
    } finally {
      peft.dispose();
    }
  });

  test('merge/unmerge/unload and save/load, plain and DoRA', async () => {
    for (const extra of [{}, { useDora: true }]) {
      await quietly(() => checkMergeLayers(spec, config(extra)));
      await quietly(() => checkSafeMerge(spec, config(extra)));
    }
    const keys = {
      'base_model.model.c_attn.lora_A.weight': [8, 6], 'base_model.model.c_attn.lora_B.weight': [9, 8],
      'base_model.model.c_proj.lora_A.weight': [8, 9], 'base_model.model.c_proj.lora_B.weight': [6, 8],
    };
    await quietly(() => checkSaveLoad(spec, config(), keys));
  });
});

describe('Conv1d (PyTorch nn.Conv1d)', () => {
  const convModel = () =>
    new (class extends Module {
      conv1d = this.registerModule('conv1d', new Conv1d(3, 4, 2, { seed: 6 }));
      forward(x: tf.Tensor) {
        return this.conv1d.forward(x);
      }
    })();
  const spec: ModelSpec<ReturnType<typeof convModel>> = {
    makeBase: convModel,
    input: () => tf.tensor3d([[[1, 2, 3, 4, 5], [0, -1, 0, 1, 0], [0.5, 0.5, -2, 1, 3]]]),
    run: (model, x) => model.forward(x),
  };

  test('merge/unmerge, safe merge, keys and shapes', async () => {
    const config = new LoraConfig({ targetModules: ['conv1d'], r: 2, initLoraWeights: false });
    await checkMergeLayers(spec, config);
    await checkSafeMerge(spec, config);
    await checkSaveLoad(spec, config, { 'base_model.model.conv1d.lora_A.weight': [2, 3, 2], 'base_model.model.conv1d.lora_B.weight': [4, 2, 1] });
  });

  test('grouped convolutions train but refuse to merge (MergeError), as in PEFT', async () => {
    const grouped = () =>
      new (class extends Module {
        conv = this.registerModule('conv', new Conv2d(4, 4, 3, { groups: 2, seed: 7 }));
        forward(x: tf.Tensor) {
          return this.conv.forward(x);
        }
      })();
    await leakFree('grouped conv', () => {
      const peft = getPeftModel(grouped(), new LoraConfig({ targetModules: ['conv'], r: 2, initLoraWeights: false }));
      try {
        const x = tf.ones([1, 4, 5, 5]);
        const run = () => {
          const y = peft.forward(x);
          const out = flat(y);
          y.dispose();
          return out;
        };
        assertDiffers(run(), peft.disableAdapter(run));
        const before = baseWeights(peft.model);
        assert.throws(() => peft.mergeAdapter(), (e: unknown) => e instanceof MergeError && e.code === 'merge');
        assertBitIdentical(baseWeights(peft.model), before);
        assert.deepEqual(adapterModules(peft.model), ['conv']);
        x.dispose();
      } finally {
        peft.dispose();
      }
    });
  });
});

describe('grouped convolutions', () => {
  test('a rank not divisible by groups is a ConfigError before any layer is wrapped, as PEFT refuses it', async () => {
    const model = new (class extends Module {
      lin0 = this.registerModule('lin0', new Linear(4, 4, { seed: 2 }));
      conv = this.registerModule('conv', new Conv2d(4, 4, 3, { groups: 2, seed: 7 }));
      forward(x: tf.Tensor) {
        return this.conv.forward(x);
      }
    })();
    await leakFree('grouped conv rank', () => {
      assert.throws(
        () => getPeftModel(model, new LoraConfig({ targetModules: ['lin0', 'conv'], r: 3 })),
        (e: unknown) => e instanceof ConfigError && e.code === 'config',
      );
    });
    assert.deepEqual(adapterModules(model), []);
    model.dispose();
  });
});

describe('module tree and names', () => {
  test("PEFT's layout: <target>.base_layer, lora_A.<adapter>, lora_B.<adapter>; a second adapter sits beside", () => {
    const peft = getPeftModel(mlp.makeBase(), new LoraConfig({ targetModules: ['lin0'] }));
    try {
      peft.addAdapter('second', new LoraConfig({ targetModules: ['lin0'], r: 2 }));
      assert.deepEqual(
        [...peft.namedParameters()].map(([n]) => n).filter((n) => n.includes('lin0')),
        [
          'base_model.model.lin0.base_layer.weight',
          'base_model.model.lin0.base_layer.bias',
          'base_model.model.lin0.lora_A.default.weight',
          'base_model.model.lin0.lora_A.second.weight',
          'base_model.model.lin0.lora_B.default.weight',
          'base_model.model.lin0.lora_B.second.weight',
        ],
      );
      assert.deepEqual(trainableNames(peft), ['base_model.model.lin0.lora_A.default.weight', 'base_model.model.lin0.lora_B.default.weight']);
    } finally {
      peft.dispose();
    }
  });
});
