/**
 * LoraConfig against PEFT 0.21.2. `PEFT_DEFAULTS` is `LoraConfig().to_dict()` from the pinned venv, sets as lists,
 * `json.dumps(..., sort_keys=True)`:
 *   tools/parity/.venv/bin/python -c "import json; from peft import LoraConfig; print(json.dumps(LoraConfig().to_dict(), sort_keys=True))"
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { WRITER_PEFT_VERSION } from '../../../src/tuners/config.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { realdataPath, skipReason } from '../../helpers/realdata.js';

const PEFT_DEFAULTS = {
  alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null, base_model_name_or_path: null,
  bias: 'none', corda_config: null, ensure_weight_tying: false, eva_config: null, exclude_modules: null,
  fan_in_fan_out: false, inference_mode: false, init_lora_weights: true, kasa_config: null, layer_replication: null,
  layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 8, lora_bias: false, lora_dropout: 0.0,
  lora_ga_config: null, megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null,
  monteclora_config: null, peft_type: 'LORA', peft_version: '0.21.2', qalora_group_size: 16, r: 8, rank_pattern: {},
  revision: null, target_modules: null, target_parameters: null, task_type: null, trainable_token_indices: null,
  use_bdlora: null, use_dora: false, use_qalora: false, use_rslora: false, velora_config: null,
};

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

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** fromJson → toJson keeps every key of the file with its value (target_modules compared as a set). */
function assertRoundTrip(raw: Record<string, unknown>): LoraConfig {
  const config = LoraConfig.fromJson(raw, quiet);
  const out = config.toJson() as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'target_modules' && Array.isArray(value)) assert.deepEqual(new Set(out[key] as string[]), new Set(value), key);
    else assert.deepEqual(out[key], value, key);
  }
  assert.deepEqual(Object.keys(out).sort(), Object.keys(PEFT_DEFAULTS).sort());
  return config;
}

describe('LoraConfig defaults', () => {
  test("equal PEFT's LoraConfig() (peft_version names the writer)", () => {
    const json = new LoraConfig().toJson();
    assert.deepEqual({ ...json, peft_version: '0.21.2' }, PEFT_DEFAULTS);
    assert.equal(json['peft_version'], WRITER_PEFT_VERSION);
    assert.equal(LoraConfig.fromJson({}).toJsonString(), new LoraConfig().toJsonString());
  });
});

describe('real LoRA configs', () => {
  const tigrinya = ['gpt2-tigrinya-lora', 'adapter_config.json'];
  test('gpt2-tigrinya-lora: r 8, alpha 32, fan_in_fan_out, c_attn/c_proj; round-trips', { skip: skipReason(...tigrinya) }, () => {
    const config = assertRoundTrip(readJson(realdataPath(...tigrinya)!));
    assert.equal(config.r, 8);
    assert.equal(config.loraAlpha, 32);
    assert.equal(config.loraDropout, 0.05);
    assert.equal(config.fanInFanOut, true);
    assert.equal(config.taskType, 'CAUSAL_LM');
    assert.equal(config.baseModelNameOrPath, 'gpt2');
    assert.deepEqual(new Set(config.targetModules), new Set(['c_attn', 'c_proj']));
  });

  const llama = ['peft-configs', 'lora-llama-3.2-3B-rank32', 'adapter_config.json'];
  test('lora-llama-3.2-3B-rank32: r 32, alpha 64, target_modules null; round-trips', { skip: skipReason(...llama) }, () => {
    const config = assertRoundTrip(readJson(realdataPath(...llama)!));
    assert.equal(config.r, 32);
    assert.equal(config.loraAlpha, 64);
    assert.equal(config.targetModules, null);
    assert.equal(config.inferenceMode, false);
  });

  const fixtures = new URL('../../fixtures/parity/adapters/', import.meta.url).pathname;
  for (const name of ['lora-llama-patterns', 'dora-gpt2-conv1d', 'lora-bert-seqcls-mts', 'lora-llama-two-adapters/other']) {
    test(`${name} fixture round-trips`, () => {
      const config = assertRoundTrip(readJson(join(fixtures, name, 'adapter_config.json')));
      if (name === 'lora-llama-patterns') {
        assert.deepEqual(config.rankPattern, { 'model.layers.1.mlp.down_proj': 6, q_proj: 2 });
        assert.deepEqual(config.alphaPattern, { 'model.layers.0.mlp.gate_proj': 16, v_proj: 3 });
      }
      if (name === 'dora-gpt2-conv1d') assert.equal(config.useDora, true);
      if (name === 'lora-bert-seqcls-mts') assert.deepEqual(config.modulesToSave, ['classifier', 'classifier', 'score']);
    });
  }
});

describe('LoraConfig validation', () => {
  const cases: [string, Record<string, unknown>, { code: string; path: string }[]][] = [
    ['r 0', { r: 0 }, [{ code: 'invalid_value', path: 'r' }]],
    ['r 2.5', { r: 2.5 }, [{ code: 'invalid_value', path: 'r' }]],
    ['r "8"', { r: '8' }, [{ code: 'invalid_type', path: 'r' }]],
    ['lora_alpha string', { lora_alpha: 'x' }, [{ code: 'invalid_type', path: 'lora_alpha' }]],
    ['lora_dropout 1', { lora_dropout: 1 }, [{ code: 'invalid_value', path: 'lora_dropout' }]],
    ['lora_dropout -0.1', { lora_dropout: -0.1 }, [{ code: 'invalid_value', path: 'lora_dropout' }]],
    ['bias', { bias: 'some' }, [{ code: 'invalid_value', path: 'bias' }]],
    ['task_type', { task_type: 'CHAT' }, [{ code: 'invalid_value', path: 'task_type' }]],
    ['init pissa', { init_lora_weights: 'pissa' }, [{ code: 'unsupported', path: 'init_lora_weights' }]],
    ['init pissa_niter_4', { init_lora_weights: 'pissa_niter_4' }, [{ code: 'unsupported', path: 'init_lora_weights' }]],
    ['init olora', { init_lora_weights: 'olora' }, [{ code: 'unsupported', path: 'init_lora_weights' }]],
    ['init unknown', { init_lora_weights: 'xavier' }, [{ code: 'invalid_value', path: 'init_lora_weights' }]],
    ['lora_bias with DoRA', { lora_bias: true, use_dora: true }, [{ code: 'invalid_value', path: 'lora_bias' }]],
    ['lora_bias with gaussian init', { lora_bias: true, init_lora_weights: 'gaussian' }, [{ code: 'invalid_value', path: 'lora_bias' }]],
    ['DoRA with megatron', { use_dora: true, megatron_config: { tp: 2 } }, [{ code: 'invalid_value', path: 'use_dora' }]],
    ['layers_to_transform with regex target', { target_modules: '.*q', layers_to_transform: 1 }, [{ code: 'invalid_value', path: 'layers_to_transform' }]],
    ['layers_pattern with regex target', { target_modules: '.*q', layers_pattern: 'h', layers_to_transform: 1 }, [
      { code: 'invalid_value', path: 'layers_to_transform' },
      { code: 'invalid_value', path: 'layers_pattern' },
    ]],
    ['layers_pattern without layers_to_transform', { target_modules: ['q'], layers_pattern: 'layers' }, [{ code: 'invalid_value', path: 'layers_pattern' }]],
    ['negative layer index', { layers_to_transform: [0, -1] }, [{ code: 'invalid_value', path: 'layers_to_transform.1' }]],
    ['rank_pattern rank 0', { rank_pattern: { q_proj: 0 } }, [{ code: 'invalid_value', path: 'rank_pattern.q_proj' }]],
    ['rank_pattern fractional rank', { rank_pattern: { q_proj: 1.5 } }, [{ code: 'invalid_value', path: 'rank_pattern.q_proj' }]],
    ['alpha_pattern string', { alpha_pattern: { q_proj: 'x' } }, [{ code: 'invalid_type', path: 'alpha_pattern.q_proj' }]],
    ['rank_pattern key with Python-only regex', { rank_pattern: { '(?i)q_proj': 2 } }, [{ code: 'invalid_value', path: 'rank_pattern.(?i)q_proj' }]],
    ['exclude_modules regex JS cannot run', { exclude_modules: '(?i:q)' }, [{ code: 'invalid_value', path: 'exclude_modules' }]],
    ['target_modules number', { target_modules: 5 }, [{ code: 'invalid_type', path: 'target_modules' }]],
    ['modules_to_save string', { modules_to_save: 'classifier' }, [{ code: 'invalid_type', path: 'modules_to_save' }]],
    ['target_parameters string', { target_parameters: 'w' }, [{ code: 'invalid_type', path: 'target_parameters' }]],
    ['target_parameters set', { target_parameters: ['experts.w'] }, [{ code: 'unsupported', path: 'target_parameters' }]],
    ['layer_replication', { layer_replication: [[0, 2], [1, 3]] }, [{ code: 'unsupported', path: 'layer_replication' }]],
    ['trainable_token_indices', { trainable_token_indices: [1, 2] }, [{ code: 'unsupported', path: 'trainable_token_indices' }]],
    ['use_qalora', { use_qalora: true }, [{ code: 'unsupported', path: 'use_qalora' }]],
    ['qalora_group_size 0', { qalora_group_size: 0 }, [{ code: 'invalid_value', path: 'qalora_group_size' }]],
    ['velora', { velora_config: { num_groups: 2 } }, [{ code: 'unsupported', path: 'velora_config' }]],
    ['alora', { alora_invocation_tokens: [1, 2] }, [{ code: 'unsupported', path: 'alora_invocation_tokens' }]],
    ['monteclora', { monteclora_config: {} }, [{ code: 'unsupported', path: 'monteclora_config' }]],
    ['bdlora', { use_bdlora: { nblocks: 2 } }, [{ code: 'unsupported', path: 'use_bdlora' }]],
    ['arrow', { arrow_config: { top_k: 3 } }, [{ code: 'unsupported', path: 'arrow_config' }]],
    ['kasa', { kasa_config: {} }, [{ code: 'unsupported', path: 'kasa_config' }]],
    ['ensure_weight_tying string', { ensure_weight_tying: 'yes' }, [{ code: 'invalid_type', path: 'ensure_weight_tying' }]],
  ];
  for (const [name, raw, expected] of cases) {
    test(name, () => {
      assert.deepEqual(issuesOf(() => LoraConfig.fromJson(raw, quiet)), expected);
    });
  }

  test('accepted: DoRA, rsLoRA, gaussian init, lora_bias, target_parameters [], megatron settings, ints written as floats', () => {
    const config = LoraConfig.fromJson(
      { use_dora: true, use_rslora: true, init_lora_weights: 'gaussian', target_parameters: [], megatron_core: 'my.core', lora_alpha: 16.0 },
      quiet,
    );
    assert.equal(config.useDora, true);
    assert.equal(config.loraAlpha, 16);
    assert.equal(config.initLoraWeights, 'gaussian');
    assert.deepEqual(config.targetParameters, []);
    assert.deepEqual(LoraConfig.fromJson({ megatron_config: { tp: 2 } }).megatronConfig, { tp: 2 });
    assert.equal(LoraConfig.fromJson({ lora_bias: true, init_lora_weights: false }).loraBias, true);
  });

  test('loftq_config is dropped with a warning (as PEFT does); eva/corda configs warn and are kept', () => {
    const warnings: string[] = [];
    const config = LoraConfig.fromJson({ loftq_config: { loftq_bits: 4 }, eva_config: { rho: 2.0 }, corda_config: null }, { warn: (m) => warnings.push(m) });
    assert.deepEqual(config.loftqConfig, {});
    assert.deepEqual(config.evaConfig, { rho: 2 });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /loftq_config specified but will be ignored/);
    assert.match(warnings[1]!, /eva_config specified but will be ignored/);
  });

  test('nonIdentityInit and with()', () => {
    const config = new LoraConfig({ r: 4, targetModules: ['q_proj'] });
    assert.equal(config.nonIdentityInit().initLoraWeights, false);
    assert.equal(config.nonIdentityInit().r, 4);
    assert.throws(() => config.with({ useDora: true, loraBias: true }), (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'loraBias');
  });
});
