/**
 * Module matching against Python PEFT. The expected values in `matching-cases.json` were produced by running the
 * pinned PEFT (0.21.2, see its `versions`) over the case table in `tools/parity/matching_cases.py`:
 * `check_target_module_exists`, `get_pattern_key` and `_find_minimal_target_modules` on the listed configs and
 * names, and `get_peft_model` on tiny random transformers models (module names and kinds recorded from
 * `named_modules()`, targets from `targeted_module_names`, the saved `target_modules`, per-layer r/alpha).
 * Regenerate with `tools/parity/.venv/bin/python tools/parity/matching_cases.py`; no Python runs here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ConfigError, NoMatchingModuleError } from '../../src/errors.js';
import type { LayerKind } from '../../src/nn/module.js';
import type { TaskType } from '../../src/tuners/config.js';
import { LoHaConfig } from '../../src/tuners/loha/config.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import {
  checkTargetModuleExists,
  defaultTargetModules,
  expandAllLinear,
  findMinimalTargetModules,
  findTargets,
  getPatternKey,
  isExcluded,
  isInsideModulesToSave,
  layerIndexOf,
  matchesModulesToSave,
  resolveRankAlpha,
  sampleModuleNames,
} from '../../src/tuners/matching.js';
import type { ModuleEntry } from '../../src/tuners/matching.js';
import { pythonRegexError, translatePythonRegex } from '../../src/tuners/python-regex.js';

interface Cases {
  checkTargetModuleExists: { name: string; method: 'LORA' | 'LOHA'; config: Record<string, unknown>; expected: Record<string, boolean | 'excluded'> }[];
  getPatternKey: { name: string; patternKeys: string[]; expected: Record<string, string> }[];
  findMinimalTargetModules: { name: string; targets: string[]; others: string[]; expected: string[] }[];
  models: {
    name: string;
    modelType: string;
    taskType: TaskType;
    outputEmbedding: string | null;
    config: Record<string, unknown>;
    modules: { name: string; kind: LayerKind | null }[];
    expectedAllLinear?: string[];
    expectedError?: string;
    expectedTargets?: string[];
    expectedTargetModules?: string | string[];
    expectedModulesToSave?: string[] | null;
    expectedLayers?: Record<string, { r: number; alpha: number }>;
  }[];
}

const cases = JSON.parse(readFileSync(new URL('./matching-cases.json', import.meta.url), 'utf8')) as Cases;
const quiet = { warn: () => undefined };

function configFor(method: 'LORA' | 'LOHA', json: Record<string, unknown>): LoraConfig | LoHaConfig {
  return method === 'LORA' ? LoraConfig.fromJson(json, quiet) : LoHaConfig.fromJson(json, quiet);
}

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

describe('checkTargetModuleExists matches PEFT', () => {
  for (const c of cases.checkTargetModuleExists) {
    test(c.name, () => {
      const config = configFor(c.method, c.config);
      const actual = Object.fromEntries(
        Object.keys(c.expected).map((key) => {
          const r = checkTargetModuleExists(config, key);
          return [key, isExcluded(r) ? 'excluded' : r];
        }),
      );
      assert.deepEqual(actual, c.expected);
    });
  }

  test('the excluded sentinel says why', () => {
    const spec = { targetModules: ['q'], excludeModules: ['a.q'], modulesToSave: ['head'] };
    assert.deepEqual(checkTargetModuleExists(spec, 'a.q'), { excluded: true, reason: 'exclude_modules' });
    assert.deepEqual(checkTargetModuleExists(spec, 'head.q'), { excluded: true, reason: 'modules_to_save' });
    assert.equal(checkTargetModuleExists(spec, 'b.q'), true);
  });

  test('null targetModules must be resolved first (unless targetParameters)', () => {
    assert.throws(() => checkTargetModuleExists({ targetModules: null }, 'a.q'), (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'target_modules');
    assert.equal(checkTargetModuleExists({ targetModules: null, targetParameters: ['w'] }, 'a.q'), false);
  });
});

describe('layer index', () => {
  test('first <segment>.<digits>. after a segment; leading zeros; pattern at the start (0.21)', () => {
    assert.equal(layerIndexOf('model.layers.1.mlp.experts.0.down_proj', null), 1);
    assert.equal(layerIndexOf('model.layers.012.q', null), 12);
    assert.equal(layerIndexOf('layers.1.self_attn.q_proj', null), undefined);
    assert.equal(layerIndexOf('layers.1.self_attn.q_proj', 'layers'), 1);
    assert.equal(layerIndexOf('transformer.h.3.attn.c_attn', ['blocks', 'h']), 3);
    assert.equal(layerIndexOf('transformer.h.3.attn.c_attn', 'blocks'), undefined);
  });
});

describe('getPatternKey matches PEFT', () => {
  for (const c of cases.getPatternKey) {
    test(c.name, () => {
      const actual = Object.fromEntries(Object.keys(c.expected).map((key) => [key, getPatternKey(c.patternKeys, key)]));
      assert.deepEqual(actual, c.expected);
    });
  }
});

describe('resolveRankAlpha', () => {
  test("the spec's worked example: scalings 11/25, 17/9, 13/16", () => {
    const config = new LoraConfig({ r: 25, loraAlpha: 17, rankPattern: { embed: 9, conv2d: 16 }, alphaPattern: { linear: 11, conv2d: 13 } });
    const scaling = (key: string): number => {
      const { r, alpha } = resolveRankAlpha(config, key);
      return alpha / r;
    };
    assert.equal(scaling('linear'), 11 / 25);
    assert.equal(scaling('embed'), 17 / 9);
    assert.equal(scaling('conv2d'), 13 / 16);
    assert.equal(scaling('model.linear'), 11 / 25);
  });

  test('first key in insertion order wins, rank and alpha looked up independently', () => {
    const config = new LoraConfig({
      r: 8,
      loraAlpha: 16,
      rankPattern: { q_proj: 2, 'model.layers.0.self_attn.q_proj': 4 },
      alphaPattern: { 'layers.0.self_attn.q_proj': 3, q_proj: 5 },
    });
    assert.deepEqual(resolveRankAlpha(config, 'model.layers.0.self_attn.q_proj'), { r: 2, alpha: 3 });
    assert.deepEqual(resolveRankAlpha(config, 'model.layers.1.self_attn.q_proj'), { r: 2, alpha: 5 });
    assert.deepEqual(resolveRankAlpha(config, 'model.layers.1.self_attn.k_proj'), { r: 8, alpha: 16 });
  });

  test('LoHa reads alpha; pattern keys named like Object.prototype members are not inherited', () => {
    const loha = new LoHaConfig({ r: 4, alpha: 6, alphaPattern: { v_proj: 1 } });
    assert.deepEqual(resolveRankAlpha(loha, 'a.v_proj'), { r: 4, alpha: 1 });
    assert.deepEqual(resolveRankAlpha(loha, 'constructor'), { r: 4, alpha: 6 });
  });
});

describe('findMinimalTargetModules matches PEFT', () => {
  for (const c of cases.findMinimalTargetModules) {
    test(c.name, () => {
      assert.deepEqual(sorted(findMinimalTargetModules(c.targets, c.others)), c.expected);
    });
  }

  test('rejects empty targets, empty names and overlaps', () => {
    assert.throws(() => findMinimalTargetModules([], ['a']), ConfigError);
    assert.throws(() => findMinimalTargetModules(['', 'a'], ['b']), ConfigError);
    assert.throws(() => findMinimalTargetModules(['a.b'], ['a.b']), ConfigError);
  });
});

describe('findTargets on tiny transformers models matches get_peft_model', () => {
  for (const c of cases.models) {
    const modules: ModuleEntry[] = c.modules.map((m) => ({ name: m.name, kind: m.kind ?? undefined }));
    const outputEmbedding = c.outputEmbedding ?? undefined;
    if (c.expectedAllLinear) {
      test(`${c.name}: all-linear expansion`, () => {
        assert.deepEqual(sorted(expandAllLinear(modules, outputEmbedding, c.taskType)), c.expectedAllLinear);
      });
    }
    if (c.expectedTargets) {
      test(`${c.name}: targets, saved target_modules, r/alpha`, () => {
        const config = LoraConfig.fromJson({ r: 4, task_type: c.taskType, ...c.config, modules_to_save: c.expectedModulesToSave ?? null }, quiet);
        const found = findTargets(modules, config, {
          method: 'LORA',
          modelType: c.modelType,
          taskType: c.taskType,
          ...(outputEmbedding ? { outputEmbeddingName: outputEmbedding } : {}),
          warn: () => undefined,
        });
        assert.deepEqual(sorted(found.targets), c.expectedTargets);
        const tm = found.resolvedTargetModules;
        assert.deepEqual(typeof tm === 'string' ? tm : sorted(tm), c.expectedTargetModules);
        for (const [key, expected] of Object.entries(c.expectedLayers ?? {})) assert.deepEqual(resolveRankAlpha(config, key), expected, key);
      });
    }
  }

  test('DistilBERT SEQ_CLS + all-linear: PEFT itself fails (pre_classifier is adapted, then endswith("classifier") wraps it)', () => {
    const c = cases.models.find((m) => m.name.startsWith('all-linear, DistilBERT'))!;
    assert.match(c.expectedError!, /^TypeError: modules_to_save cannot be applied/);
    // the matcher's half of it: the adapted pre_classifier is also a modules_to_save match by plain endswith
    assert.ok(c.expectedAllLinear!.includes('pre_classifier'));
    assert.ok(matchesModulesToSave('pre_classifier', ['classifier', 'score']));
    assert.equal(isInsideModulesToSave('pre_classifier', ['classifier', 'score']), false);
  });
});

describe('findTargets errors and warnings', () => {
  const llama: ModuleEntry[] = [
    { name: '', kind: undefined },
    { name: 'model', kind: undefined },
    { name: 'model.embed_tokens', kind: 'embedding' },
    { name: 'model.layers.0.self_attn', kind: undefined },
    { name: 'model.layers.0.self_attn.q_proj', kind: 'linear' },
    { name: 'model.layers.0.self_attn.v_proj', kind: 'linear' },
    { name: 'model.layers.1.self_attn.q_proj', kind: 'linear' },
    { name: 'model.layers.1.self_attn.v_proj', kind: 'linear' },
    { name: 'lm_head', kind: 'linear' },
  ];

  test('nothing matches: NoMatchingModuleError quoting target_modules and layers, with sample names', () => {
    const config = new LoraConfig({ targetModules: ['c_attn'], layersToTransform: [0], layersPattern: 'layers' });
    assert.throws(
      () => findTargets(llama, config, { method: 'LORA', modelType: 'llama' }),
      (e: unknown) =>
        e instanceof NoMatchingModuleError &&
        e.code === 'no_matching_module' &&
        e.reason === 'not_found' &&
        e.message.includes('["c_attn"]') &&
        e.message.includes('layers_to_transform=[0]') &&
        e.message.includes('layers_pattern="layers"') &&
        e.sampleNames.includes('model.layers.0.self_attn.q_proj') &&
        !e.sampleNames.includes('model.layers.1.self_attn.q_proj'),
    );
  });

  test('everything excluded; excluded or not found; empty target list', () => {
    const reasonOf = (config: LoraConfig): string | undefined => {
      try {
        findTargets(llama, config, { method: 'LORA' });
      } catch (e) {
        if (e instanceof NoMatchingModuleError) return e.reason;
        throw e;
      }
      return undefined;
    };
    assert.equal(reasonOf(new LoraConfig({ targetModules: ['q_proj'], excludeModules: '.*' })), 'all_excluded');
    assert.equal(reasonOf(new LoraConfig({ targetModules: ['q_proj'], excludeModules: ['q_proj'] })), 'excluded_or_not_found');
    assert.equal(reasonOf(new LoraConfig({ targetModules: [] })), 'no_target_modules');
  });

  test('null targetModules: model-type defaults, else ConfigError asking for targetModules', () => {
    const found = findTargets(llama, new LoraConfig(), { method: 'LORA', modelType: 'llama' });
    assert.deepEqual(found.targets, ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    assert.deepEqual(found.resolvedTargetModules, ['q_proj', 'v_proj']);
    assert.throws(
      () => findTargets(llama, new LoraConfig(), { method: 'LORA', modelType: 'my_arch' }),
      (e: unknown) => e instanceof ConfigError && e.issues[0]!.code === 'missing' && e.message.includes('Please specify targetModules'),
    );
  });

  test('dummy-target-modules targets nothing without an error', () => {
    const found = findTargets(llama, new LoraConfig({ targetModules: 'dummy-target-modules' }), { method: 'LORA' });
    assert.deepEqual(found, { targets: [], resolvedTargetModules: 'dummy-target-modules', excluded: [] });
  });

  test('warns when exclude_modules excluded nothing, and for pattern keys that matched no target', () => {
    const warnings: string[] = [];
    const config = new LoraConfig({ targetModules: ['q_proj'], excludeModules: ['k_proj'], rankPattern: { q_proj: 2, o_proj: 4 }, alphaPattern: { 'layers.9.q_proj': 1 } });
    const found = findTargets(llama, config, { method: 'LORA', warn: (m) => warnings.push(m) });
    assert.deepEqual(found.targets, ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
    assert.equal(warnings.length, 3);
    assert.match(warnings[0]!, /exclude_modules=\["k_proj"\] but no modules were excluded/);
    assert.match(warnings[1]!, /rank_pattern keys .*\["o_proj"\]/);
    assert.match(warnings[2]!, /alpha_pattern keys .*\["layers.9.q_proj"\]/);
  });

  test('all-linear leaves out lm_head, and SEQ_CLS score/classifier only without an output embedding', () => {
    assert.deepEqual(expandAllLinear(llama, 'lm_head'), [
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    const cls: ModuleEntry[] = [
      { name: 'body.dense', kind: 'linear' },
      { name: 'score', kind: 'linear' },
      { name: 'classifier', kind: 'linear' },
      { name: 'conv', kind: 'conv1d' },
      { name: 'c_fc', kind: 'gpt2_conv1d' },
    ];
    assert.deepEqual(expandAllLinear(cls, undefined, 'SEQ_CLS'), ['body.dense', 'classifier', 'c_fc']);
    assert.deepEqual(expandAllLinear(cls, undefined, 'CAUSAL_LM'), ['body.dense', 'score', 'classifier', 'c_fc']);
  });

  test('sample names prefer adaptable layers, one per leaf name', () => {
    assert.deepEqual(sampleModuleNames(llama), ['model.embed_tokens', 'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'lm_head']);
  });
});

describe('modules_to_save helpers', () => {
  test('guard (regex, dot boundary) vs wrapping (plain endswith)', () => {
    assert.equal(isInsideModulesToSave('classifier.out_proj', ['classifier']), true);
    assert.equal(isInsideModulesToSave('bert.classifier', ['classifier']), true);
    assert.equal(isInsideModulesToSave('pre_classifier', ['classifier']), false);
    assert.equal(matchesModulesToSave('pre_classifier', ['classifier']), true);
    assert.equal(matchesModulesToSave('classifier.out_proj', ['classifier']), false);
  });
});

describe('defaultTargetModules', () => {
  test("PEFT's table, peft-ts additions, and unknown types", () => {
    assert.deepEqual(defaultTargetModules('llama', 'LORA'), ['q_proj', 'v_proj']);
    assert.deepEqual(defaultTargetModules('gpt2', 'LOHA'), ['c_attn']);
    assert.deepEqual(defaultTargetModules('bert', 'LORA'), ['query', 'value']);
    assert.deepEqual(defaultTargetModules('qwen2', 'LORA'), ['q_proj', 'v_proj']);
    assert.deepEqual(defaultTargetModules('distilbert', 'LORA'), ['q_lin', 'v_lin']);
    assert.deepEqual(defaultTargetModules('clip_text_model', 'LOHA'), ['q_proj', 'v_proj']);
    assert.equal(defaultTargetModules('my_arch', 'LORA'), undefined);
    assert.equal(defaultTargetModules('toString', 'LORA'), undefined);
    const copy = defaultTargetModules('mistral', 'LORA')!;
    copy.push('x');
    assert.deepEqual(defaultTargetModules('mistral', 'LORA'), ['q_proj', 'v_proj']);
  });
});

describe('Python regex translation', () => {
  test('common Python syntax is translated', () => {
    assert.deepEqual(translatePythonRegex('(?P<n>q|v)_proj(?P=n)'), { source: '(?<n>q|v)_proj\\k<n>', flags: '' });
    assert.deepEqual(translatePythonRegex('(?i)\\AQ_PROJ\\Z'), { source: '^Q_PROJ$', flags: 'i' });
    assert.deepEqual(translatePythonRegex('a{,2}(?#note)[]x]'), { source: 'a{0,2}[\\]x]', flags: '' });
    assert.equal(checkTargetModuleExists({ targetModules: '(?i)MODEL\\.LAYERS\\.0\\..*' }, 'model.layers.0.q'), true);
    assert.equal(checkTargetModuleExists({ targetModules: '[]a]+' }, ']a'), true);
  });

  test('what JavaScript cannot do, or Python itself refuses, is rejected', () => {
    for (const bad of ['(?i:a)b', 'a*+', '(?>a)', '\\q', '\\N{DIGIT ONE}', '(?<n>a)', '(?x) a', '(?(1)a|b)', 'a[b', '(a']) {
      assert.notEqual(pythonRegexError(bad), undefined, bad);
    }
    assert.notEqual(pythonRegexError('(?i)q', { embedded: true }), undefined);
    assert.equal(pythonRegexError('\\.-\\_'), undefined);
  });

  test('a bad regex reaching the matcher is a ConfigError with the field path', () => {
    assert.throws(
      () => checkTargetModuleExists({ targetModules: ['q'], excludeModules: '(?i:q)' }, 'q'),
      (e: unknown) => e instanceof ConfigError && e.issues[0]!.path[0] === 'exclude_modules',
    );
  });
});
