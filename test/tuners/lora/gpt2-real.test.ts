// A real PEFT 0.17.1 LoRA adapter (../shared/realdata/gpt2-tigrinya-lora: r 8, alpha 32, c_attn/c_proj,
// fan_in_fan_out) loaded onto a GPT-2 of the standard `gpt2` shape with random weights (the base checkpoint is not
// part of realdata): every key of the file maps, GPT-2's Conv1D layers get fan_in_fan_out LoRA, merging matches
// the unmerged output, and savePretrained writes back the same file contents. Skipped when realdata is absent.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { SafetensorsError } from '../../../src/errors.js';
import { SafetensorsFile, loadSafetensors } from '../../../src/io/index.js';
import { GPT2LMHeadModel } from '../../../src/models/gpt2/modeling.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { PeftModel } from '../../../src/peft-model.js';
import { adapterParameters } from '../../../src/tuners/adapter-state.js';
import { LoraLinear } from '../../../src/tuners/lora/layer.js';
import { realdataPath, skipReason } from '../../helpers/realdata.js';
import { adapterModules, assertBitIdentical, assertDiffers, assertRejectsCode, captureWarnings, maxAbsDiff, savedShapes, withTempDir } from '../common.js';

process.env['PEFT_TS_QUIET'] = '1';

const ADAPTER = ['gpt2-tigrinya-lora'];
const skip = skipReason(...ADAPTER, 'adapter_model.safetensors');

/** The standard `gpt2` (124M) shape. */
const GPT2_SHAPE = { n_layer: 12, n_embd: 768, n_head: 12, vocab_size: 50257, n_positions: 1024 };
const IDS = [[464, 3290, 257, 1332, 13, 50256]];

describe('real adapter: gpt2-tigrinya-lora on a gpt2-shaped model', { skip }, () => {
  let dir: string;
  let peft: PeftModel<GPT2LMHeadModel>;
  let warnings: string[];
  let fileKeys: string[];

  const logits = (): Float32Array => {
    const out = peft.forward({ inputIds: IDS });
    const data = Float32Array.from(out.logits.dataSync());
    disposeOutput(out);
    return data;
  };

  before(async () => {
    await setBackend();
    dir = realdataPath(...ADAPTER)!;
    const file = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    fileKeys = file.keys();
    await file.close();
    const base = new GPT2LMHeadModel(GPT2_SHAPE, { seed: 1 });
    ({ result: peft, warnings } = await captureWarnings(() => PeftModel.fromPretrained(base, dir)));
  });

  after(() => {
    peft?.dispose();
  });

  test('every key of the file maps onto an adapter tensor: none missing, none unexpected', async () => {
    assert.equal(fileKeys.length, 72, '12 blocks x (attn.c_attn, attn.c_proj, mlp.c_proj) x (A, B)');
    assert.deepEqual(warnings.filter((w) => /missing|Ignored/.test(w)), []);
    const params = adapterParameters(peft.base_model, 'default');
    assert.deepEqual([...params.keys()].sort(), [...fileKeys].sort());
    const tensors = await loadSafetensors(join(dir, 'adapter_model.safetensors'));
    try {
      for (const [key, value] of tensors) {
        assertBitIdentical(Float32Array.from(params.get(key)!.dataSync()), Float32Array.from(value.dataSync()), key);
      }
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    assert.equal(peft.getNbTrainableParameters()[0], 0, 'loaded for inference');
  });

  test('fan_in_fan_out: c_attn and both c_proj are LoraLinear over GPT-2 Conv1D; c_fc is left alone', () => {
    const config = peft.peftConfig.get('default')!.with({}).toJson();
    assert.equal(config['fan_in_fan_out'], true);
    const layers = peft.base_model.tunerLayers();
    assert.equal(layers.length, 36);
    for (const [path, layer] of layers) {
      assert.match(path, /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_proj)$/);
      assert.ok(layer instanceof LoraLinear, path);
      assert.equal(layer.kind, 'gpt2_conv1d');
      assert.ok(layer.fanInFanOut);
      assert.equal(layer.scaling.get('default'), 4);
    }
    const cAttn = peft.model.getSubmodule('transformer.h.0.attn.c_attn') as LoraLinear;
    assert.deepEqual(cAttn.features, [768, 2304]);
    tf.tidy(() => assert.deepEqual(cAttn.getDeltaWeight('default').shape, [768, 2304]));
    assert.equal(peft.model.getSubmodule('transformer.h.0.mlp.c_fc').constructor.name, 'Conv1D');
  });

  test('merged output equals unmerged (max abs err <= 1e-4); the adapter changes the output', () => {
    const unmerged = logits();
    const base = peft.disableAdapter(logits);
    assertDiffers(unmerged, base, 1e-3, 'adapted vs base logits');
    peft.mergeAdapter({ safeMerge: true });
    try {
      const merged = logits();
      const err = maxAbsDiff(merged, unmerged);
      assert.ok(err <= 1e-4, `merged vs unmerged: max abs err ${err}`);
    } finally {
      peft.unmergeAdapter();
    }
    const again = logits();
    assert.ok(maxAbsDiff(again, unmerged) <= 1e-4, 'after unmerge');
  });

  test('a truncated copy of the real file: SafetensorsError, from fromPretrained and from loadAdapter, nothing changed', async () => {
    await withTempDir(async (copy) => {
      copyFileSync(join(dir, 'adapter_config.json'), join(copy, 'adapter_config.json'));
      const bytes = readFileSync(join(dir, 'adapter_model.safetensors'));
      writeFileSync(join(copy, 'adapter_model.safetensors'), bytes.subarray(0, bytes.length - 1000));
      const small = new GPT2LMHeadModel({ n_layer: 1, n_embd: 8, n_head: 2, vocab_size: 16, n_positions: 8 }, { seed: 2 });
      const before = tf.memory().numTensors;
      await assertRejectsCode(() => PeftModel.fromPretrained(small, copy), SafetensorsError, 'safetensors', 'fromPretrained');
      assert.deepEqual(adapterModules(small), []);
      small.dispose();
      await assertRejectsCode(() => peft.loadAdapter(copy, 'truncated'), SafetensorsError, 'safetensors', 'loadAdapter');
      assert.equal(tf.memory().numTensors, before - small.parameters().length);
      assert.deepEqual([...peft.peftConfig.keys()], ['default']);
    });
  });

  test('savePretrained writes the same keys, shapes and values as the original file', async () => {
    await withTempDir(async (out) => {
      await peft.savePretrained(out);
      const original = await savedShapes(join(dir, 'adapter_model.safetensors'));
      const written = await savedShapes(join(out, 'adapter_model.safetensors'));
      assert.deepEqual(new Map([...written].sort()), new Map([...original].sort()));
      const file = await SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
      assert.deepEqual(file.metadata, { format: 'pt' });
      await file.close();
      const a = await loadSafetensors(join(dir, 'adapter_model.safetensors'));
      const b = await loadSafetensors(join(out, 'adapter_model.safetensors'));
      try {
        for (const [key, value] of a) assertBitIdentical(Float32Array.from(b.get(key)!.dataSync()), Float32Array.from(value.dataSync()), key);
      } finally {
        for (const t of [...a.values(), ...b.values()]) t.dispose();
      }
      const source = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      for (const key of ['r', 'lora_alpha', 'fan_in_fan_out', 'peft_type', 'task_type', 'base_model_name_or_path', 'lora_dropout', 'bias']) {
        assert.deepEqual(saved[key], source[key], key);
      }
      assert.deepEqual(new Set(saved['target_modules'] as string[]), new Set(source['target_modules'] as string[]));
      assert.equal(saved['inference_mode'], true);
    });
  });
});
