// PeftModel's API around the tuner: typed errors (each checked by class and `code`, and for "nothing changed":
// no adapter layer added, weights bit-identical, no tensor leaked), inference vs training mode on load, and leak
// checks around forward, merge/unmerge and generate on a LoRA-adapted Llama.
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../src/engine/index.js';
import {
  AdapterLoadError,
  AdapterNameError,
  ConfigError,
  MergeError,
  NoMatchingModuleError,
  SafetensorsError,
  UnsupportedLayerError,
} from '../src/errors.js';
import { loadSafetensors, saveSafetensors } from '../src/io/index.js';
import { LlamaForCausalLM } from '../src/models/llama/index.js';
import { disposeOutput } from '../src/models/outputs.js';
import { Embedding, Linear, Module } from '../src/nn/index.js';
import { PeftModel, getPeftModel } from '../src/peft-model.js';
import { LoHaConfig } from '../src/tuners/loha/config.js';
import { LoraConfig } from '../src/tuners/lora/config.js';
import { assertNoLeak } from './helpers/assert.js';
import {
  adapterModules,
  allWeights,
  assertBitIdentical,
  assertRejectsCode,
  assertThrowsCode,
  baseWeights,
  leakFree,
  outputOf,
  quietly,
  savedShapes,
  trainableNames,
  withTempDir,
} from './tuners/common.js';
import type { ModelSpec } from './tuners/common.js';
import { TinyMLP, tinyInput } from './tuners/tiny-mlp.js';

process.env['PEFT_TS_QUIET'] = '1';

const mlp: ModelSpec<TinyMLP> = { makeBase: () => new TinyMLP(1), input: tinyInput, run: (model, x) => model.forward(x) };
const lora = (options: NonNullable<ConstructorParameters<typeof LoraConfig>[0]> = {}) =>
  new LoraConfig({ targetModules: ['lin0', 'lin1'], initLoraWeights: false, ...options });

/** A model whose Linear comes before its Embedding in `namedModules` order (the tiny MLP has the reverse). */
class LinearFirst extends Module {
  lin0 = this.registerModule('lin0', new Linear(4, 4, { seed: 3 }));
  emb = this.registerModule('emb', new Embedding(10, 4, { seed: 4 }));
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.lin0.forward(this.emb.forward(ids)));
  }
}

before(async () => {
  await setBackend();
});

/**
 * Runs `fn` (which must throw `cls` with `code`) on a fresh base model and checks that it changed nothing: no
 * adapter layer, the same weights bit for bit, no tensor left behind.
 */
async function refusesUnchanged<M extends Module>(
  make: () => M,
  fn: (model: M) => unknown,
  cls: abstract new (...args: never[]) => Error,
  code: string,
  what: string,
): Promise<Error> {
  const model = make();
  const weights = baseWeights(model);
  const modules = [...model.namedModules()].map(([n, m]) => [n, m.constructor.name]);
  const objects = [...model.namedModules()];
  let error: Error | undefined;
  await leakFree(what, async () => {
    error = await quietly(async () => {
      let caught: unknown;
      try {
        await fn(model);
      } catch (e) {
        caught = e;
      }
      return caught as Error;
    });
  });
  assert.ok(error instanceof cls, `${what}: expected ${cls.name}, got ${String(error)}`);
  assert.equal((error as Error & { code?: string }).code, code, `${what}: code`);
  assert.deepEqual(adapterModules(model), [], `${what}: no adapter layer added`);
  assert.deepEqual([...model.namedModules()].map(([n, m]) => [n, m.constructor.name]), modules, `${what}: module tree unchanged`);
  for (const [[name, module], [, now]] of objects.map((e, i) => [e, [...model.namedModules()][i]!] as const)) {
    assert.equal(now, module, `${what}: ${name || '<root>'} is the same module object`);
  }
  assertBitIdentical(baseWeights(model), weights, `${what}: weights unchanged`);
  model.dispose();
  return error!;
}

describe('typed errors on getPeftModel, validated before the model is touched', () => {
  test('targets that match nothing: NoMatchingModuleError listing sample module names', async () => {
    const error = await refusesUnchanged(mlp.makeBase, (m) => getPeftModel(m, lora({ targetModules: ['nope'] })), NoMatchingModuleError, 'no_matching_module', 'no match');
    assert.ok(error instanceof NoMatchingModuleError);
    assert.equal(error.reason, 'not_found');
    assert.ok(error.sampleNames.length > 0 && error.sampleNames.includes('lin0'), `sample names ${error.sampleNames.join(', ')}`);
    const excluded = await refusesUnchanged(mlp.makeBase, (m) => getPeftModel(m, lora({ targetModules: ['lin0'], excludeModules: ['lin0'] })), NoMatchingModuleError, 'no_matching_module', 'all excluded');
    // PEFT's third case: other modules matched nothing, the one that matched was excluded.
    assert.equal((excluded as NoMatchingModuleError).reason, 'excluded_or_not_found');
  });

  test('a LayerNorm (no LoRA layer for it): UnsupportedLayerError, also when listed after a supported target', async () => {
    for (const targetModules of [['norm'], ['lin0', 'norm', 'lin1'], 'lin0|norm']) {
      const error = await refusesUnchanged(mlp.makeBase, (m) => getPeftModel(m, lora({ targetModules })), UnsupportedLayerError, 'unsupported_layer', `targets ${String(targetModules)}`);
      assert.ok(error instanceof UnsupportedLayerError);
      assert.equal(error.moduleName, 'norm');
      assert.equal(error.kind, 'LayerNorm');
      assert.ok(error.supported.includes('linear'));
    }
  });

  test('DoRA or lora_bias on an Embedding after a Linear: UnsupportedLayerError before the Linear is wrapped', async () => {
    const make = () => new LinearFirst();
    const dora = await refusesUnchanged(make, (m) => getPeftModel(m, lora({ targetModules: ['lin0', 'emb'], useDora: true })), UnsupportedLayerError, 'unsupported_layer', 'DoRA on emb');
    assert.equal((dora as UnsupportedLayerError).moduleName, 'emb');
    const bias = await refusesUnchanged(make, (m) => getPeftModel(m, lora({ targetModules: ['lin0', 'emb'], loraBias: true })), UnsupportedLayerError, 'unsupported_layer', 'lora_bias on emb');
    assert.equal((bias as UnsupportedLayerError).moduleName, 'emb');
  });

  test('adapter names that are paths or not identifiers: AdapterNameError', async () => {
    for (const name of ['../evil', 'a/b', 'a\\b', '..', '.', '', 'with space', 'dot.ted']) {
      const error = await refusesUnchanged(mlp.makeBase, (m) => getPeftModel(m, lora(), { adapterName: name }), AdapterNameError, 'adapter_name', `name ${JSON.stringify(name)}`);
      assert.equal((error as AdapterNameError).adapterName, name);
    }
  });
});

describe('typed errors on an existing PeftModel leave it as it was', () => {
  /** Asserts `fn` throws `cls`/`code` on a fresh LoRA model, and that adapters, weights, output and tensor count are unchanged. */
  async function refusesOnPeft(fn: (peft: PeftModel<TinyMLP>) => unknown, cls: abstract new (...args: never[]) => Error, code: string, what: string): Promise<void> {
    const peft = getPeftModel(mlp.makeBase(), lora()).eval();
    try {
      const weights = allWeights(peft);
      const out = outputOf(mlp, peft);
      const layers = adapterModules(peft.model);
      const tree = [...peft.model.namedModules()].map(([n, m]) => [n, m.constructor.name]);
      const trainable = trainableNames(peft);
      await leakFree(what, async () => {
        await quietly(async () => {
          if (fn.constructor.name === 'AsyncFunction') await assertRejectsCode(async () => fn(peft), cls, code, what);
          else assertThrowsCode(() => fn(peft), cls, code, what);
        });
      });
      assert.deepEqual([...peft.peftConfig.keys()], ['default'], `${what}: adapters`);
      assert.deepEqual(peft.activeAdapters, ['default'], `${what}: active adapters`);
      assert.deepEqual(adapterModules(peft.model), layers, `${what}: adapter layers`);
      assert.deepEqual([...peft.model.namedModules()].map(([n, m]) => [n, m.constructor.name]), tree, `${what}: module tree`);
      assert.deepEqual(trainableNames(peft), trainable, `${what}: trainable parameters`);
      assertBitIdentical(allWeights(peft), weights, `${what}: tensors`);
      assertBitIdentical(outputOf(mlp, peft), out, `${what}: output`);
    } finally {
      peft.dispose();
    }
  }

  test('addAdapter with a taken or invalid name: AdapterNameError', async () => {
    await refusesOnPeft((p) => p.addAdapter('default', lora()), AdapterNameError, 'adapter_name', 'duplicate name');
    await refusesOnPeft((p) => p.addAdapter('../evil', lora()), AdapterNameError, 'adapter_name', '../evil');
    await refusesOnPeft((p) => p.addAdapter('a/b', lora()), AdapterNameError, 'adapter_name', 'a/b');
  });

  test('addAdapter validating targets: NoMatchingModuleError / UnsupportedLayerError add nothing', async () => {
    await refusesOnPeft((p) => p.addAdapter('other', lora({ targetModules: ['nope'] })), NoMatchingModuleError, 'no_matching_module', 'no match');
    await refusesOnPeft((p) => p.addAdapter('other', lora({ targetModules: ['conv2d', 'norm'] })), UnsupportedLayerError, 'unsupported_layer', 'norm');
    await refusesOnPeft((p) => p.addAdapter('other', lora({ targetModules: ['lin0', 'emb'], useDora: true })), UnsupportedLayerError, 'unsupported_layer', 'DoRA on emb');
  });

  test('a second adapter with a trainable bias, or of another method: ConfigError', async () => {
    const peft = getPeftModel(mlp.makeBase(), lora({ bias: 'all' }));
    try {
      const before = tf.memory().numTensors;
      assertThrowsCode(() => peft.addAdapter('other', lora({ bias: 'lora_only' })), ConfigError, 'config', 'two adapters with bias');
      assert.equal(tf.memory().numTensors, before);
      assert.deepEqual([...peft.peftConfig.keys()], ['default']);
      peft.addAdapter('other', lora({ bias: 'none' }));
    } finally {
      peft.dispose();
    }
    await refusesOnPeft((p) => p.addAdapter('other', new LoHaConfig({ targetModules: ['lin0'] })), ConfigError, 'config', 'LoHa on a LoRA model');
  });

  test('setAdapter / deleteAdapter of an unknown adapter, savePretrained of one: typed errors', async () => {
    await refusesOnPeft((p) => p.setAdapter('nope'), AdapterNameError, 'adapter_name', 'setAdapter');
    await refusesOnPeft((p) => p.setAdapter(['default', 'nope']), AdapterNameError, 'adapter_name', 'setAdapter list');
    await refusesOnPeft((p) => p.deleteAdapter('nope'), AdapterNameError, 'adapter_name', 'deleteAdapter');
    await withTempDir(async (dir) => {
      await refusesOnPeft(async (p) => p.savePretrained(dir, { selectedAdapters: ['nope'] }), ConfigError, 'config', 'savePretrained');
    });
  });

  test('deleting a merged adapter: MergeError; merging a NaN adapter safely: MergeError', async () => {
    const peft = getPeftModel(mlp.makeBase(), lora()).eval();
    try {
      peft.mergeAdapter();
      assertThrowsCode(() => peft.deleteAdapter('default'), MergeError, 'merge');
      assert.ok(peft.peftConfig.has('default'));
    } finally {
      peft.dispose();
    }
  });

  test('loadAdapter: bad name, shape mismatch, corrupt file, unknown peft_type: nothing added', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        const source = getPeftModel(mlp.makeBase(), lora());
        await source.savePretrained(dir);
        source.dispose();
        await refusesOnPeft(async (p) => p.loadAdapter(dir, '../evil'), AdapterNameError, 'adapter_name', 'loadAdapter ../evil');
        await refusesOnPeft(async (p) => p.loadAdapter(dir, 'default'), AdapterNameError, 'adapter_name', 'loadAdapter duplicate');

        const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, r: 4 }));
        await refusesOnPeft(async (p) => p.loadAdapter(dir, 'other'), AdapterLoadError, 'adapter_load', 'loadAdapter shape mismatch');

        await withTempDir(async (elsewhere) => {
          // Other targets than the model's adapter: the layers the failed load wrapped are unwrapped again.
          const other = getPeftModel(mlp.makeBase(), lora({ targetModules: ['lin1', 'emb'], modulesToSave: ['conv2d'] }));
          await other.savePretrained(elsewhere);
          other.dispose();
          const otherConfig = JSON.parse(readFileSync(join(elsewhere, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
          writeFileSync(join(elsewhere, 'adapter_config.json'), JSON.stringify({ ...otherConfig, rank_pattern: { emb: 3 } }));
          await refusesOnPeft(async (p) => p.loadAdapter(elsewhere, 'other'), AdapterLoadError, 'adapter_load', 'loadAdapter mismatch on other targets');
        });

        writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, peft_type: 'NOT_A_METHOD' }));
        await refusesOnPeft(async (p) => p.loadAdapter(dir, 'other'), ConfigError, 'config', 'loadAdapter unknown peft_type');

        writeFileSync(join(dir, 'adapter_config.json'), new LoHaConfig({ targetModules: ['lin0', 'lin1'] }).toJsonString());
        await refusesOnPeft(async (p) => p.loadAdapter(dir, 'other'), ConfigError, 'config', 'loadAdapter of a LoHa adapter');

        writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
        truncateSync(join(dir, 'adapter_model.safetensors'), statSync(join(dir, 'adapter_model.safetensors')).size - 7);
        await refusesOnPeft(async (p) => p.loadAdapter(dir, 'other'), SafetensorsError, 'safetensors', 'loadAdapter truncated file');
      }),
    );
  });
});

describe('typed errors on PeftModel.fromPretrained leave the base model as it was', () => {
  /** Saves a LoRA adapter of the tiny MLP into `dir`. */
  async function saveAdapter(dir: string, options: NonNullable<ConstructorParameters<typeof LoraConfig>[0]> = {}): Promise<Record<string, unknown>> {
    const peft = getPeftModel(mlp.makeBase(), lora(options));
    await quietly(() => peft.savePretrained(dir));
    peft.dispose();
    return JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  }

  test('adapterName that is a path: AdapterNameError', async () => {
    await withTempDir(async (dir) => {
      await saveAdapter(dir);
      for (const adapterName of ['../evil', 'a/b']) {
        await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir, { adapterName }), AdapterNameError, 'adapter_name', adapterName);
      }
    });
  });

  test('shapes that do not fit the model: AdapterLoadError, model unwrapped again, nothing leaked', async () => {
    await withTempDir(async (dir) => {
      const config = await saveAdapter(dir);
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, r: 4 }));
      await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), AdapterLoadError, 'adapter_load', 'r 4 config, r 8 tensors');
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, rank_pattern: { lin1: 2 } }));
      await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), AdapterLoadError, 'adapter_load', 'rank_pattern mismatch on lin1 only');
    });
    await withTempDir(async (dir) => {
      // With modules_to_save, the user's own module (not a copy) must be back in place.
      const config = await saveAdapter(dir, { targetModules: ['lin0'], modulesToSave: ['lin1', 'conv2d'] });
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, r: 2 }));
      await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), AdapterLoadError, 'adapter_load', 'mismatch with modules_to_save');
    });
  });

  test('an adapter made for another model: AdapterLoadError', async () => {
    await withTempDir(async (dir) => {
      await saveAdapter(dir);
      const other = () => {
        const m = new TinyMLP(1);
        // Same names, other sizes: swap lin1 for a wider Linear.
        m.setSubmodule('lin1', new Linear(10, 7, { seed: 9 }));
        return m;
      };
      await refusesUnchanged(other, (m) => PeftModel.fromPretrained(m, dir), AdapterLoadError, 'adapter_load', 'lin1 10->7');
    });
  });

  test('a truncated or garbled adapter_model.safetensors: SafetensorsError', async () => {
    await withTempDir(async (dir) => {
      await saveAdapter(dir);
      const file = join(dir, 'adapter_model.safetensors');
      const original = readFileSync(file);
      for (const [what, bytes] of [
        ['last bytes cut', original.subarray(0, original.length - 5)],
        ['half the file', original.subarray(0, original.length >> 1)],
        ['header length only', original.subarray(0, 8)],
        ['empty', Buffer.alloc(0)],
        ['header garbled', Buffer.concat([original.subarray(0, 8), Buffer.from('{"nope'), original.subarray(14)])],
      ] as const) {
        writeFileSync(file, bytes);
        await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), SafetensorsError, 'safetensors', what);
      }
    });
  });

  test('unknown or unimplemented peft_type, missing config: ConfigError; missing weights: AdapterLoadError', async () => {
    await withTempDir(async (dir) => {
      const config = await saveAdapter(dir);
      for (const peftType of ['NOT_A_METHOD', 'IA3', 42, null]) {
        writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, peft_type: peftType }));
        await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), ConfigError, 'config', `peft_type ${String(peftType)}`);
      }
      writeFileSync(join(dir, 'adapter_config.json'), '{"peft_type": "LORA", ');
      await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), ConfigError, 'config', 'truncated JSON');
      await withTempDir(async (empty) => {
        await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, empty), ConfigError, 'config', 'no adapter_config.json');
        writeFileSync(join(empty, 'adapter_config.json'), JSON.stringify(config));
        await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, empty), AdapterLoadError, 'adapter_load', 'no adapter_model.safetensors');
      });
    });
  });

  test('targets of the file missing from the model: NoMatchingModuleError', async () => {
    await withTempDir(async (dir) => {
      const config = await saveAdapter(dir);
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, target_modules: ['q_proj'] }));
      await refusesUnchanged(mlp.makeBase, (m) => PeftModel.fromPretrained(m, dir), NoMatchingModuleError, 'no_matching_module', 'q_proj');
    });
  });
});

describe('loading for inference or for training', () => {
  test('fromPretrained: inference mode (nothing trainable, eval); isTrainable: adapter tensors train', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        const peft = getPeftModel(mlp.makeBase(), lora({ modulesToSave: ['conv2d'] }));
        const expected = trainableNames(peft);
        const [trainable] = peft.getNbTrainableParameters();
        await peft.savePretrained(dir);
        peft.dispose();
        assert.deepEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'))['inference_mode'], true, 'saved in inference mode');

        const frozen = await PeftModel.fromPretrained(mlp.makeBase(), dir);
        assert.deepEqual(trainableNames(frozen), []);
        assert.equal(frozen.printTrainableParameters(), `trainable params: 0 || all params: ${frozen.getNbTrainableParameters()[1].toLocaleString('en-US')} || trainable%: 0.0000`);
        assert.equal(frozen.peftConfig.get('default')!.inferenceMode, true);
        assert.ok(frozen.modules().every((m) => !m.training), 'eval mode');
        frozen.dispose();

        const training = await PeftModel.fromPretrained(mlp.makeBase(), dir, { isTrainable: true });
        assert.deepEqual(trainableNames(training), expected);
        assert.equal(training.getNbTrainableParameters()[0], trainable);
        assert.equal(training.peftConfig.get('default')!.inferenceMode, false);
        training.dispose();
      }),
    );
  });

  test('files keyed without the base_model.model. prefix (transformers integration) load too', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        const peft = getPeftModel(mlp.makeBase(), lora()).eval();
        const out = outputOf(mlp, peft);
        await peft.savePretrained(dir);
        peft.dispose();
        const file = join(dir, 'adapter_model.safetensors');
        const tensors = await loadSafetensors(file);
        const stripped = new Map([...tensors].map(([k, v]) => [k.replace(/^base_model\.model\./, ''), v]));
        await saveSafetensors(file, stripped, { metadata: { format: 'pt' } });
        for (const t of tensors.values()) t.dispose();
        const loaded = await PeftModel.fromPretrained(mlp.makeBase(), dir);
        assertBitIdentical(outputOf(mlp, loaded), out);
        loaded.dispose();
      }),
    );
  });

  test('a file with a missing key warns (as PEFT does) and keeps the initialised value', async () => {
    await withTempDir(async (dir) => {
      const peft = getPeftModel(mlp.makeBase(), lora());
      await quietly(() => peft.savePretrained(dir));
      peft.dispose();
      const file = join(dir, 'adapter_model.safetensors');
      const tensors = await loadSafetensors(file);
      const dropped = 'base_model.model.lin1.lora_B.weight';
      const kept = new Map([...tensors].filter(([k]) => k !== dropped));
      await saveSafetensors(file, kept, { metadata: { format: 'pt' } });
      for (const t of tensors.values()) t.dispose();
      const warnings: string[] = [];
      const { warn } = console;
      console.warn = (...args: unknown[]) => void warnings.push(args.join(' '));
      let loaded: PeftModel<TinyMLP> | undefined;
      try {
        loaded = await PeftModel.fromPretrained(mlp.makeBase(), dir);
      } finally {
        console.warn = warn;
      }
      assert.ok(warnings.some((w) => w.includes('missing adapter keys') && w.includes(dropped)), warnings.join('\n'));
      loaded.dispose();
    });
  });
});

// ------------------------------------------------------------------------------------------- leak checks

const llamaConfig = {
  vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  max_position_embeddings: 64, initializer_range: 0.2, eos_token_id: 63, pad_token_id: 0,
};

describe('no tensor leaks on a LoRA-adapted Llama', () => {
  const config = () => new LoraConfig({ targetModules: ['q_proj', 'v_proj', 'down_proj', 'embed_tokens'], initLoraWeights: false, taskType: 'CAUSAL_LM' });
  const ids = [
    [1, 5, 9, 2],
    [3, 3, 7, 8],
  ];

  test('forward, merge/unmerge, disable, generate (greedy and sampled), mergeAndUnload', async () => {
    const peft = await quietly(() => getPeftModel(new LlamaForCausalLM(llamaConfig, { seed: 11 }), config(), { seed: 12 }));
    try {
      const run = () => {
        const out = peft.forward({ inputIds: ids, labels: ids });
        const logits = Float32Array.from(out.logits.dataSync());
        disposeOutput(out);
        return logits;
      };
      const adapted = run(); // warm-up outside the checks
      await assertNoLeak(() => void run(), 'forward');
      await assertNoLeak(() => {
        peft.mergeAdapter();
        peft.mergeAdapter({ safeMerge: true });
        peft.unmergeAdapter();
        peft.mergeAdapter({ safeMerge: true });
        peft.unmergeAdapter();
      }, 'merge/unmerge');
      await assertNoLeak(() => void peft.disableAdapter(run), 'disableAdapter forward');
      await peft.generate(ids, { maxNewTokens: 3 });
      const greedy = await assertNoLeak(() => peft.generate(ids, { maxNewTokens: 5 }), 'generate');
      assert.equal(greedy.length, 2);
      assert.equal(greedy[0]!.length, 4 + 5);
      await assertNoLeak(() => peft.generate(ids, { maxNewTokens: 4, doSample: true, topK: 5 }), 'sampled generate');
      peft.mergeAdapter();
      await assertNoLeak(() => peft.generate(ids, { maxNewTokens: 4 }), 'merged generate');
      const mergedGreedy = await peft.generate(ids, { maxNewTokens: 5 });
      assert.deepEqual(mergedGreedy, greedy, 'merged model decodes the same');
      peft.unmergeAdapter();
      assert.ok(adapted.length > 0);
    } finally {
      peft.dispose();
    }
  });

  test('building, saving, loading and disposing a PeftModel leaves nothing behind', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        await leakFree('lifecycle', async () => {
          const peft = getPeftModel(new LlamaForCausalLM(llamaConfig, { seed: 11 }), config());
          await peft.savePretrained(dir);
          const loaded = await PeftModel.fromPretrained(new LlamaForCausalLM(llamaConfig, { seed: 11 }), dir);
          await loaded.loadAdapter(dir, 'second');
          loaded.setAdapter(['default', 'second']);
          loaded.deleteAdapter('second');
          const plain = loaded.mergeAndUnload();
          assert.deepEqual(adapterModules(plain), []);
          peft.dispose();
          plain.dispose();
        });
      }),
    );
  });

  test('the saved file carries the full embedding when embed_tokens is a target (save_embedding_layers "auto")', async () => {
    await quietly(() =>
      withTempDir(async (dir) => {
        const peft = getPeftModel(new LlamaForCausalLM(llamaConfig, { seed: 11 }), config());
        await peft.savePretrained(dir);
        peft.dispose();
        const shapes = await savedShapes(join(dir, 'adapter_model.safetensors'));
        assert.deepEqual(shapes.get('base_model.model.model.embed_tokens.base_layer.weight'), [64, 32]);
        assert.deepEqual(shapes.get('base_model.model.model.embed_tokens.lora_embedding_A'), [8, 64]);
        assert.deepEqual(shapes.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'), [32, 8]);
        assert.equal(shapes.size, 2 + 1 + 2 * 3 * 2);
      }),
    );
  });
});
