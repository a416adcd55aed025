// The tuner core with LoRA over a small custom model, as PEFT's `tests/test_custom_models.py` runs its matrix: for
// each config, merge/unmerge/safe merge, disable, delete, unload, save/load with PEFT's exact keys, and which
// parameters train. Expected keys, trainable names and `print_trainable_parameters` lines were produced by PEFT
// 0.21.2 on the same architecture in PyTorch (see `tiny-mlp.ts`), and are written out here by hand.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import { Linear } from '../../src/nn/index.js';
import { PeftModel, getPeftModel } from '../../src/peft-model.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import type { LoraLayer } from '../../src/tuners/lora/layer.js';
import { ModulesToSaveWrapper } from '../../src/tuners/modules-to-save.js';
import {
  adapterModules,
  adapterTensors,
  assertBitIdentical,
  assertClose,
  assertDiffers,
  baseWeights,
  checkDeleteAdapter,
  checkDisableAdapters,
  checkMergeLayers,
  checkSafeMerge,
  checkSaveLoad,
  checkUnload,
  leakFree,
  outputOf,
  quietly,
  savedShapes,
  trainableNames,
  withTempDir,
} from './common.js';
import type { ModelSpec } from './common.js';
import { TINY_TOTAL, TinyMLP, tinyInput } from './tiny-mlp.js';

process.env['PEFT_TS_QUIET'] = '1';

export const mlp: ModelSpec<TinyMLP> = {
  makeBase: () => new TinyMLP(1),
  input: tinyInput,
  run: (model, x) => model.forward(x),
};

type LoraOptions = NonNullable<ConstructorParameters<typeof LoraConfig>[0]>;

interface MatrixCase {
  name: string;
  options: LoraOptions;
  /** Saved keys (after `base_model.model.`) and shapes, as PEFT writes them. */
  keys: Record<string, number[]>;
  /** Trainable parameters (after `base_model.model.`), as PEFT marks them. */
  trainable: string[];
  /** [trainable, all] from the per-layer formulas. */
  counts: [number, number];
  /** PEFT's `print_trainable_parameters()` line for the same model. */
  line: string;
  /** Per adapted module: [r, scaling]. */
  scalings?: Record<string, [number, number]>;
}

// Per-layer LoRA parameter counts (r = 8): Linear r*(in+out), Embedding r*(num+dim), Conv2d r*in*k*k + out*r.
const lin0 = 8 * (12 + 10);
const lin1 = 8 * (10 + 4);
const emb = 8 * (20 + 6);
const conv2d = 8 * 1 * 3 * 3 + 2 * 8;

const LINEAR_KEYS = { 'lin0.lora_A.weight': [8, 12], 'lin0.lora_B.weight': [10, 8], 'lin1.lora_A.weight': [8, 10], 'lin1.lora_B.weight': [4, 8] };
const LINEAR_TRAINABLE = ['lin0.lora_A.default.weight', 'lin0.lora_B.default.weight', 'lin1.lora_A.default.weight', 'lin1.lora_B.default.weight'];

const CASES: MatrixCase[] = [
  {
    name: 'Linear (lin0, lin1)',
    options: { targetModules: ['lin0', 'lin1'] },
    keys: LINEAR_KEYS,
    trainable: LINEAR_TRAINABLE,
    counts: [lin0 + lin1, TINY_TOTAL + lin0 + lin1],
    line: 'trainable params: 288 || all params: 622 || trainable%: 46.3023',
    scalings: { lin0: [8, 1], lin1: [8, 1] },
  },
  {
    name: 'Linear by regex, lora_alpha 4',
    options: { targetModules: 'lin[01]', loraAlpha: 4 },
    keys: LINEAR_KEYS,
    trainable: LINEAR_TRAINABLE,
    counts: [lin0 + lin1, TINY_TOTAL + lin0 + lin1],
    line: 'trainable params: 288 || all params: 622 || trainable%: 46.3023',
    scalings: { lin0: [8, 0.5], lin1: [8, 0.5] },
  },
  {
    name: 'Embedding',
    options: { targetModules: ['emb'] },
    keys: { 'emb.lora_embedding_A': [8, 20], 'emb.lora_embedding_B': [6, 8] },
    trainable: ['emb.lora_embedding_A.default', 'emb.lora_embedding_B.default'],
    counts: [emb, TINY_TOTAL + emb],
    line: 'trainable params: 208 || all params: 542 || trainable%: 38.3764',
  },
  {
    name: 'Conv2d',
    options: { targetModules: ['conv2d'] },
    keys: { 'conv2d.lora_A.weight': [8, 1, 3, 3], 'conv2d.lora_B.weight': [2, 8, 1, 1] },
    trainable: ['conv2d.lora_A.default.weight', 'conv2d.lora_B.default.weight'],
    counts: [conv2d, TINY_TOTAL + conv2d],
    line: 'trainable params: 88 || all params: 422 || trainable%: 20.8531',
  },
  {
    name: 'rsLoRA (r 16, alpha 3)',
    options: { targetModules: ['lin0', 'lin1'], r: 16, loraAlpha: 3, useRslora: true },
    keys: { 'lin0.lora_A.weight': [16, 12], 'lin0.lora_B.weight': [10, 16], 'lin1.lora_A.weight': [16, 10], 'lin1.lora_B.weight': [4, 16] },
    trainable: LINEAR_TRAINABLE,
    counts: [2 * (lin0 + lin1), TINY_TOTAL + 2 * (lin0 + lin1)],
    line: 'trainable params: 576 || all params: 910 || trainable%: 63.2967',
    scalings: { lin0: [16, 0.75], lin1: [16, 0.75] },
  },
  {
    name: 'rank_pattern / alpha_pattern over every kind',
    options: { targetModules: ['emb', 'conv2d', 'lin0', 'lin1'], r: 4, loraAlpha: 8, rankPattern: { lin0: 3, conv2d: 5 }, alphaPattern: { lin1: 2, emb: 6 } },
    keys: {
      'conv2d.lora_A.weight': [5, 1, 3, 3], 'conv2d.lora_B.weight': [2, 5, 1, 1], 'emb.lora_embedding_A': [4, 20], 'emb.lora_embedding_B': [6, 4],
      'lin0.lora_A.weight': [3, 12], 'lin0.lora_B.weight': [10, 3], 'lin1.lora_A.weight': [4, 10], 'lin1.lora_B.weight': [4, 4],
    },
    trainable: [
      'conv2d.lora_A.default.weight', 'conv2d.lora_B.default.weight', 'emb.lora_embedding_A.default', 'emb.lora_embedding_B.default',
      ...LINEAR_TRAINABLE,
    ],
    counts: [4 * 26 + (5 * 9 + 2 * 5) + 3 * 22 + 4 * 14, TINY_TOTAL + 281],
    line: 'trainable params: 281 || all params: 615 || trainable%: 45.6911',
    scalings: { emb: [4, 1.5], conv2d: [5, 1.6], lin0: [3, 8 / 3], lin1: [4, 0.5] },
  },
  {
    name: 'bias "all"',
    options: { targetModules: ['lin0'], bias: 'all' },
    keys: { 'conv2d.bias': [2], 'lin0.base_layer.bias': [10], 'lin0.lora_A.weight': [8, 12], 'lin0.lora_B.weight': [10, 8], 'lin1.bias': [4], 'norm.bias': [10] },
    trainable: ['conv2d.bias', 'lin0.base_layer.bias', 'lin0.lora_A.default.weight', 'lin0.lora_B.default.weight', 'lin1.bias', 'norm.bias'],
    counts: [lin0 + 2 + 10 + 10 + 4, TINY_TOTAL + lin0],
    line: 'trainable params: 202 || all params: 510 || trainable%: 39.6078',
  },
  {
    name: 'bias "lora_only"',
    options: { targetModules: ['lin0', 'conv2d'], bias: 'lora_only' },
    keys: {
      'conv2d.base_layer.bias': [2], 'conv2d.lora_A.weight': [8, 1, 3, 3], 'conv2d.lora_B.weight': [2, 8, 1, 1],
      'lin0.base_layer.bias': [10], 'lin0.lora_A.weight': [8, 12], 'lin0.lora_B.weight': [10, 8],
    },
    trainable: ['conv2d.base_layer.bias', 'conv2d.lora_A.default.weight', 'conv2d.lora_B.default.weight', 'lin0.base_layer.bias', 'lin0.lora_A.default.weight', 'lin0.lora_B.default.weight'],
    counts: [lin0 + conv2d + 10 + 2, TINY_TOTAL + lin0 + conv2d],
    line: 'trainable params: 276 || all params: 598 || trainable%: 46.1538',
  },
  {
    name: 'lora_bias (Linear and Conv2d)',
    options: { targetModules: ['lin0', 'lin1', 'conv2d'], loraBias: true, loraAlpha: 32 },
    keys: {
      'conv2d.lora_A.weight': [8, 1, 3, 3], 'conv2d.lora_B.bias': [2], 'conv2d.lora_B.weight': [2, 8, 1, 1],
      'lin0.lora_A.weight': [8, 12], 'lin0.lora_B.bias': [10], 'lin0.lora_B.weight': [10, 8],
      'lin1.lora_A.weight': [8, 10], 'lin1.lora_B.bias': [4], 'lin1.lora_B.weight': [4, 8],
    },
    trainable: [
      'conv2d.lora_A.default.weight', 'conv2d.lora_B.default.bias', 'conv2d.lora_B.default.weight',
      'lin0.lora_A.default.weight', 'lin0.lora_B.default.bias', 'lin0.lora_B.default.weight',
      'lin1.lora_A.default.weight', 'lin1.lora_B.default.bias', 'lin1.lora_B.default.weight',
    ],
    counts: [lin0 + lin1 + conv2d + 16, TINY_TOTAL + lin0 + lin1 + conv2d + 16],
    line: 'trainable params: 392 || all params: 726 || trainable%: 53.9945',
  },
  {
    name: 'lora_dropout 0.3',
    options: { targetModules: ['lin0', 'lin1'], loraDropout: 0.3 },
    keys: LINEAR_KEYS,
    trainable: LINEAR_TRAINABLE,
    counts: [lin0 + lin1, TINY_TOTAL + lin0 + lin1],
    line: 'trainable params: 288 || all params: 622 || trainable%: 46.3023',
  },
  {
    name: 'DoRA on Linear',
    options: { targetModules: ['lin0', 'lin1'], useDora: true },
    keys: { ...LINEAR_KEYS, 'lin0.lora_magnitude_vector': [10], 'lin1.lora_magnitude_vector': [4] },
    // PEFT keeps the magnitude in a module (`…lora_magnitude_vector.default.weight`); peft-ts in a ParameterDict.
    trainable: [...LINEAR_TRAINABLE, 'lin0.lora_magnitude_vector.default', 'lin1.lora_magnitude_vector.default'].sort(),
    counts: [lin0 + lin1 + 14, TINY_TOTAL + lin0 + lin1 + 14],
    line: 'trainable params: 302 || all params: 636 || trainable%: 47.4843',
  },
  {
    name: 'modules_to_save (lin1) with LoRA on lin0',
    options: { targetModules: ['lin0'], modulesToSave: ['lin1'] },
    keys: { 'lin0.lora_A.weight': [8, 12], 'lin0.lora_B.weight': [10, 8], 'lin1.bias': [4], 'lin1.weight': [4, 10] },
    trainable: ['lin0.lora_A.default.weight', 'lin0.lora_B.default.weight', 'lin1.modules_to_save.default.bias', 'lin1.modules_to_save.default.weight'],
    counts: [lin0 + 44, TINY_TOTAL + lin0 + 44],
    line: 'trainable params: 220 || all params: 554 || trainable%: 39.7112',
  },
];

/** A non-identity adapter (PEFT's tests use init_lora_weights=False so that every check can fail). */
function configOf(c: MatrixCase, extra: LoraOptions = {}): LoraConfig {
  return new LoraConfig({ ...c.options, initLoraWeights: false, ...extra });
}

before(async () => {
  await setBackend();
});

for (const c of CASES) {
  describe(`LoRA matrix: ${c.name}`, () => {
    test('merged output equals unmerged; merging twice changes nothing; unmerge restores the base; mergeAndUnload', async () => {
      await quietly(() => checkMergeLayers(mlp, configOf(c)));
    });

    test('safe merge; a NaN adapter is refused with MergeError and no base weight changes', async () => {
      await quietly(() => checkSafeMerge(mlp, configOf(c)));
    });

    test('disableAdapter gives the base output exactly', async () => {
      await quietly(() => checkDisableAdapters(mlp, configOf(c)));
    });

    test('deleteAdapter refuses while merged, then frees exactly the adapter tensors', async () => {
      await quietly(() => checkDeleteAdapter(mlp, configOf(c)));
    });

    test('unload gives the base model back', async () => {
      await quietly(() => checkUnload(mlp, configOf(c)));
    });

    test("savePretrained writes PEFT's keys; fromPretrained on a fresh base reproduces tensors and output", async () => {
      const keys = Object.fromEntries(Object.entries(c.keys).map(([k, v]) => [`base_model.model.${k}`, v]));
      await quietly(() => checkSaveLoad(mlp, configOf(c), keys));
    });

    test("trainable parameters: PEFT's set, the per-layer formula and PEFT's printed line", async () => {
      await leakFree('trainability', async () => {
        const peft = getPeftModel(mlp.makeBase(), configOf(c));
        try {
          assert.deepEqual(trainableNames(peft), c.trainable.map((n) => `base_model.model.${n}`).sort());
          assert.deepEqual(peft.getNbTrainableParameters(), c.counts);
          const printed: unknown[] = [];
          const { log } = console;
          console.log = (...args: unknown[]) => void printed.push(...args);
          let line: string;
          try {
            line = peft.printTrainableParameters();
          } finally {
            console.log = log;
          }
          assert.equal(line, c.line);
          assert.deepEqual(printed, [c.line]);
          for (const [name, [r, scaling]] of Object.entries(c.scalings ?? {})) {
            const layer = peft.model.getSubmodule(name) as LoraLayer;
            assert.equal(layer.r.get('default'), r, `${name} r`);
            assert.equal(layer.scaling.get('default'), scaling, `${name} scaling`);
          }
        } finally {
          peft.dispose();
        }
      });
    });
  });
}

describe('LoRA matrix: default initialisation', () => {
  for (const c of CASES) {
    test(`${c.name}: init_lora_weights true starts as an identity`, async () => {
      await leakFree('identity', async () => {
        const base = mlp.makeBase();
        const baseOut = outputOf(mlp, base);
        const peft = await quietly(() => getPeftModel(base, new LoraConfig(c.options)).eval());
        try {
          assertClose(outputOf(mlp, peft), baseOut, c.options.useDora ? 1e-6 : 0, 'identity at init');
        } finally {
          peft.dispose();
        }
      });
    });
  }
});

describe('lora_dropout', () => {
  test('active in training (the LoRA branch only), off in eval; merged equals eval', async () => {
    await leakFree('dropout', () => {
      const base = mlp.makeBase();
      const baseOut = outputOf(mlp, base);
      const peft = getPeftModel(base, new LoraConfig({ targetModules: ['lin0', 'lin1'], loraDropout: 0.5, initLoraWeights: false }));
      try {
        peft.eval();
        const evalOut = outputOf(mlp, peft);
        assertBitIdentical(outputOf(mlp, peft), evalOut, 'eval is deterministic');
        peft.train();
        const a = outputOf(mlp, peft);
        const b = outputOf(mlp, peft);
        assertDiffers(a, evalOut, 1e-4, 'train vs eval');
        assertDiffers(a, b, 1e-4, 'two training forwards');
        assertBitIdentical(peft.disableAdapter(() => outputOf(mlp, peft)), baseOut, 'disabled in training: base output, no dropout on the base path');
        peft.eval();
        peft.mergeAdapter();
        assertClose(outputOf(mlp, peft), evalOut, 1e-5, 'merged vs eval');
      } finally {
        peft.dispose();
      }
    });
  });
});

describe('several adapters', () => {
  const configA = () => new LoraConfig({ targetModules: ['lin0', 'lin1'], initLoraWeights: false });
  const configB = () => new LoraConfig({ targetModules: ['lin0', 'conv2d', 'emb'], r: 4, loraAlpha: 16, initLoraWeights: false });

  /** The base model with W + ΔW of each named adapter added by hand, from getDeltaWeight. */
  function handMerged(peft: PeftModel<TinyMLP>, names: string[]): TinyMLP {
    const model = mlp.makeBase();
    for (const [path, layer] of peft.base_model.tunerLayers()) {
      const target = model.getSubmodule(path) as unknown as { weight: tf.Variable };
      for (const name of names) {
        if (!layer.hasAdapter(name)) continue;
        const next = tf.tidy(() => {
          const delta = layer.getDeltaWeight(name);
          assert.deepEqual(delta.shape, target.weight.shape, `${path} ΔW shape`);
          return tf.add(target.weight, delta);
        });
        target.weight.assign(next);
        next.dispose();
      }
    }
    return model;
  }

  test('addAdapter: the new adapter is inactive and frozen; setAdapter switches output and trainability', async () => {
    await leakFree('two adapters', () => {
      const peft = getPeftModel(mlp.makeBase(), configA()).eval();
      try {
        const outA = outputOf(mlp, peft);
        peft.addAdapter('other', configB());
        assert.deepEqual(peft.activeAdapters, ['default']);
        assertBitIdentical(outputOf(mlp, peft), outA, 'adding an adapter does not change the output');
        const trainA = trainableNames(peft);
        assert.ok(trainA.every((n) => n.includes('.default')), 'only "default" trains');
        assert.equal(trainA.length, 4);
        assert.deepEqual(peft.getNbTrainableParameters(), [lin0 + lin1, TINY_TOTAL + lin0 + lin1 + 4 * 22 + (4 * 9 + 2 * 4) + 4 * 26]);

        peft.setAdapter('other');
        assert.deepEqual(peft.activeAdapters, ['other']);
        const outB = outputOf(mlp, peft);
        assertDiffers(outB, outA);
        assert.ok(trainableNames(peft).every((n) => n.includes('.other')), 'only "other" trains');
        assert.equal(trainableNames(peft).length, 6);

        peft.setAdapter('default');
        assertBitIdentical(outputOf(mlp, peft), outA, 'switching back');
      } finally {
        peft.dispose();
      }
    });
  });

  test('two active adapters add up: output = base with W + ΔW1 + ΔW2 (from getDeltaWeight); merging both gives the same', async () => {
    await leakFree('two active', () => {
      const base = mlp.makeBase();
      const pristine = baseWeights(base);
      const peft = getPeftModel(base, configA()).eval();
      peft.addAdapter('other', configB());
      try {
        const outA = outputOf(mlp, peft);
        peft.setAdapter('other');
        const outB = outputOf(mlp, peft);
        peft.setAdapter(['default', 'other']);
        assert.deepEqual(peft.activeAdapters, ['default', 'other']);
        const both = outputOf(mlp, peft);
        assertDiffers(both, outA);
        assertDiffers(both, outB);
        // Both train while both are active.
        assert.equal(trainableNames(peft).length, 10);

        for (const names of [['default'], ['other'], ['default', 'other']]) {
          const hand = handMerged(peft, names);
          const expected = outputOf(mlp, hand);
          hand.dispose();
          const actual = names.length === 2 ? both : names[0] === 'default' ? outA : outB;
          assertClose(actual, expected, 1e-5, `active ${names.join('+')} vs hand-merged`);
        }

        peft.mergeAdapter();
        assertClose(outputOf(mlp, peft), both, 1e-5, 'both merged');
        const lin0 = peft.model.getSubmodule('lin0') as LoraLayer;
        assert.deepEqual(lin0.mergedAdapters, ['default', 'other']);
        peft.unmergeAdapter();
        // W + ΔW1 + ΔW2 - ΔW1 - ΔW2 in float32: a few ulps of |ΔW| (unseeded N(0, 1) factors reach ~10), not of W.
        assertClose(baseWeights(peft.model), pristine, 1e-5, 'unmerge after merging both');

        // Sequential merges equal one merge of both.
        peft.mergeAdapter({ adapterNames: ['default'] });
        peft.mergeAdapter({ adapterNames: ['other'] });
        assertClose(outputOf(mlp, peft), both, 1e-5, 'sequential merges');
        peft.unmergeAdapter();
        assertClose(baseWeights(peft.model), pristine, 1e-5, 'unmerge after sequential merges');
      } finally {
        peft.dispose();
      }
    });
  });

  test('setAdapter on a merged model unmerges first, as PEFT does (with a warning)', async () => {
    await quietly(() =>
      leakFree('setAdapter while merged', () => {
        const base = mlp.makeBase();
        const pristine = baseWeights(base);
        const peft = getPeftModel(base, configA()).eval();
        peft.addAdapter('other', configB());
        try {
          peft.setAdapter('other');
          const outB = outputOf(mlp, peft);
          peft.setAdapter('default');
          peft.mergeAdapter();
          peft.setAdapter('other');
          assert.ok(peft.base_model.tunerLayers().every(([, l]) => !l.merged), 'nothing merged');
          assertClose(baseWeights(peft.model), pristine, 1e-6, 'base weights');
          assertClose(outputOf(mlp, peft), outB, 1e-5, 'output of "other"');
        } finally {
          peft.dispose();
        }
      }),
    );
  });

  test('mergeAndUnload({ adapterNames }) merges only the named adapters', async () => {
    for (const names of [['default'], ['other'], ['default', 'other']]) {
      await leakFree('mergeAndUnload subset', () => {
        const peft = getPeftModel(mlp.makeBase(), configA()).eval();
        peft.addAdapter('other', configB());
        try {
          peft.setAdapter(names);
          const expected = outputOf(mlp, peft);
          peft.setAdapter(['default', 'other']);
          const plain = peft.mergeAndUnload({ adapterNames: names });
          assert.deepEqual(adapterModules(plain), []);
          assertClose(outputOf(mlp, plain), expected, 1e-5, `mergeAndUnload(${names.join('+')})`);
        } finally {
          peft.dispose();
        }
      });
    }
  });

  test('deleting the active adapter falls back to the remaining one; its tensors are freed', async () => {
    await leakFree('delete active', () => {
      const peft = getPeftModel(mlp.makeBase(), configA()).eval();
      peft.addAdapter('other', configB());
      try {
        peft.setAdapter('other');
        const outB = outputOf(mlp, peft);
        peft.setAdapter('default');
        const owned = adapterTensors(peft, 'default').size;
        assert.equal(owned, 4);
        const before = tf.memory().numTensors;
        peft.deleteAdapter('default');
        assert.equal(before - tf.memory().numTensors, owned);
        assert.deepEqual(peft.activeAdapters, ['other']);
        assertBitIdentical(outputOf(mlp, peft), outB, 'output of the remaining adapter');
        assert.ok(trainableNames(peft).every((n) => n.includes('.other')) && trainableNames(peft).length === 6, '"other" now trains');
        // lin1 held only "default": it stays an adapter layer with no adapter left.
        assert.deepEqual((peft.model.getSubmodule('lin1') as LoraLayer).availableAdapters(), []);
      } finally {
        peft.dispose();
      }
    });
  });

  test('savePretrained writes "default" in the folder and other adapters in subfolders; both load back', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        await leakFree('save two', async () => {
          const peft = getPeftModel(mlp.makeBase(), configA()).eval();
          peft.addAdapter('other', configB());
          let loaded: PeftModel<TinyMLP> | undefined;
          try {
            const outA = outputOf(mlp, peft);
            peft.setAdapter('other');
            const outB = outputOf(mlp, peft);
            await peft.savePretrained(dir);
            loaded = await PeftModel.fromPretrained(mlp.makeBase(), dir);
            await loaded.loadAdapter(`${dir}/other`, 'other');
            assert.deepEqual(loaded.activeAdapters, ['default'], 'loadAdapter does not activate');
            assertBitIdentical(outputOf(mlp, loaded), outA, 'default after reload');
            loaded.setAdapter('other');
            assertBitIdentical(outputOf(mlp, loaded), outB, 'other after reload');
            // A checkpoint does not depend on the adapter name it was saved under.
            await loaded.loadAdapter(dir, 'yet-another');
            loaded.setAdapter('yet-another');
            assertBitIdentical(outputOf(mlp, loaded), outA, 'default loaded under another name');
          } finally {
            peft.dispose();
            loaded?.dispose();
          }
        });
      }),
    );
  });

  test('selectedAdapters saves only those; a name that merely contains "default" is not mixed in', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        const peft = getPeftModel(mlp.makeBase(), configA());
        try {
          for (const name of ['default2', 'other_default', 'foodefault_bar']) peft.addAdapter(name, configA());
          await peft.savePretrained(dir, { selectedAdapters: ['default'] });
          assert.deepEqual([...(await savedShapes(`${dir}/adapter_model.safetensors`)).keys()].sort(), Object.keys(LINEAR_KEYS).map((k) => `base_model.model.${k}`).sort());
          assert.ok(!existsSync(`${dir}/default2`));
        } finally {
          peft.dispose();
        }
      }),
    );
  });
});

describe('modules_to_save', () => {
  const config = () => new LoraConfig({ targetModules: ['lin0'], modulesToSave: ['lin1'], initLoraWeights: false });

  /** Makes the copy of lin1 differ from the original, as training would. */
  function train(peft: PeftModel<TinyMLP>): void {
    const wrapper = peft.model.getSubmodule('lin1') as ModulesToSaveWrapper;
    const copy = wrapper.modules_to_save.get('default') as Linear;
    const next = tf.tidy(() => tf.add(copy.weight, 0.5));
    copy.weight.assign(next);
    next.dispose();
  }

  test('the copy runs, the original runs when disabled; the copy is saved as the module itself', async () => {
    await quietly(() =>
      leakFree('modules_to_save', async () => {
        const base = mlp.makeBase();
        const baseOut = outputOf(mlp, base);
        const peft = getPeftModel(base, config()).eval();
        try {
          const wrapper = peft.model.getSubmodule('lin1');
          assert.ok(wrapper instanceof ModulesToSaveWrapper);
          assert.ok(wrapper.original_module.parameters().every((p) => !p.trainable), 'original frozen');
          const before = outputOf(mlp, peft);
          train(peft);
          const trained = outputOf(mlp, peft);
          assertDiffers(trained, before);
          assertBitIdentical(peft.disableAdapter(() => outputOf(mlp, peft)), baseOut, 'disabled: original module');
          await withTempDir(async (dir) => {
            await peft.savePretrained(dir);
            const loaded = await PeftModel.fromPretrained(mlp.makeBase(), dir);
            try {
              assertBitIdentical(outputOf(mlp, loaded), trained, 'trained head after reload');
            } finally {
              loaded.dispose();
            }
          });
        } finally {
          peft.dispose();
        }
      }),
    );
  });

  test('mergeAndUnload and unload keep the active copy (the trained head), as PEFT does', async () => {
    for (const merge of [true, false]) {
      await leakFree('unload modules_to_save', () => {
        const peft = getPeftModel(mlp.makeBase(), config()).eval();
        try {
          train(peft);
          const copyWeight = Float32Array.from(((peft.model.getSubmodule('lin1') as ModulesToSaveWrapper).modules_to_save.get('default') as Linear).weight.dataSync());
          const plain = merge ? peft.mergeAndUnload() : peft.unload();
          assert.ok(plain.lin1 instanceof Linear, 'lin1 is a plain Linear');
          assert.deepEqual(adapterModules(plain), []);
          assertBitIdentical(Float32Array.from(plain.lin1.weight.dataSync()), copyWeight, `${merge ? 'mergeAndUnload' : 'unload'} keeps the trained copy`);
        } finally {
          peft.dispose();
        }
      });
    }
  });
});
