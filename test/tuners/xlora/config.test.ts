/**
 * XLoraConfig against PEFT 0.21.2's `XLoraConfig` and the original xlora package's `xLoRAConfig` (8217992).
 * Expected Python outputs were produced once with the parity venv and are written out below:
 *
 * - `PEFT_ASDICT`: `json.dumps(dataclasses.asdict(XLoraConfig(hidden_size=64, adapters={'0': './0', '1': './1'})),
 *   sort_keys=True)` (peft_type as its value);
 * - `ORIGINAL_*`: the original's `save_pretrained` config step (`conf = config.__dict__.copy(); del conf["device"];
 *   conf["adapters"] = list(conf["adapters"].keys()); json.dump(conf, f)`) on `xLoRAConfig(...)` built from
 *   `xlora_config.py` with the arguments in the comments.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { WRITER_PEFT_VERSION, configClasses, parsePeftConfig } from '../../../src/tuners/config.js';
import { ORIGINAL_XLORA_KEYS, XLoraConfig, loadXLoraConfig, saveXLoraConfig } from '../../../src/tuners/xlora/config.js';

const PEFT_ASDICT = {
  adapters: { '0': './0', '1': './1' }, auto_mapping: null, base_model_name_or_path: null, enable_softmax: true,
  enable_softmax_topk: false, global_scaling_weight: 1.0, hidden_size: 64, inference_mode: false, layerwise_scalings: false,
  peft_type: 'XLORA', peft_version: '0.21.2', revision: null, scaling_pass_value: 0.0, softmax_temperature: 1.0, task_type: null,
  top_k_lora: null, use_trainable_adapters: false, xlora_depth: 1, xlora_dropout_p: 0.2, xlora_size: 2048,
};

/** xLoRAConfig(hidden_size=64, base_model_id='meta-llama/Llama-3.2-1B', adapters={'math': 'hub/math', 'code': './code'}) */
const ORIGINAL_DEFAULTS =
  '{"hidden_size": 64, "base_model_id": "meta-llama/Llama-3.2-1B", "adapters": ["math", "code"], "enable_softmax": true, ' +
  '"enable_softmax_topk": false, "layerwise_scalings": false, "xlora_depth": 1, "xlora_size": 2048, "enable_relu_and_dropout": true, ' +
  '"use_bias": true, "xlora_dropout_p": 0.2, "use_trainable_adapters": false, "softmax_temperature": 1.0, "top_k_lora": null, ' +
  '"scaling_pass_value": 0.0, "global_scaling_weight": 1.0}';

/**
 * xLoRAConfig(hidden_size=4096, base_model_id='HuggingFaceH4/zephyr-7b-beta', adapters={'adapter_1': 'a', 'adapter_2': 'b'},
 * layerwise_scalings=True, xlora_depth=3, xlora_size=512, enable_relu_and_dropout=False, use_bias=False, xlora_dropout_p=0.1,
 * softmax_temperature=0.5, top_k_lora=1, enable_softmax_topk=True, enable_softmax=False, scaling_pass_value=0.25,
 * global_scaling_weight=2.0, use_trainable_adapters=True)
 */
const ORIGINAL_CUSTOM =
  '{"hidden_size": 4096, "base_model_id": "HuggingFaceH4/zephyr-7b-beta", "adapters": ["adapter_1", "adapter_2"], ' +
  '"enable_softmax": false, "enable_softmax_topk": true, "layerwise_scalings": true, "xlora_depth": 3, "xlora_size": 512, ' +
  '"enable_relu_and_dropout": false, "use_bias": false, "xlora_dropout_p": 0.1, "use_trainable_adapters": true, ' +
  '"softmax_temperature": 0.5, "top_k_lora": 1, "scaling_pass_value": 0.25, "global_scaling_weight": 2.0}';

/**
 * Shaped like lamm-mit/x-lora's hand-edited `X-LoRA_xlora_config.json` (spec §7.1): written before 2024-03 (it
 * still has `stop_token_id`), `adapters` a dict of hub paths instead of a list.
 */
const LAMM_LIKE = {
  hidden_size: 4096,
  base_model_id: 'HuggingFaceH4/zephyr-7b-beta',
  adapters: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`adapter_${i + 1}`, `lamm-mit/x-lora/X-LoRA_adapters/${i + 1}/`])),
  enable_softmax: true,
  enable_softmax_topk: false,
  layerwise_scalings: true,
  xlora_depth: 1,
  xlora_size: 2048,
  enable_relu_and_dropout: false,
  use_bias: true,
  xlora_dropout_p: 0.2,
  stop_token_id: null,
  use_trainable_adapters: false,
  softmax_temperature: 1,
  top_k_lora: null,
  scaling_pass_value: 0,
  global_scaling_weight: 1,
};

const fixtures = new URL('../../fixtures/parity/adapters/', import.meta.url).pathname;

function collect(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}
const quiet = { warn: () => undefined };

function issuesOf(fn: () => unknown): { code: string; path: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => ({ code: i.code, path: i.path.join('.') }));
    throw e;
  }
  assert.fail('expected a ConfigError');
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'peft-ts-xlora-config-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('XLoraConfig defaults', () => {
  test("equal PEFT's dataclasses.asdict(XLoraConfig(...)) in PEFT's layout (peft_version names the writer)", () => {
    const config = new XLoraConfig({ hiddenSize: 64, adapters: { '0': './0', '1': './1' }, classifierLayout: 'peft' });
    const json = config.toJson();
    assert.deepEqual({ ...json, peft_version: '0.21.2' }, PEFT_ASDICT);
    assert.equal(json['peft_version'], WRITER_PEFT_VERSION);
  });

  test("the original's defaults; the original layout adds enable_relu_and_dropout and use_bias to adapter_config.json", () => {
    const config = new XLoraConfig({ adapters: { '0': './0', '1': './1' } }, quiet);
    assert.equal(config.peftType, 'XLORA');
    assert.equal(config.hiddenSize, null, 'no 4096 default');
    assert.equal(config.baseModelId, null);
    assert.equal(config.classifierLayout, 'original');
    assert.equal(config.enableReluAndDropout, true);
    assert.equal(config.useBias, true);
    assert.equal(config.topKLora, null);
    assert.deepEqual(config.adapterNames, ['0', '1']);
    assert.deepEqual(config.toJson(), { ...PEFT_ASDICT, hidden_size: null, enable_relu_and_dropout: true, use_bias: true, peft_version: WRITER_PEFT_VERSION });
    assert.deepEqual(new XLoraConfig().adapters, {});
  });

  test('registered for peft_type XLORA', () => {
    assert.equal(configClasses.XLORA, XLoraConfig);
    assert.ok(parsePeftConfig({ peft_type: 'XLORA', hidden_size: 8, adapters: { '0': 'a' } }, quiet) instanceof XLoraConfig);
  });
});

describe('hiddenSize from the model', () => {
  test('withModelHiddenSize fills a null hidden size, keeps an equal one, rejects a different one', () => {
    const config = new XLoraConfig({ adapters: { a: 'x' } });
    const filled = config.withModelHiddenSize(32);
    assert.equal(filled.hiddenSize, 32);
    assert.ok(filled instanceof XLoraConfig);
    assert.equal(filled.withModelHiddenSize(32), filled);
    assert.deepEqual(issuesOf(() => filled.withModelHiddenSize(64)), [{ code: 'invalid_value', path: 'hiddenSize' }]);
    assert.equal(config.with({ hiddenSize: 16 }).hiddenSize, 16);
  });
});

describe('adapter_config.json files written by PEFT', () => {
  for (const name of ['xlora-llama', 'xlora-llama-softmax-topk']) {
    test(`${name}: parses in PEFT's layout and writes the same bytes`, async () => {
      const file = join(fixtures, name, 'adapter_config.json');
      const text = readFileSync(file, 'utf8');
      const log = collect();
      const config = XLoraConfig.fromJson(JSON.parse(text), log);
      assert.equal(config.classifierLayout, 'peft');
      assert.equal(config.hiddenSize, 64);
      assert.deepEqual(config.adapters, { '0': './0', '1': './1', '2': './2' });
      assert.deepEqual(config.adapterNames, ['0', '1', '2']);
      assert.equal(config.layerwiseScalings, true);
      assert.equal(config.xloraDepth, 2);
      assert.equal(config.xloraSize, 16);
      assert.equal(config.topKLora, 2);
      assert.equal(config.taskType, 'CAUSAL_LM');
      assert.equal(config.baseModelNameOrPath, 'test/fixtures/parity/models/llama');
      assert.equal(config.inferenceMode, true);
      assert.equal(config.peftVersion, '0.21.2');
      assert.deepEqual(config.unknownKeys, []);
      if (name === 'xlora-llama') {
        assert.equal(config.softmaxTemperature, 0.7);
        assert.deepEqual(log.messages, []);
      } else {
        assert.equal(config.enableSoftmax, false);
        assert.equal(config.enableSoftmaxTopk, true);
        assert.equal(config.globalScalingWeight, 1.5);
      }
      assert.equal(config.toJsonString(), text);
      const loaded = await loadXLoraConfig(join(fixtures, name));
      assert.equal(loaded.toJsonString(), text);
      assert.ok(parsePeftConfig(JSON.parse(text)) instanceof XLoraConfig);
    });
  }
});

describe('adapter_config.json round trips', () => {
  test('original layout with every field set survives toJson -> fromJson (and the text round-trips)', () => {
    const config = new XLoraConfig(
      {
        hiddenSize: 128, baseModelId: 'org/base', baseModelNameOrPath: 'org/base', adapters: { math: 'hub/math', code: './code', bio: '/abs/bio' },
        enableSoftmax: false, enableSoftmaxTopk: true, layerwiseScalings: true, xloraDepth: 3, xloraSize: 32, enableReluAndDropout: false,
        useBias: false, xloraDropoutP: 0, useTrainableAdapters: true, softmaxTemperature: 0.25, topKLora: 2, scalingPassValue: 0.5,
        globalScalingWeight: 3, taskType: 'CAUSAL_LM', revision: 'main', inferenceMode: true,
      },
      quiet,
    );
    const text = config.toJsonString();
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.equal(json['enable_relu_and_dropout'], false);
    assert.equal(json['use_bias'], false);
    assert.equal(json['base_model_id'], 'org/base');
    assert.deepEqual(Object.keys(json['adapters'] as object), ['math', 'code', 'bio'], 'expert order, not sorted');
    assert.match(text, /"global_scaling_weight": 3\.0,/);
    assert.match(text, /"xlora_dropout_p": 0\.0,/);
    const back = XLoraConfig.fromJson(json, quiet);
    assert.deepEqual({ ...back }, { ...config });
    assert.deepEqual(back.adapterNames, ['math', 'code', 'bio']);
    assert.equal(back.toJsonString(), text);
  });

  test("PEFT's layout round-trips and never writes the original's keys", () => {
    const config = new XLoraConfig({ hiddenSize: 8, adapters: { '0': 'a', '1': 'b' }, classifierLayout: 'peft', xloraDropoutP: 0 });
    const json = config.toJson();
    for (const k of ['enable_relu_and_dropout', 'use_bias', 'base_model_id', 'classifier_layout']) assert.ok(!(k in json), k);
    const back = XLoraConfig.fromJson(json);
    assert.equal(back.classifierLayout, 'peft');
    assert.deepEqual({ ...back }, { ...config });
  });

  test('a list of names is accepted for adapters (path = name); integer-like names keep numeric order', () => {
    const config = XLoraConfig.fromJson({ peft_type: 'XLORA', hidden_size: 8, adapters: ['b', 'a'] }, quiet);
    assert.deepEqual(config.adapters, { b: 'b', a: 'a' });
    assert.deepEqual(config.adapterNames, ['b', 'a']);
    // PEFT writes sort_keys=True: "10" before "2"; the expert index is the numeric order (training order)
    const many = XLoraConfig.fromJson({ peft_type: 'XLORA', hidden_size: 8, adapters: Object.fromEntries(['0', '1', '10', '2'].map((n) => [n, `./${n}`])) }, quiet);
    assert.deepEqual(many.adapterNames, ['0', '1', '2', '10']);
  });

  test('unknown keys: one warning, ignored, listed in unknownKeys; the original\'s keys are named as such', () => {
    const log = collect();
    const config = XLoraConfig.fromJson({ peft_type: 'XLORA', hidden_size: 8, adapters: { '0': 'a' }, stop_token_id: 2, device: 'cuda', zzz: 1 }, log);
    assert.deepEqual(config.unknownKeys, ['device', 'stop_token_id', 'zzz']);
    assert.equal(log.messages.length, 1);
    assert.match(log.messages[0]!, /"device","stop_token_id","zzz".*original xlora package/);
    assert.equal(config.classifierLayout, 'peft');
    const reserved = collect();
    assert.deepEqual(XLoraConfig.fromJson({ hidden_size: 8, classifier_layout: 'original' }, reserved).unknownKeys, ['classifier_layout']);
    assert.equal(reserved.messages.length, 1);
  });
});

describe("the original's xlora_config.json", () => {
  test('defaults: parses, and writes the same bytes as json.dump', () => {
    const log = collect();
    const config = XLoraConfig.fromOriginalJson(ORIGINAL_DEFAULTS, log);
    assert.deepEqual(log.messages, []);
    assert.equal(config.classifierLayout, 'original');
    assert.equal(config.hiddenSize, 64);
    assert.equal(config.baseModelId, 'meta-llama/Llama-3.2-1B');
    assert.equal(config.baseModelNameOrPath, 'meta-llama/Llama-3.2-1B');
    assert.deepEqual(config.adapters, { math: 'math', code: 'code' });
    assert.deepEqual(config.adapterNames, ['math', 'code']);
    assert.equal(config.toOriginalJson(), ORIGINAL_DEFAULTS);
    assert.deepEqual(Object.keys(config.toOriginalDict()), [...ORIGINAL_XLORA_KEYS]);
    // the same config built from options writes the same bytes
    const built = new XLoraConfig({ hiddenSize: 64, baseModelId: 'meta-llama/Llama-3.2-1B', adapters: { math: 'hub/math', code: './code' } });
    assert.equal(built.toOriginalJson(), ORIGINAL_DEFAULTS);
  });

  test('every field set: parses and writes the same bytes', () => {
    const log = collect();
    const config = XLoraConfig.fromOriginalJson(JSON.parse(ORIGINAL_CUSTOM), log);
    // the original's __post_init__ warnings: softmax_topk and softmax are not both on here, top_k_lora is set
    assert.deepEqual(log.messages, []);
    assert.equal(config.enableReluAndDropout, false);
    assert.equal(config.useBias, false);
    assert.equal(config.xloraDepth, 3);
    assert.equal(config.softmaxTemperature, 0.5);
    assert.equal(config.topKLora, 1);
    assert.equal(config.scalingPassValue, 0.25);
    assert.equal(config.useTrainableAdapters, true);
    assert.equal(config.toOriginalJson(), ORIGINAL_CUSTOM);
    // through PEFT's format and back to the original's
    const viaPeft = XLoraConfig.fromJson(JSON.parse(config.toJsonString()), quiet);
    assert.equal(viaPeft.classifierLayout, 'original');
    assert.equal(viaPeft.toOriginalJson(), ORIGINAL_CUSTOM);
  });

  test('a hand-edited lamm-mit/x-lora-like config (stop_token_id, adapters as a dict of hub paths) parses with a warning', () => {
    const log = collect();
    const config = XLoraConfig.fromOriginalJson(LAMM_LIKE, log);
    assert.equal(log.messages.length, 1);
    assert.match(log.messages[0]!, /\["stop_token_id"\].*ignored/);
    assert.deepEqual(config.unknownKeys, ['stop_token_id']);
    assert.equal(config.adapterNames.length, 9);
    assert.equal(config.adapters['adapter_3'], 'lamm-mit/x-lora/X-LoRA_adapters/3/');
    assert.equal(config.enableReluAndDropout, false);
    assert.equal(config.layerwiseScalings, true);
    assert.equal(config.softmaxTemperature, 1);
    assert.match(config.toOriginalJson(), /"adapters": \["adapter_1", "adapter_2", .*"adapter_9"\], .*"softmax_temperature": 1\.0, "top_k_lora": null, "scaling_pass_value": 0\.0/);
  });

  test("PEFT's keys in an original file are unknown; required keys are required", () => {
    const log = collect();
    const config = XLoraConfig.fromOriginalJson({ ...JSON.parse(ORIGINAL_DEFAULTS), peft_type: 'XLORA', model_type: 'xlora' }, log);
    assert.deepEqual(config.unknownKeys, ['model_type', 'peft_type']);
    assert.equal(log.messages.length, 1);
    assert.deepEqual(issuesOf(() => XLoraConfig.fromOriginalJson({ xlora_depth: 0 })), [
      { code: 'missing', path: 'hidden_size' },
      { code: 'missing', path: 'base_model_id' },
      { code: 'missing', path: 'adapters' },
      { code: 'invalid_value', path: 'xlora_depth' },
    ]);
    assert.deepEqual(issuesOf(() => XLoraConfig.fromOriginalJson('{not json')), [{ code: 'invalid_type', path: '' }]);
  });

  test('toOriginalJson needs a hidden size and a base model id', () => {
    assert.deepEqual(issuesOf(() => new XLoraConfig({ adapters: { a: 'a' } }).toOriginalJson()), [
      { code: 'missing', path: 'hiddenSize' },
      { code: 'missing', path: 'baseModelId' },
    ]);
    const fromPeft = new XLoraConfig({ hiddenSize: 8, baseModelNameOrPath: 'org/m', adapters: { a: 'a' } });
    assert.match(fromPeft.toOriginalJson(), /^\{"hidden_size": 8, "base_model_id": "org\/m", "adapters": \["a"\], /);
  });
});

describe('XLoraConfig validation', () => {
  const cases: [string, Record<string, unknown>, { code: string; path: string }[]][] = [
    ['hiddenSize 0', { hiddenSize: 0 }, [{ code: 'invalid_value', path: 'hiddenSize' }]],
    ['hiddenSize 1.5', { hiddenSize: 1.5 }, [{ code: 'invalid_value', path: 'hiddenSize' }]],
    ['xloraDepth 0', { xloraDepth: 0 }, [{ code: 'invalid_value', path: 'xloraDepth' }]],
    ['xloraSize 0', { xloraSize: 0 }, [{ code: 'invalid_value', path: 'xloraSize' }]],
    ['topKLora 0 (an error, not a warning)', { topKLora: 0 }, [{ code: 'invalid_value', path: 'topKLora' }]],
    ['topKLora 1.5', { topKLora: 1.5 }, [{ code: 'invalid_value', path: 'topKLora' }]],
    ['topKLora above the number of experts', { adapters: { a: 'a', b: 'b' }, topKLora: 3 }, [{ code: 'invalid_value', path: 'topKLora' }]],
    ['softmaxTemperature 0', { softmaxTemperature: 0 }, [{ code: 'invalid_value', path: 'softmaxTemperature' }]],
    ['xloraDropoutP 1.5', { xloraDropoutP: 1.5 }, [{ code: 'invalid_value', path: 'xloraDropoutP' }]],
    ['xloraDropoutP -0.1', { xloraDropoutP: -0.1 }, [{ code: 'invalid_value', path: 'xloraDropoutP' }]],
    ['scalingPassValue "0"', { scalingPassValue: '0' }, [{ code: 'invalid_type', path: 'scalingPassValue' }]],
    ['adapters a string', { adapters: 'a' }, [{ code: 'invalid_type', path: 'adapters' }]],
    ['adapters with a non-string path', { adapters: { a: 1 } }, [{ code: 'invalid_type', path: 'adapters.a' }]],
    ['adapters with an empty name', { adapters: { '': 'x' } }, [{ code: 'invalid_value', path: 'adapters.' }]],
    ['adapters list with a duplicate', { adapters: ['a', 'b', 'a'] }, [{ code: 'invalid_value', path: 'adapters.2' }]],
    ['adapters list whose order a record cannot keep', { adapters: ['2', '1'] }, [{ code: 'unsupported', path: 'adapters' }]],
    ['peft layout without ReLU', { classifierLayout: 'peft', enableReluAndDropout: false }, [{ code: 'invalid_value', path: 'enableReluAndDropout' }]],
    ['peft layout without bias', { classifierLayout: 'peft', useBias: false }, [{ code: 'invalid_value', path: 'useBias' }]],
    ['unknown layout', { classifierLayout: 'mistralrs' }, [{ code: 'invalid_value', path: 'classifierLayout' }]],
    ['snake_case option', { hidden_size: 8 }, [{ code: 'unrecognized_key', path: 'hidden_size' }]],
  ];
  for (const [name, options, expected] of cases) {
    test(`${name} -> ConfigError`, () => {
      assert.deepEqual(issuesOf(() => new XLoraConfig(options as never, quiet)), expected);
    });
  }

  test('JSON paths are snake_case; every problem is reported at once', () => {
    assert.deepEqual(
      issuesOf(() => XLoraConfig.fromJson({ peft_type: 'XLORA', hidden_size: -1, top_k_lora: 0, softmax_temperature: -1, adapters: ['a', 7], xlora_depth: 'deep' })),
      [
        { code: 'invalid_value', path: 'hidden_size' },
        { code: 'invalid_type', path: 'adapters.1' },
        { code: 'invalid_type', path: 'xlora_depth' },
        { code: 'invalid_value', path: 'top_k_lora' },
        { code: 'invalid_value', path: 'softmax_temperature' },
      ],
    );
    assert.deepEqual(issuesOf(() => XLoraConfig.fromJson({ peft_type: 'LORA' })), [{ code: 'invalid_value', path: 'peft_type' }]);
    assert.deepEqual(issuesOf(() => XLoraConfig.fromJson([1])), [{ code: 'invalid_type', path: '' }]);
  });

  test("the original's __post_init__ warnings", () => {
    const log = collect();
    new XLoraConfig({ enableSoftmaxTopk: true }, log);
    assert.equal(log.messages.length, 2);
    assert.match(log.messages[0]!, /`enableSoftmaxTopk` enabled `topKLora` is not set/);
    assert.match(log.messages[1]!, /both enabled. This will result in worse performance/);
    const fromJson = collect();
    XLoraConfig.fromJson({ enable_softmax_topk: true, enable_softmax: false, top_k_lora: 1 }, fromJson);
    assert.deepEqual(fromJson.messages, []);
  });

  test('adapter names mixing integer-like and other names warn (their order is not the file order)', () => {
    const log = collect();
    new XLoraConfig({ adapters: { math: 'a', '1': 'b' } }, log);
    assert.equal(log.messages.length, 1);
    assert.match(log.messages[0]!, /integer-like/);
  });
});

describe('loadXLoraConfig / saveXLoraConfig', () => {
  test('prefers xlora_config.json; else adapter_config.json with peft_type XLORA; typed errors otherwise', async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(loadXLoraConfig(dir), (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'missing' && /xlora_config\.json.*adapter_config\.json/.test(e.message));
      // an original checkpoint may have an expert named "default" at its root
      await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 8 }));
      await assert.rejects(loadXLoraConfig(dir), (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'peft_type');
      await writeFile(join(dir, 'xlora_config.json'), ORIGINAL_DEFAULTS);
      const original = await loadXLoraConfig(dir);
      assert.equal(original.classifierLayout, 'original');
      assert.equal(original.toOriginalJson(), ORIGINAL_DEFAULTS);
      await writeFile(join(dir, 'xlora_config.json'), '{"hidden_size": ');
      await assert.rejects(loadXLoraConfig(dir), (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'invalid_type');
    });
  });

  test('writes either format atomically and reads it back', async () => {
    await withTempDir(async (dir) => {
      const config = XLoraConfig.fromOriginalJson(ORIGINAL_CUSTOM, quiet);
      const originalFile = await saveXLoraConfig(join(dir, 'orig'), config, 'original');
      assert.equal(originalFile, join(dir, 'orig', 'xlora_config.json'));
      assert.equal(await readFile(originalFile, 'utf8'), ORIGINAL_CUSTOM);
      assert.deepEqual({ ...(await loadXLoraConfig(join(dir, 'orig'), quiet)) }, { ...config });
      const peftFile = await saveXLoraConfig(join(dir, 'peft'), config);
      assert.equal(peftFile, join(dir, 'peft', 'adapter_config.json'));
      assert.equal(await readFile(peftFile, 'utf8'), config.toJsonString());
      const back = await loadXLoraConfig(join(dir, 'peft'), quiet);
      assert.equal(back.toOriginalJson(), ORIGINAL_CUSTOM);
    });
  });
});
