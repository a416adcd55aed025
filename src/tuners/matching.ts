/**
 * Module matching: the only place in peft-ts that decides which modules an adapter targets. It mirrors PEFT
 * 0.21.2: `check_target_module_exists` and `_maybe_include_all_linear_layers`, `_find_minimal_target_modules`
 * (`tuners/tuners_utils.py`), `get_pattern_key` (`utils/other.py`), the target-module defaults of
 * `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` (`utils/constants.py`) and the error/warning logic at the end
 * of `BaseTuner.inject_adapter`.
 *
 * User strings that PEFT treats as Python regexes are translated and compiled into PEFT's templates by
 * `python-regex.ts`.
 */
import { ConfigError, NoMatchingModuleError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import type { LayerKind } from '../nn/module.js';
import type { PeftType, TaskType } from './config-schema.js';
import { compilePythonTemplate } from './python-regex.js';

// ---------------------------------------------------------------------------------------------------------------
// check_target_module_exists
// ---------------------------------------------------------------------------------------------------------------

/** The config fields that decide matching; LoraConfig and LoHaConfig satisfy it structurally. */
export interface TargetSpec {
  /** A regex string (full match), a list of exact names / dotted suffixes, or null (resolve defaults first). */
  readonly targetModules: string | readonly string[] | null;
  readonly excludeModules?: string | readonly string[] | null;
  readonly layersToTransform?: number | readonly number[] | null;
  readonly layersPattern?: string | readonly string[] | null;
  readonly modulesToSave?: readonly string[] | null;
  /** LoRA's `target_parameters`; with a null `targetModules` it means "match no module" (PEFT behaviour). */
  readonly targetParameters?: readonly string[] | null;
}

/** Why a module was excluded: an `excludeModules` hit, or it is (inside) a `modulesToSave` module. */
export interface ExcludedModule {
  readonly excluded: true;
  readonly reason: 'exclude_modules' | 'modules_to_save';
}

const EXCLUDED_BY_EXCLUDE_MODULES: ExcludedModule = Object.freeze({ excluded: true, reason: 'exclude_modules' });
const EXCLUDED_BY_MODULES_TO_SAVE: ExcludedModule = Object.freeze({ excluded: true, reason: 'modules_to_save' });

/** PEFT's `_ExcludedModule` sentinel: falsy in Python, so test with this (or `result === true` for "targeted"). */
export function isExcluded(result: boolean | ExcludedModule): result is ExcludedModule {
  return typeof result === 'object';
}

/**
 * PEFT's `check_target_module_exists(config, key)`: `true` if the module named `key` (full dotted name relative to
 * the user's model, e.g. `model.layers.0.self_attn.q_proj`) is targeted, `false` if not, or an
 * {@link ExcludedModule} when `excludeModules` or the `modulesToSave` guard rules it out.
 *
 * 1. `excludeModules` string: `re.fullmatch`; list: exact name or `.`-suffix.
 * 2. `modulesToSave` guard: excluded when `re.match(rf"(^|.*\.){m}($|\..*)", key)` for an entry `m`.
 * 3. `targetModules` string: `re.fullmatch` (layers_to_transform is ignored).
 * 4. `targetModules` list: an exact name matches (and skips the layer filter); else a `.`-suffix match, filtered by
 *    `layersToTransform` using the first `<layers_pattern>.<digits>.` in the key (PEFT 0.20+ lazy regexes; since
 *    0.21 a `layers_pattern` may also start the key, e.g. `layers.0.q` with pattern `layers`).
 */
export function checkTargetModuleExists(spec: TargetSpec, key: string): boolean | ExcludedModule {
  const exclude = spec.excludeModules;
  if (exclude != null && exclude.length > 0) {
    if (typeof exclude === 'string') {
      if (compilePythonTemplate('fullmatch', '', exclude, '', ['exclude_modules']).test(key)) return EXCLUDED_BY_EXCLUDE_MODULES;
    } else if (exclude.includes(key) || exclude.some((e) => key.endsWith(`.${e}`))) {
      return EXCLUDED_BY_EXCLUDE_MODULES;
    }
  }

  // Adapters never go on modules_to_save modules (the wrapper and the adapter would conflict).
  if (spec.modulesToSave != null && spec.modulesToSave.length > 0 && isInsideModulesToSave(key, spec.modulesToSave)) {
    return EXCLUDED_BY_MODULES_TO_SAVE;
  }

  const targets = spec.targetModules;
  if (targets === null) {
    if (spec.targetParameters != null) return false;
    throw new ConfigError(
      [{ code: 'missing', path: ['target_modules'], message: 'is null; resolve the defaults first (findTargets does) or set targetModules' }],
      'adapter config',
    );
  }
  if (typeof targets === 'string') return compilePythonTemplate('fullmatch', '', targets, '', ['target_modules']).test(key);
  if (targets.includes(key)) return true;

  let found = targets.some((t) => key.endsWith(`.${t}`));
  const layerIndexes = spec.layersToTransform ?? null;
  const usingLayerIndexes = layerIndexes !== null && (typeof layerIndexes === 'number' || layerIndexes.length !== 0);
  if (usingLayerIndexes && found) {
    const index = layerIndexOf(key, spec.layersPattern ?? null);
    if (index === undefined) found = false;
    else found = typeof layerIndexes === 'number' ? index === layerIndexes : layerIndexes.includes(index);
  }
  return found;
}

/**
 * The layer index PEFT reads from `key` for `layers_to_transform`, or `undefined` if none: the first
 * `<segment>.<digits>.` after at least one segment, or with `layersPattern`, the first `<pattern>.<digits>.` at the
 * start of the key or after a dot (first pattern that matches wins).
 */
export function layerIndexOf(key: string, layersPattern: string | readonly string[] | null): number | undefined {
  let match: RegExpExecArray | null = null;
  if (layersPattern === null || layersPattern.length === 0) {
    match = compilePythonTemplate('match', '', '.*?\\.[^.]*\\.(?P<idx>\\d+)\\.', '', ['layers_pattern']).exec(key);
  } else {
    const patterns = typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
    for (const [i, pattern] of patterns.entries()) {
      const path = typeof layersPattern === 'string' ? ['layers_pattern'] : ['layers_pattern', i];
      match = compilePythonTemplate('match', '(?:^|.*?\\.)', pattern, '\\.(?<idx>\\d+)\\.', path).exec(key);
      if (match !== null) break;
    }
  }
  const idx = match?.groups?.['idx'];
  return idx === undefined ? undefined : Number.parseInt(idx, 10);
}

// ---------------------------------------------------------------------------------------------------------------
// modules_to_save
// ---------------------------------------------------------------------------------------------------------------

/**
 * The guard of `check_target_module_exists`: `key` is a `modulesToSave` entry or lies inside one, with the entry
 * spliced into `(^|.*\.){m}($|\..*)` as a regex (so a `.` in an entry matches any character, as in PEFT).
 */
export function isInsideModulesToSave(key: string, modulesToSave: readonly string[]): boolean {
  return modulesToSave.some((m, i) => compilePythonTemplate('match', '(^|.*\\.)', m, '($|\\..*)', ['modules_to_save', i]).test(key));
}

/**
 * Which modules `_set_trainable` wraps in a `ModulesToSaveWrapper`: plain `key.endsWith(entry)`, with **no** dot
 * boundary (so `classifier` also wraps `pre_classifier`, as in PEFT).
 */
export function matchesModulesToSave(key: string, entries: readonly string[]): boolean {
  return entries.some((entry) => key.endsWith(entry));
}

// ---------------------------------------------------------------------------------------------------------------
// rank_pattern / alpha_pattern
// ---------------------------------------------------------------------------------------------------------------

/**
 * PEFT's `get_pattern_key` (v0.15+): the first key `k` (in insertion order) for which
 * `re.match(rf"(.*\.)?({k})$", key)` succeeds, i.e. `k` matches a dot-separated suffix of `key` (or all of it);
 * otherwise `key` itself.
 *
 * Insertion order caveat: JavaScript objects list integer-like keys ("0", "12") first, whatever their position in
 * the file; Python keeps file order. Patterns are written sorted (`sort_keys=True`) by both.
 */
export function getPatternKey(patternKeys: Iterable<string>, key: string): string {
  for (const k of patternKeys) if (patternKeyMatches(k, key)) return k;
  return key;
}

/** Whether the pattern key `k` selects the module `key`: `re.match(rf"(.*\.)?({k})$", key)`. */
export function patternKeyMatches(k: string, key: string): boolean {
  return compilePythonTemplate('match', '(.*\\.)?(', k, ')$', ['pattern', k]).test(key);
}

/** What {@link resolveRankAlpha} reads: LoraConfig (`loraAlpha`) or LoHaConfig (`alpha`). */
export type RankAlphaConfig = {
  readonly r: number;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
} & ({ readonly loraAlpha: number } | { readonly alpha: number });

/**
 * The rank and alpha of the module `key`, as `_create_and_replace` computes them: each looked up independently
 * through {@link getPatternKey}, falling back to `r` and `loraAlpha` (LoRA) or `alpha` (LoHa).
 */
export function resolveRankAlpha(config: RankAlphaConfig, key: string): { r: number; alpha: number } {
  const baseAlpha = 'loraAlpha' in config ? config.loraAlpha : config.alpha;
  const rankKey = getPatternKey(Object.keys(config.rankPattern), key);
  const alphaKey = getPatternKey(Object.keys(config.alphaPattern), key);
  return {
    r: Object.hasOwn(config.rankPattern, rankKey) ? config.rankPattern[rankKey]! : config.r,
    alpha: Object.hasOwn(config.alphaPattern, alphaKey) ? config.alphaPattern[alphaKey]! : baseAlpha,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Target-module defaults, all-linear, condensation
// ---------------------------------------------------------------------------------------------------------------

/**
 * PEFT's `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` (0.21.2), which LoHa copies unchanged. The one
 * regex-string entry (`gemma4`) is left out: peft-ts has no Gemma 4.
 */
const PEFT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  t5: ['q', 'v'],
  mt5: ['q', 'v'],
  bart: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
  bloom: ['query_key_value'],
  'blip-2': ['q', 'v', 'q_proj', 'v_proj'],
  opt: ['q_proj', 'v_proj'],
  gptj: ['q_proj', 'v_proj'],
  gpt_neox: ['query_key_value'],
  gpt_neo: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  'xlm-roberta': ['query', 'value'],
  electra: ['query', 'value'],
  'deberta-v2': ['query_proj', 'value_proj'],
  deberta: ['in_proj'],
  layoutlm: ['query', 'value'],
  llama: ['q_proj', 'v_proj'],
  llama4: ['q_proj', 'v_proj'],
  chatglm: ['query_key_value'],
  gpt_bigcode: ['c_attn'],
  mpt: ['Wqkv'],
  RefinedWebModel: ['query_key_value'],
  RefinedWeb: ['query_key_value'],
  falcon: ['query_key_value'],
  btlm: ['c_proj', 'c_attn'],
  codegen: ['qkv_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  stablelm: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
  gemma: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  gemma3_text: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
  nemotron_h: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  rwkv: ['key', 'value', 'receptance', 'output'],
  rwkv7: ['r_proj', 'k_proj', 'v_proj', 'o_proj', 'key', 'value'],
};

/**
 * peft-ts additions for architectures it supports that PEFT's table lacks (PEFT raises "Please specify
 * `target_modules`" for them). The resolved list is written to `adapter_config.json`, so Python PEFT loads such
 * adapters normally.
 */
const PEFT_TS_EXTRA_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  distilbert: ['q_lin', 'v_lin'],
  clip: ['q_proj', 'v_proj'],
  clip_text_model: ['q_proj', 'v_proj'],
};

/** The default `target_modules` for `modelType` (a copy), or `undefined` if there is none. */
export function defaultTargetModules(modelType: string, method: PeftType): string[] | undefined {
  if (method === 'XLORA') return undefined; // X-LoRA targets through its LoRA adapters' own configs
  const table = Object.hasOwn(PEFT_TARGET_MODULES, modelType)
    ? PEFT_TARGET_MODULES
    : Object.hasOwn(PEFT_TS_EXTRA_TARGET_MODULES, modelType)
      ? PEFT_TS_EXTRA_TARGET_MODULES
      : undefined;
  return table ? [...table[modelType]!] : undefined;
}

/** A module of the model as matching sees it: full dotted name and layer kind (`undefined` if not adaptable). */
export interface ModuleEntry {
  readonly name: string;
  readonly kind: LayerKind | undefined;
}

/** Layer kinds that count as "linear" for `all-linear` (`nn.Linear` and transformers' `Conv1D`). */
const ALL_LINEAR_KINDS: ReadonlySet<LayerKind> = new Set<LayerKind>(['linear', 'gpt2_conv1d']);

/** `SEQ_CLS_HEAD_NAMES`: checked in this order when the model has no output embedding. */
const SEQ_CLS_HEAD_NAMES = ['score', 'classifier'] as const;

/** `INCLUDE_LINEAR_LAYERS_SHORTHAND`, compared case-insensitively. */
export const ALL_LINEAR = 'all-linear';
/** `DUMMY_TARGET_MODULES`: an adapter that targets nothing (X-LoRA's base config), allowed to match nothing. */
export const DUMMY_TARGET_MODULES = 'dummy-target-modules';

/**
 * PEFT's `_maybe_include_all_linear_layers` for `target_modules="all-linear"`: the full names of all Linear and
 * GPT-2 Conv1D modules, minus the output embedding (`lm_head`), or for `SEQ_CLS` without an output embedding, minus
 * the top-level `score` or else `classifier` module. Every peft-ts model is treated as a transformers
 * `PreTrainedModel`. Modules inside existing adapter layers must be left out of `modules` by the caller.
 */
export function expandAllLinear(modules: readonly ModuleEntry[], outputEmbeddingName?: string, taskType?: TaskType | null): string[] {
  const names = modules.filter((m) => m.kind !== undefined && ALL_LINEAR_KINDS.has(m.kind)).map((m) => m.name);
  let excluded: string | undefined;
  if (outputEmbeddingName !== undefined) excluded = outputEmbeddingName;
  else if (taskType === 'SEQ_CLS') excluded = SEQ_CLS_HEAD_NAMES.find((head) => modules.some((m) => m.name === head));
  return [...new Set(names)].filter((name) => name !== excluded);
}

/** `MIN_TARGET_MODULES_FOR_OPTIMIZATION`: lists this long are condensed by {@link findMinimalTargetModules}. */
export const MIN_TARGET_MODULES_FOR_OPTIMIZATION = 20;

/** Code-point order of two strings (Python's `str` comparison). */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Python's ordering of two lists of strings. */
function compareStringLists(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareStrings(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/**
 * PEFT's `_find_minimal_target_modules`: the smallest set of dotted suffixes that still selects every name in
 * `targets` and none in `otherNames` (same greedy algorithm, so saved configs look like PEFT's). Returned in the
 * order the suffixes were chosen; PEFT returns a set, written in arbitrary order.
 */
export function findMinimalTargetModules(targets: Iterable<string>, otherNames: Iterable<string>): string[] {
  const targetSet = new Set(targets);
  const issue = (message: string): ConfigError => new ConfigError([{ code: 'invalid_value', path: ['target_modules'], message }], 'adapter config');
  if (targetSet.size === 0) throw issue('target_modules should be a non-empty list of strings');
  if (targetSet.has('')) throw issue('target_modules should not contain an empty string');
  const others = new Set(otherNames);
  for (const t of targetSet) {
    if (others.has(t)) throw issue(`target_modules and the other module names share ${JSON.stringify(t)}; they must be disjoint`);
  }
  // all suffixes, shortest first: "a.b.c" -> ["c", "b.c", "a.b.c"]
  const suffixes = (s: string): string[] => {
    const parts = s.split('.');
    return parts.map((_, i) => parts.slice(i).join('.')).reverse();
  };
  const otherSuffixes = new Set([...others].flatMap(suffixes));
  const entries = [...targetSet].map((item) => [item, suffixes(item)] as const).sort((a, b) => compareStringLists(a[1], b[1]));
  const required: string[] = [];
  const requiredSet = new Set<string>();
  for (const [item, itemSuffixes] of entries) {
    for (const suffix of itemSuffixes) {
      if (requiredSet.has(suffix) || otherSuffixes.has(suffix)) continue;
      if (!required.some((req) => item.endsWith(`.${req}`))) {
        required.push(suffix);
        requiredSet.add(suffix);
        break;
      }
    }
  }
  return required.length === 0 ? [...targetSet] : required;
}

// ---------------------------------------------------------------------------------------------------------------
// findTargets: the whole selection of inject_adapter
// ---------------------------------------------------------------------------------------------------------------

export interface FindTargetsOptions {
  /** `config.json`'s `model_type`, for the defaults when `targetModules` is null. */
  readonly modelType?: string;
  /** The PEFT method (default table lookup). */
  readonly method: PeftType;
  readonly taskType?: TaskType | null;
  /** Full name of the output embedding (`lm_head`), left out of `all-linear`. */
  readonly outputEmbeddingName?: string;
  /** Where warnings go (default `console.warn`). */
  readonly warn?: (message: string) => void;
}

export interface FoundTargets {
  /** Full names of the targeted modules, in `modules` order. */
  readonly targets: string[];
  /** `targetModules` as it should be stored in the adapter's config (defaults, all-linear, condensation applied). */
  readonly resolvedTargetModules: string | string[];
  /** Modules ruled out by `excludeModules` or the `modulesToSave` guard. */
  readonly excluded: string[];
}

/** What {@link findTargets} reads from the config. */
export interface FindTargetsSpec extends TargetSpec {
  readonly rankPattern?: Readonly<Record<string, number>>;
  readonly alphaPattern?: Readonly<Record<string, number>>;
}

/**
 * The target selection of `BaseTuner.inject_adapter`, before any module is touched:
 *
 * 1. `targetModules: null` → the model type's defaults ({@link defaultTargetModules}); none → `ConfigError`.
 * 2. `"dummy-target-modules"` → nothing is targeted, and that is fine.
 * 3. `"all-linear"` (any case) → {@link expandAllLinear}.
 * 4. A list of ≥ 20 names → condensed by {@link findMinimalTargetModules} (only kept if shorter).
 * 5. Every named module (the root `""` is skipped) goes through {@link checkTargetModuleExists}.
 * 6. Nothing targeted → {@link NoMatchingModuleError}; `excludeModules` that excluded nothing, and
 *    `rankPattern`/`alphaPattern` keys that matched no target, are reported through `warn`.
 *
 * `modules` should be `[...model.namedModules()]` minus the modules inside existing adapter layers (PEFT skips
 * those; keeping them out is the caller's job), each with its layer kind (`undefined` when not adaptable).
 */
export function findTargets(modules: readonly ModuleEntry[], spec: FindTargetsSpec, options: FindTargetsOptions): FoundTargets {
  const warn = options.warn ?? ((message: string) => console.warn(`peft-ts: ${message}`));
  let targetModules: string | readonly string[] | null = spec.targetModules;
  if (targetModules === null) {
    const defaults = options.modelType === undefined ? undefined : defaultTargetModules(options.modelType, options.method);
    if (defaults === undefined && (spec.targetParameters == null || spec.targetParameters.length === 0)) {
      const issue: ConfigIssue = {
        code: 'missing',
        path: ['target_modules'],
        message:
          `Please specify targetModules (target_modules) in the adapter config: there is no default for model type ` +
          `${options.modelType === undefined ? '(unknown)' : JSON.stringify(options.modelType)}. Pass module name ` +
          `suffixes such as ["q_proj", "v_proj"], a regex, or "all-linear".`,
      };
      throw new ConfigError([issue], 'adapter config');
    }
    targetModules = defaults ?? null;
  }

  if (targetModules === DUMMY_TARGET_MODULES) return { targets: [], resolvedTargetModules: DUMMY_TARGET_MODULES, excluded: [] };

  if (typeof targetModules === 'string' && targetModules.toLowerCase() === ALL_LINEAR) {
    targetModules = expandAllLinear(modules, options.outputEmbeddingName, options.taskType);
  }

  if (Array.isArray(targetModules) && targetModules.length >= MIN_TARGET_MODULES_FOR_OPTIMIZATION) {
    const list: readonly string[] = targetModules;
    const targetSet = new Set(list);
    const suffixes = list.map((t) => `.${t}`);
    const namesNoTarget = modules.map((m) => m.name).filter((name) => !targetSet.has(name) && !suffixes.some((s) => name.endsWith(s)));
    const condensed = findMinimalTargetModules(list, namesNoTarget);
    if (condensed.length < targetSet.size) targetModules = condensed;
  }

  const resolvedSpec: TargetSpec = { ...pickTargetSpec(spec), targetModules };
  const targets: string[] = [];
  const excluded: string[] = [];
  const unmatched: string[] = [];
  for (const { name } of modules) {
    if (!name) continue;
    const result = checkTargetModuleExists(resolvedSpec, name);
    if (result === true) targets.push(name);
    else if (result === false) unmatched.push(name);
    else excluded.push(name);
  }

  const resolvedTargetModules = targetModules === null ? [] : typeof targetModules === 'string' ? targetModules : [...targetModules];
  if (targets.length === 0) {
    throw new NoMatchingModuleError({
      reason:
        excluded.length > 0 && unmatched.length === 0
          ? 'all_excluded'
          : excluded.length === 0 && (targetModules === null || targetModules.length === 0)
            ? 'no_target_modules'
            : excluded.length === 0
              ? 'not_found'
              : 'excluded_or_not_found',
      targetModules: resolvedTargetModules,
      layersToTransform: spec.layersToTransform ?? null,
      layersPattern: spec.layersPattern ?? null,
      sampleNames: sampleModuleNames(modules),
    });
  }
  if (spec.excludeModules != null && spec.excludeModules.length > 0 && excluded.length === 0) {
    warn(`You have passed exclude_modules=${JSON.stringify(spec.excludeModules)} but no modules were excluded. Please check that excludeModules was set correctly.`);
  }
  for (const [field, patterns] of [['rank_pattern', spec.rankPattern], ['alpha_pattern', spec.alphaPattern]] as const) {
    if (!patterns) continue;
    const keys = Object.keys(patterns);
    const unused = keys.filter((k) => !targets.some((t) => patternKeyMatches(k, t))).sort(compareStrings);
    if (unused.length > 0) warn(`The following ${field} keys did not match any targeted module and were ignored: ${JSON.stringify(unused)}.`);
  }
  return { targets, resolvedTargetModules, excluded };
}

function pickTargetSpec(spec: TargetSpec): TargetSpec {
  return {
    targetModules: spec.targetModules,
    excludeModules: spec.excludeModules ?? null,
    layersToTransform: spec.layersToTransform ?? null,
    layersPattern: spec.layersPattern ?? null,
    modulesToSave: spec.modulesToSave ?? null,
    targetParameters: spec.targetParameters ?? null,
  };
}

/** A few names from the model for error messages: adaptable layers first, one per distinct last segment. */
export function sampleModuleNames(modules: readonly ModuleEntry[], limit = 8): string[] {
  const adaptable = modules.filter((m) => m.kind !== undefined && m.name);
  const pool = adaptable.length > 0 ? adaptable : modules.filter((m) => m.name);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const { name } of pool) {
    const leaf = name.slice(name.lastIndexOf('.') + 1);
    if (seen.has(leaf)) continue;
    seen.add(leaf);
    out.push(name);
    if (out.length >= limit) break;
  }
  return out;
}
