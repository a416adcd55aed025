/**
 * LoHaConfig against PEFT 0.21.2. `PEFT_DEFAULTS` is `LoHaConfig().to_dict()` from the pinned venv, sets as lists,
 * `json.dumps(..., sort_keys=True)`:
 *   tools/parity/.venv/bin/python -c "import json; from peft import LoHaConfig; print(json.dumps(LoHaConfig().to_dict(), sort_keys=True))"
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { WRITER_PEFT_VERSION } from '../../../src/tuners/config.js';
import { LoHaConfig } from '../../../src/tuners/loha/config.js';
import { realdataPath, skipReason } from '../../helpers/realdata.js';

const PEFT_DEFAULTS = {
  alpha: 8, alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: null, exclude_modules: null,
  inference_mode: false, init_weights: true, layers_pattern: null, layers_to_transform: null, module_dropout: 0.0,
  modules_to_save: null, peft_type: 'LOHA', peft_version: '0.21.2', r: 8, rank_dropout: 0.0, rank_pattern: {},
  revision: null, target_modules: null, task_type: null, use_effective_conv2d: false,
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

function assertRoundTrip(raw: Record<string, unknown>): LoHaConfig {
  const config = LoHaConfig.fromJson(raw, quiet);
  const out = config.toJson() as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'target_modules' && Array.isArray(value)) assert.deepEqual(new Set(out[key] as string[]), new Set(value), key);
    else assert.deepEqual(out[key], value, key);
  }
  assert.deepEqual(Object.keys(out).sort(), Object.keys(PEFT_DEFAULTS).sort());
  return config;
}

describe('LoHaConfig defaults', () => {
  test("equal PEFT's LoHaConfig() (peft_version names the writer)", () => {
    const json = new LoHaConfig().toJson();
    assert.deepEqual({ ...json, peft_version: '0.21.2' }, PEFT_DEFAULTS);
    assert.equal(json['peft_version'], WRITER_PEFT_VERSION);
  });
});

describe('real LoHa configs', () => {
  const llama = ['peft-configs', 'loha-llama-3.2-3B-rank32', 'adapter_config.json'];
  test('loha-llama-3.2-3B-rank32: r 32, alpha 64, q_proj/v_proj; round-trips', { skip: skipReason(...llama) }, () => {
    const config = assertRoundTrip(JSON.parse(readFileSync(realdataPath(...llama)!, 'utf8')) as Record<string, unknown>);
    assert.equal(config.r, 32);
    assert.equal(config.alpha, 64);
    assert.equal(config.initWeights, true);
    assert.deepEqual(new Set(config.targetModules), new Set(['q_proj', 'v_proj']));
  });

  const fixtures = new URL('../../fixtures/parity/adapters/', import.meta.url).pathname;
  for (const name of ['loha-llama', 'loha-convnet-flat', 'loha-convnet-effective']) {
    test(`${name} fixture round-trips`, () => {
      const config = assertRoundTrip(JSON.parse(readFileSync(join(fixtures, name, 'adapter_config.json'), 'utf8')) as Record<string, unknown>);
      assert.equal(config.r, 4);
      assert.equal(config.initWeights, false);
      if (name === 'loha-llama') {
        assert.deepEqual(config.rankPattern, { k_proj: 2 });
        assert.deepEqual(config.alphaPattern, { o_proj: 4 });
      }
      if (name === 'loha-convnet-effective') assert.equal(config.useEffectiveConv2d, true);
    });
  }
});

describe('LoHaConfig validation', () => {
  const cases: [string, Record<string, unknown>, { code: string; path: string }[]][] = [
    ['r 0', { r: 0 }, [{ code: 'invalid_value', path: 'r' }]],
    ['alpha null', { alpha: null }, [{ code: 'invalid_type', path: 'alpha' }]],
    ['rank_dropout 1', { rank_dropout: 1 }, [{ code: 'invalid_value', path: 'rank_dropout' }]],
    ['module_dropout 1.5', { module_dropout: 1.5 }, [{ code: 'invalid_value', path: 'module_dropout' }]],
    ['init_weights string', { init_weights: 'gaussian' }, [{ code: 'invalid_type', path: 'init_weights' }]],
    ['use_effective_conv2d string', { use_effective_conv2d: 'yes' }, [{ code: 'invalid_type', path: 'use_effective_conv2d' }]],
    ['layers_pattern without layers_to_transform', { target_modules: ['q'], layers_pattern: ['h'] }, [{ code: 'invalid_value', path: 'layers_pattern' }]],
    ['rank_pattern rank -1', { rank_pattern: { conv2d: -1 } }, [{ code: 'invalid_value', path: 'rank_pattern.conv2d' }]],
    ['lora_alpha is not a LoHa key (ignored, not an error)', { lora_alpha: 'x' }, []],
  ];
  for (const [name, raw, expected] of cases) {
    test(name, () => {
      if (expected.length === 0) {
        assert.deepEqual(LoHaConfig.fromJson(raw, quiet).unknownKeys, Object.keys(raw));
        return;
      }
      assert.deepEqual(issuesOf(() => LoHaConfig.fromJson(raw, quiet)), expected);
    });
  }

  test('module_dropout 1 is allowed (always skip); alpha may be a float', () => {
    const config = LoHaConfig.fromJson({ module_dropout: 1.0, alpha: 2.5 });
    assert.equal(config.moduleDropout, 1);
    assert.equal(config.alpha, 2.5);
    assert.match(config.toJsonString(), /"module_dropout": 1\.0,\n/);
  });

  test('unlike LoRA, layers next to a regex target_modules only warn (PEFT ignores them)', () => {
    const warnings: string[] = [];
    const config = LoHaConfig.fromJson({ target_modules: '.*q_proj', layers_to_transform: [1] }, { warn: (m) => warnings.push(m) });
    assert.deepEqual(config.layersToTransform, [1]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /layers_to_transform is ignored/);
  });

  test('nonIdentityInit', () => {
    assert.equal(new LoHaConfig({ r: 2 }).nonIdentityInit().initWeights, false);
  });
});
