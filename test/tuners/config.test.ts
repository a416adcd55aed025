/**
 * The shared config machinery: dispatch on `peft_type`, reading and writing `adapter_config.json` (byte-identical
 * to PEFT's `json.dumps(indent=2, sort_keys=True)` for files PEFT 0.21.2 wrote), unknown keys, option checking,
 * immutability. Expected Python outputs (float reprs, string escapes) were produced with the venv's Python 3.11
 * (`repr(x)`, `json.dumps(..., indent=2, sort_keys=True)`) and are written out below.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import {
  ADAPTER_CONFIG_NAME,
  PEFT_TS_VERSION,
  WRITER_PEFT_VERSION,
  formatPythonJson,
  loadPeftConfig,
  parsePeftConfig,
  pythonFloatRepr,
  savePeftConfig,
} from '../../src/tuners/config.js';
import { LoHaConfig } from '../../src/tuners/loha/config.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';

const fixtures = new URL('../fixtures/parity/adapters/', import.meta.url);
/** Every adapter_config.json of a LoRA/LoHa adapter under the parity fixtures (written by PEFT 0.21.2). */
const fixtureConfigs = execFileSync('find', [fixtures.pathname, '-name', ADAPTER_CONFIG_NAME], { encoding: 'utf8' })
  .trim()
  .split('\n')
  .filter((f) => (JSON.parse(readFileSync(f, 'utf8')) as { peft_type: string }).peft_type !== 'XLORA')
  .sort();

const quiet = { warn: () => undefined };

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'peft-ts-config-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function issuesOf(fn: () => unknown): { code: string; path: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => ({ code: i.code, path: i.path.join('.') }));
    throw e;
  }
  assert.fail('expected a ConfigError');
}

describe('parsePeftConfig', () => {
  test('dispatches on peft_type', () => {
    assert.ok(parsePeftConfig({ peft_type: 'LORA' }, quiet) instanceof LoraConfig);
    assert.ok(parsePeftConfig({ peft_type: 'LOHA' }, quiet) instanceof LoHaConfig);
  });

  test('missing, unknown or unimplemented peft_type names the supported ones', () => {
    assert.deepEqual(issuesOf(() => parsePeftConfig({ r: 8 })), [{ code: 'missing', path: 'peft_type' }]);
    for (const t of ['ADALORA', 'FOO', 7]) {
      assert.throws(
        () => parsePeftConfig({ peft_type: t }),
        (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'peft_type' && e.message.includes('LORA, LOHA'),
      );
    }
    assert.match(issuesOf(() => parsePeftConfig({ peft_type: 'ADALORA' }))[0]!.code, /unsupported/);
    assert.deepEqual(issuesOf(() => parsePeftConfig([1, 2])), [{ code: 'invalid_type', path: '' }]);
  });
});

describe('adapter_config.json files written by PEFT', () => {
  test('there are fixtures to check', () => {
    assert.ok(fixtureConfigs.length >= 10, fixtureConfigs.join('\n'));
  });

  for (const file of fixtureConfigs) {
    const name = file.slice(fixtures.pathname.length);
    test(`${name}: load, then toJsonString reproduces the file (up to ints written as floats in patterns)`, async () => {
      const text = await readFile(file, 'utf8');
      const config = await loadPeftConfig(join(file, '..'), quiet);
      assert.deepEqual(config.unknownKeys, []);
      const raw = JSON.parse(text) as Record<string, unknown>;
      assert.deepEqual(config.toJson(), raw);
      // alpha_pattern values such as 16.0 are floats in Python; JSON.parse cannot tell 16.0 from 16
      const floatsInPatterns = /"(rank|alpha)_pattern": \{[^}]*\d\.0\b/.test(text);
      if (!floatsInPatterns) assert.equal(config.toJsonString(), text);
    });
  }

  test('savePeftConfig writes what loadPeftConfig reads, atomically, in PEFT format', async () => {
    await withTempDir(async (dir) => {
      const config = new LoraConfig({ r: 16, loraAlpha: 32, loraDropout: 0.05, targetModules: ['q_proj', 'v_proj'], taskType: 'CAUSAL_LM' });
      const out = join(dir, 'nested', 'adapter');
      await savePeftConfig(out, config);
      const text = await readFile(join(out, ADAPTER_CONFIG_NAME), 'utf8');
      assert.ok(text.startsWith('{\n  "alora_invocation_tokens": null,\n  "alpha_pattern": {},\n'));
      assert.ok(text.includes('\n  "lora_dropout": 0.05,\n') && text.includes('\n  "peft_type": "LORA",\n') && !text.endsWith('\n'));
      assert.ok(text.includes(`"peft_version": "${WRITER_PEFT_VERSION}"`));
      const back = await loadPeftConfig(out, quiet);
      assert.deepEqual(back.toJson(), config.toJson());
    });
  });

  test('missing folder or file, and bad JSON, are ConfigErrors', async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(loadPeftConfig(join(dir, 'nope')), (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'missing');
      await writeFile(join(dir, ADAPTER_CONFIG_NAME), '{"peft_type": "LORA",');
      await assert.rejects(loadPeftConfig(dir), (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'invalid_type' && e.message.includes(dir));
      await writeFile(join(dir, ADAPTER_CONFIG_NAME), '{"peft_type": "LORA", "r": 0}');
      await assert.rejects(loadPeftConfig(dir), (e: unknown) => e instanceof ConfigError && e.message.includes(ADAPTER_CONFIG_NAME) && e.issues[0]!.path[0] === 'r');
    });
  });
});

describe('reading JSON', () => {
  test('unknown keys: one warning listing them, ignored, kept in unknownKeys', () => {
    const warnings: string[] = [];
    const config = LoraConfig.fromJson({ peft_type: 'LORA', r: 4, zeta_option: 1, alpha_option: { a: 1 } }, { warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /Unexpected keys \["alpha_option","zeta_option"\] for LoraConfig/);
    assert.deepEqual(config.unknownKeys, ['alpha_option', 'zeta_option']);
    assert.equal(config.r, 4);
    assert.ok(!('zeta_option' in config.toJson()));
  });

  test('runtime_config is ignored with a warning (and is not an unknown key)', () => {
    const warnings: string[] = [];
    const config = LoraConfig.fromJson({ runtime_config: { ephemeral_gpu_offload: false } }, { warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /runtime_config/);
    assert.deepEqual(config.unknownKeys, []);
    assert.ok(!('runtime_config' in config.toJson()));
  });

  test('all problems are reported at once, with snake_case paths', () => {
    assert.deepEqual(
      issuesOf(() => LoraConfig.fromJson({ peft_type: 'LOHA', r: 0, lora_dropout: 'x', target_modules: ['q', 3], task_type: 'CHAT' })),
      [
        { code: 'invalid_value', path: 'peft_type' },
        { code: 'invalid_value', path: 'task_type' },
        { code: 'invalid_value', path: 'r' },
        { code: 'invalid_type', path: 'target_modules.1' },
        { code: 'invalid_type', path: 'lora_dropout' },
      ],
    );
  });

  test('missing keys take defaults; peft_version is kept as read, filled in when absent', () => {
    assert.equal(LoraConfig.fromJson({ peft_version: '0.13.2' }).peftVersion, '0.13.2');
    assert.equal(LoraConfig.fromJson({}).peftVersion, WRITER_PEFT_VERSION);
    assert.equal(LoraConfig.fromJson({ peft_version: null }).peftVersion, WRITER_PEFT_VERSION);
  });

  test('auto_mapping is written back as read', () => {
    const autoMapping = { base_model_class: 'TinyConvNet', parent_library: '__main__' };
    assert.deepEqual(LoHaConfig.fromJson({ auto_mapping: autoMapping }).toJson()['auto_mapping'], autoMapping);
  });
});

describe('constructor options', () => {
  test('camelCase options; unknown names are a TypeScript error and a runtime ConfigError', () => {
    const config = new LoraConfig({ r: 16, loraAlpha: 32, targetModules: ['q_proj', 'v_proj'] });
    assert.equal(config.loraAlpha, 32);
    // @ts-expect-error -- snake_case is the file format, not an option name
    assert.throws(() => new LoraConfig({ lora_alpha: 32 }), (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'unrecognized_key' && e.message.includes('loraAlpha'));
    // @ts-expect-error -- peftType is fixed by the class
    assert.deepEqual(issuesOf(() => new LoHaConfig({ peftType: 'LORA' })), [{ code: 'unrecognized_key', path: 'peftType' }]);
  });

  test('problems use camelCase paths and names', () => {
    assert.throws(
      () => new LoraConfig({ layersPattern: 'layers' }),
      (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'layersPattern' && e.message.includes('layersToTransform must also be specified'),
    );
  });

  test('configs are immutable; with() validates and copies', () => {
    const config = new LoraConfig({ targetModules: ['q_proj', 'q_proj', 'v_proj'], rankPattern: { q_proj: 2 } });
    assert.deepEqual(config.targetModules, ['q_proj', 'v_proj']); // a set in PEFT
    assert.throws(() => (config.targetModules as string[]).push('k_proj'), TypeError);
    assert.throws(() => {
      (config.rankPattern as Record<string, number>)['k_proj'] = 4;
    }, TypeError);
    const copy = config.with({ fanInFanOut: true });
    assert.ok(copy instanceof LoraConfig);
    assert.equal(copy.fanInFanOut, true);
    assert.equal(config.fanInFanOut, false);
    assert.deepEqual(copy.rankPattern, { q_proj: 2 });
    assert.throws(() => config.with({ r: -1 }), ConfigError);
    assert.equal(config.with({ r: undefined }).r, 8);
  });
});

describe('Python-compatible JSON', () => {
  test('float repr as Python 3.11 prints it', () => {
    const table: [number, string][] = [
      [0.0, '0.0'], [-0.0, '-0.0'], [0.05, '0.05'], [0.1, '0.1'], [1.0, '1.0'], [1e-5, '1e-05'], [0.0001, '0.0001'],
      [0.00012345, '0.00012345'], [123.456, '123.456'], [1e16, '1e+16'], [1.5e16, '1.5e+16'],
      [9999999999999998.0, '9999999999999998.0'], [1e22, '1e+22'], [2.5e-7, '2.5e-07'], [1 / 3, '0.3333333333333333'],
      [100.0, '100.0'], [1234567.0, '1234567.0'],
    ];
    for (const [x, expected] of table) assert.equal(pythonFloatRepr(x), expected, String(x));
  });

  test('json.dumps(indent=2, sort_keys=True): nested key order, empty containers, ASCII escapes', () => {
    const value = { b: 'é\u00ff\u0001\x7f"\\\n\t😀', a: [], c: {}, d: [1, { z: 1, y: [0.5] }] };
    const python = [
      '{',
      '  "a": [],',
      '  "b": "\\u00e9\\u00ff\\u0001\\u007f\\"\\\\\\n\\t\\ud83d\\ude00",',
      '  "c": {},',
      '  "d": [',
      '    1,',
      '    {',
      '      "y": [',
      '        0.5',
      '      ],',
      '      "z": 1',
      '    }',
      '  ]',
      '}',
    ].join('\n');
    assert.equal(formatPythonJson(value), python);
    assert.equal(formatPythonJson({ p: 0, q: 0 }, new Set(['p'])), '{\n  "p": 0.0,\n  "q": 0\n}');
  });

  test('PEFT_TS_VERSION is package.json version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(PEFT_TS_VERSION, pkg.version);
    assert.equal(WRITER_PEFT_VERSION, `0.21.2@peft-ts-${pkg.version}`);
  });
});
