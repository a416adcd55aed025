/**
 * `XLoraConfig`: every field of the original `xlora` package's `xLoRAConfig` (EricLBuehler/xlora 8217992,
 * `xlora_config.py`) and of PEFT 0.21.2's port (`peft/tuners/xlora/config.py`), in one class, with codecs for both
 * file formats (spec `xlora.md` §2, §7.1, §7.2):
 *
 * - PEFT's `adapter_config.json` (`peft_type: "XLORA"`, `adapters` a dict, keys sorted, 2-space indent):
 *   {@link XLoraConfig.fromJson} / `toJson()` / `toJsonString()`, as every other config.
 * - The original's `xlora_config.json` (one line, Python `json.dump` defaults, fixed key order, `adapters` a list
 *   of names): {@link XLoraConfig.fromOriginalJson} / {@link XLoraConfig.toOriginalJson} /
 *   {@link XLoraConfig.toOriginalDict}.
 * - {@link loadXLoraConfig} / {@link saveXLoraConfig}: a checkpoint folder in either format.
 *
 * Deviations from both upstreams, on purpose:
 * - `hiddenSize` has no default (PEFT falls back to 4096 with a warning; the original requires it). It is `null` until set;
 *   a caller that knows the base model fills it with {@link XLoraConfig.withModelHiddenSize}.
 * - `topKLora < 1` is a `ConfigError` (both upstreams only warn, then fail inside `torch.topk`); so is a
 *   `topKLora` larger than the number of experts.
 * - Unknown keys (`stop_token_id`, `device`, `model_type`, keys of newer PEFT versions) are ignored with one
 *   warning (as mistral.rs does; the original's dataclass would reject them) and listed in `unknownKeys`.
 *
 * The classifier layout ({@link XLoraClassifierLayout}): PEFT's port has no `enable_relu_and_dropout` and no
 * `use_bias`. Its classifier always has ReLU after each hidden Linear, a Dropout module only if
 * `xlora_dropout_p > 0`, and biases everywhere; the original inserts ReLU *and* Dropout(p) (even p = 0) iff
 * `enable_relu_and_dropout`, and biases iff `use_bias`. The module indices of the state-dict keys differ when
 * p = 0. `classifierLayout` records which rule applies:
 * - `'peft'`: read from an `adapter_config.json` that has neither `enable_relu_and_dropout` nor `use_bias` (every
 *   file PEFT writes). `enableReluAndDropout` and `useBias` are then `true` (setting either to `false` is a
 *   `ConfigError`), and the Dropout module exists iff `xloraDropoutP > 0`.
 * - `'original'` (the default for a constructed config, and for anything read from `xlora_config.json` or from an
 *   `adapter_config.json` that has one of those keys): ReLU and Dropout(p) iff `enableReluAndDropout`, bias iff
 *   `useBias`.
 *
 * Expert order: `adapters` is an ordered name → path record and its key order is the expert index (the classifier's
 * class c). JavaScript orders integer-like keys ("0", "1", ... as PEFT names them) numerically before other keys,
 * whatever the order in the file: for PEFT's `"0".."C-1"` that is the training order (PEFT writes them sorted as
 * strings, "0", "1", "10", "2", ..., and its reload then permutes the experts for C >= 11: an upstream bug not
 * copied). A list of names whose order a record cannot keep is a `ConfigError`; names that mix integer-like and
 * other keys give a warning.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../errors.js';
import type { ConfigIssue } from '../../errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { consoleWarn, defineConfig, EMPTY_OBJECT, field, INVALID, p, PEFT_FORMAT_VERSION, peftConfigFields } from '../config-schema.js';
import type { ConfigOptions, ConfigSettings, FieldValues, JsonObject, JsonValue, Mutable, Parser, RefineContext } from '../config-schema.js';
import { pythonJsonDumps } from '../python-json.js';

/** `adapters` keeps its order (the expert index) even where keys are sorted. */
const ADAPTERS_KEY: ReadonlySet<string> = new Set(['adapters']);

/** Which classifier module rule applies; see the module comment. */
export type XLoraClassifierLayout = 'original' | 'peft';

/** File name of the original package's config (`xlora_config.json`). */
export const XLORA_CONFIG_NAME = 'xlora_config.json';
/** PEFT's config file (the same as `config.ts`'s `ADAPTER_CONFIG_NAME`; not imported, to avoid an import cycle). */
const ADAPTER_CONFIG_FILE = 'adapter_config.json';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets an own property even for keys like `__proto__`. */
function defineOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const INTEGER_LIKE = /^(0|[1-9]\d{0,8})$/;

/**
 * `adapters`: a dict name → path (PEFT, hand-edited original configs, constructor options) or a list of names (the
 * original's `xlora_config.json`). A listed name's path is the name itself: the original saves each expert in the
 * subfolder `<name>/` next to `xlora_config.json`, so the path is relative to the config's folder.
 */
const adaptersParser: Parser<Readonly<Record<string, string>>> = (value, report) => {
  const out: Record<string, string> = {};
  let ok = true;
  if (Array.isArray(value)) {
    const names: string[] = [];
    value.forEach((name, i) => {
      if (typeof name !== 'string' || name === '') {
        report({ code: 'invalid_type', message: `must be a non-empty adapter name, got ${JSON.stringify(name) ?? String(name)}`, subpath: [i] });
        ok = false;
      } else if (Object.hasOwn(out, name)) {
        report({ code: 'invalid_value', message: `adapter name ${JSON.stringify(name)} is listed twice`, subpath: [i] });
        ok = false;
      } else {
        defineOwn(out, name, name);
        names.push(name);
      }
    });
    if (ok && Object.keys(out).some((k, i) => k !== names[i])) {
      report({
        code: 'unsupported',
        message:
          `the expert order ${JSON.stringify(names)} cannot be kept: a JavaScript object orders integer-like names ` +
          `numerically (${JSON.stringify(Object.keys(out))}); rename the experts`,
      });
      ok = false;
    }
  } else if (isPlainObject(value)) {
    for (const [name, path] of Object.entries(value)) {
      if (name === '') {
        report({ code: 'invalid_value', message: 'adapter names must not be empty', subpath: [name] });
        ok = false;
      } else if (typeof path !== 'string') {
        report({ code: 'invalid_type', message: `must be a path or hub id (a string), got ${JSON.stringify(path) ?? String(path)}`, subpath: [name] });
        ok = false;
      } else {
        defineOwn(out, name, path);
      }
    }
  } else {
    report({ code: 'invalid_type', message: `must be an object mapping adapter names to paths, or a list of names, got ${JSON.stringify(value) ?? String(value)}` });
    return INVALID;
  }
  return ok ? Object.freeze(out) : INVALID;
};

/**
 * The field table: PEFT's common fields, then the X-LoRA fields in the original's declaration order (PEFT's port
 * declares the same fields minus `base_model_id`, `enable_relu_and_dropout` and `use_bias`).
 */
export const xloraFields = {
  ...peftConfigFields,
  /** H, the base model's hidden size (the classifier's input width). `null` until known; must be > 0 when set. */
  hiddenSize: field('hidden_size', null as number | null, p.nullable(p.integer({ min: 1 }))),
  /** Original only: the base model's hub id (PEFT uses `baseModelNameOrPath`; `fromOriginalJson` sets both). */
  baseModelId: field('base_model_id', null as string | null, p.nullable(p.string)),
  /** Expert name → LoRA checkpoint path or hub id; key order is the expert index. */
  adapters: field('adapters', EMPTY_OBJECT as Readonly<Record<string, string>>, adaptersParser, { nullMeansDefault: true }),
  /** softmax(logits / T) over the experts. */
  enableSoftmax: field('enable_softmax', true, p.boolean),
  /** Softmax over the surviving top-k experts (per token, as PEFT). Only meaningful with `topKLora`. */
  enableSoftmaxTopk: field('enable_softmax_topk', false, p.boolean),
  /** One scaling per (LoRA layer, expert) instead of one per expert broadcast to every layer. */
  layerwiseScalings: field('layerwise_scalings', false, p.boolean),
  /** Number of Linear layers of the classifier. */
  xloraDepth: field('xlora_depth', 1, p.integer({ min: 1 })),
  /** Z, the classifier's hidden width (unused when the depth is 1). */
  xloraSize: field('xlora_size', 2048, p.integer({ min: 1 })),
  /** Original only: ReLU and Dropout after each hidden Linear (see {@link XLoraClassifierLayout}). */
  enableReluAndDropout: field('enable_relu_and_dropout', true, p.boolean),
  /** Original only: biases on the classifier's Linears. */
  useBias: field('use_bias', true, p.boolean),
  /** The classifier's dropout probability (training only). */
  xloraDropoutP: field('xlora_dropout_p', 0.2, p.number({ min: 0, max: 1 }), { float: true }),
  /** Also train the experts. */
  useTrainableAdapters: field('use_trainable_adapters', false, p.boolean),
  /** T of softmax(logits / T); > 0. */
  softmaxTemperature: field('softmax_temperature', 1.0, p.number(), { float: true }),
  /** Keep only the k largest scalings per token and layer; `null`: dense. */
  topKLora: field('top_k_lora', null as number | null, p.nullable(p.integer({ min: 1 }))),
  /** Every entry of the scaling pass's dummy scalings. */
  scalingPassValue: field('scaling_pass_value', 0.0, p.number(), { float: true }),
  /** Extra factor on every expert's output. */
  globalScalingWeight: field('global_scaling_weight', 1.0, p.number(), { float: true }),
  /**
   * peft-ts's own: which classifier module rule applies. Never written to a file; derived when one is read (see
   * {@link XLoraClassifierLayout}). Its key is reserved: a file that has it gets the unknown-key warning.
   */
  classifierLayout: field('classifier_layout', 'original' as XLoraClassifierLayout, p.oneOf(['original', 'peft'] as const)),
} as const;

export type XLoraFields = typeof xloraFields;
export type XLoraConfigOptions = ConfigOptions<XLoraFields>;

type Values = Mutable<FieldValues<XLoraFields>>;

/** `xLoRAConfig.__post_init__` / `XLoraConfig.__post_init__`, with our errors where they only warn. */
function refineXLora(v: Values, ctx: RefineContext<XLoraFields>): void {
  if (v.softmaxTemperature <= 0) {
    ctx.issue('softmaxTemperature', 'invalid_value', `must be > 0, got ${v.softmaxTemperature}`);
  }
  if (v.enableSoftmaxTopk && v.topKLora === null) {
    ctx.warn(`\`${ctx.name('enableSoftmaxTopk')}\` enabled \`${ctx.name('topKLora')}\` is not set`);
  }
  if (v.enableSoftmaxTopk && v.enableSoftmax) {
    ctx.warn(`\`${ctx.name('enableSoftmaxTopk')}\` and \`${ctx.name('enableSoftmax')}\` are both enabled. This will result in worse performance.`);
  }
  const names = Object.keys(v.adapters);
  if (v.topKLora !== null && names.length > 0 && v.topKLora > names.length) {
    ctx.issue('topKLora', 'invalid_value', `must be <= the number of adapters (${names.length}), got ${v.topKLora}`);
  }
  const integerLike = names.filter((n) => INTEGER_LIKE.test(n));
  if (integerLike.length > 0 && integerLike.length < names.length) {
    ctx.warn(
      `adapter names mix integer-like and other names (${JSON.stringify(names)}); JavaScript orders integer-like ` +
        'names first, numerically, and that order is the expert index. Check that it matches the order the classifier was trained with.',
    );
  }
  if (v.classifierLayout === 'peft') {
    for (const n of ['enableReluAndDropout', 'useBias'] as const) {
      if (!v[n]) {
        ctx.issue(n, 'invalid_value', `must be true with ${ctx.name('classifierLayout')} "peft" (PEFT's classifier always has ReLU and biases); use the "original" layout`);
      }
    }
  }
}

/** The keys of the original's `xlora_config.json`, in the order it writes them. */
export const ORIGINAL_XLORA_KEYS = [
  'hidden_size', 'base_model_id', 'adapters', 'enable_softmax', 'enable_softmax_topk', 'layerwise_scalings', 'xlora_depth',
  'xlora_size', 'enable_relu_and_dropout', 'use_bias', 'xlora_dropout_p', 'use_trainable_adapters', 'softmax_temperature',
  'top_k_lora', 'scaling_pass_value', 'global_scaling_weight',
] as const;
/** Keys the original's dataclass requires (mistral.rs requires them too). */
const ORIGINAL_REQUIRED_KEYS: readonly string[] = ['hidden_size', 'base_model_id', 'adapters'];
/** Keys only the original has; written to `adapter_config.json` only in the "original" layout / when set. */
const ORIGINAL_ONLY_KEYS = ['base_model_id', 'enable_relu_and_dropout', 'use_bias'] as const;
/** Keys old original configs carry (`stop_token_id` until 2024-03) or that name non-saved state. */
const ORIGINAL_LEGACY_KEYS = new Set(['stop_token_id', 'device', 'model_type']);
const FLOAT_KEYS = new Set(Object.values(xloraFields).filter((f) => f.float).map((f) => f.key));
const PEFT_KEYS = new Set(Object.values(xloraFields).map((f) => f.key).filter((k) => k !== 'classifier_layout'));
const ORIGINAL_KEY_SET: ReadonlySet<string> = new Set(ORIGINAL_XLORA_KEYS);

/** Which file an X-LoRA config is stored in: PEFT's `adapter_config.json` or the original's `xlora_config.json`. */
export type XLoraFileFormat = 'peft' | 'original';
type FileFormat = XLoraFileFormat;

function whatOf(settings: ConfigSettings, format: FileFormat): string {
  const what = format === 'peft' ? 'XLoraConfig' : `XLoraConfig (${XLORA_CONFIG_NAME})`;
  return settings.source ? `${what} (${settings.source})` : what;
}

const Base = defineConfig({ peftType: 'XLORA', what: 'XLoraConfig', fields: xloraFields, refine: refineXLora });

/**
 * X-LoRA's config. Options are camelCase (`new XLoraConfig({ hiddenSize: 4096, adapters: { '0': 'path/a', '1':
 * 'path/b' }, layerwiseScalings: true })`); `XLoraConfig.fromJson(json)` reads PEFT's `adapter_config.json`,
 * `XLoraConfig.fromOriginalJson(json)` the original's `xlora_config.json`.
 */
export class XLoraConfig extends Base {
  /**
   * Reads PEFT's `adapter_config.json` object (`peft_type` "XLORA" or absent). `adapters` may be a dict or a list of
   * names; `classifierLayout` is "peft" unless the object has `enable_relu_and_dropout` or `use_bias`. Unknown
   * keys give one warning and are listed in `unknownKeys`.
   */
  static override fromJson<C extends abstract new (...args: never[]) => unknown>(this: C, raw: unknown, settings: ConfigSettings = {}): InstanceType<C> {
    return parse(this as unknown as typeof XLoraConfig, raw, 'peft', settings) as InstanceType<C>;
  }

  /**
   * Reads the original package's `xlora_config.json` (the parsed object, or its text). `hidden_size`, `base_model_id` and `adapters` are
   * required (as the original's dataclass requires them); `adapters` may be a list of names (as the original
   * writes it; each path is then the name, i.e. the subfolder next to the file) or a dict of paths (as
   * hand-edited hub configs have it). `baseModelNameOrPath` is set to `base_model_id`. The layout is "original".
   * Keys the original does not write (`stop_token_id`, `device`, PEFT's keys, ...) give one warning and are
   * ignored.
   */
  static fromOriginalJson(raw: unknown, settings: ConfigSettings = {}): XLoraConfig {
    if (typeof raw === 'string') {
      try {
        raw = JSON.parse(raw) as unknown;
      } catch (e) {
        throw new ConfigError([{ code: 'invalid_type', path: [], message: `is not valid JSON: ${(e as Error).message}` }], whatOf(settings, 'original'));
      }
    }
    return parse(this, raw, 'original', settings);
  }

  /** The expert names, in expert-index order. */
  get adapterNames(): readonly string[] {
    return Object.keys(this.adapters);
  }

  /**
   * PEFT's `to_dict()` as written to `adapter_config.json`: PEFT's keys (sorted, with `peft_type`), so a config
   * read from a PEFT file writes the same values back. Added only where PEFT's keys would lose information:
   * `base_model_id` when set, and `enable_relu_and_dropout` / `use_bias` when `classifierLayout` is "original"
   * (PEFT ignores them with a warning; `fromJson` reads them back as the "original" layout). `adapters` keeps the
   * expert order (PEFT sorts its keys, which would permute experts whose names are not in sorted order; for
   * PEFT's "0".."9" it is the same). `hidden_size` may be `null` here (PEFT reads that as 4096, with a warning):
   * fill it with `withModelHiddenSize` first.
   */
  override toJson(): JsonObject {
    const full = super.toJson() as Record<string, JsonValue>;
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(full)) {
      if (k === 'classifier_layout') continue;
      if (k === 'base_model_id' && v === null) continue;
      if ((k === 'enable_relu_and_dropout' || k === 'use_bias') && this.classifierLayout === 'peft') continue;
      defineOwn(out, k, k === 'adapters' ? this.adapters : v);
    }
    return out;
  }

  /**
   * The `adapter_config.json` text: PEFT's `json.dumps(indent=2, sort_keys=True)` of {@link toJson}, except that
   * `adapters` stays in expert order (byte-identical to PEFT's file when the names are in sorted order).
   */
  override toJsonString(): string {
    return pythonJsonDumps(this.toJson(), { indent: 2, sortKeys: true, floatKeys: FLOAT_KEYS, keepOrderKeys: ADAPTERS_KEY });
  }

  /**
   * The original's `xlora_config.json` dict (`conf` in its `save_pretrained`), keys in its order ({@link ORIGINAL_XLORA_KEYS}); `adapters` is
   * the list of names (their paths are not written, as the original does not). `base_model_id` is `baseModelId`,
   * else `baseModelNameOrPath`. A `ConfigError` when `hiddenSize` or both base model fields are `null` (the
   * original cannot load such a file).
   */
  toOriginalDict(): JsonObject {
    const baseModelId = this.baseModelId ?? this.baseModelNameOrPath;
    const issues: ConfigIssue[] = [];
    if (this.hiddenSize === null) issues.push({ code: 'missing', path: ['hiddenSize'], message: 'is required by xlora_config.json; set it (withModelHiddenSize)' });
    if (baseModelId === null) issues.push({ code: 'missing', path: ['baseModelId'], message: 'is required by xlora_config.json; set baseModelId or baseModelNameOrPath' });
    if (issues.length > 0) throw new ConfigError(issues, whatOf({}, 'original'));
    const values: Record<(typeof ORIGINAL_XLORA_KEYS)[number], JsonValue> = {
      hidden_size: this.hiddenSize,
      base_model_id: baseModelId,
      adapters: Object.freeze(this.adapterNames.slice()),
      enable_softmax: this.enableSoftmax,
      enable_softmax_topk: this.enableSoftmaxTopk,
      layerwise_scalings: this.layerwiseScalings,
      xlora_depth: this.xloraDepth,
      xlora_size: this.xloraSize,
      enable_relu_and_dropout: this.enableReluAndDropout,
      use_bias: this.useBias,
      xlora_dropout_p: this.xloraDropoutP,
      use_trainable_adapters: this.useTrainableAdapters,
      softmax_temperature: this.softmaxTemperature,
      top_k_lora: this.topKLora,
      scaling_pass_value: this.scalingPassValue,
      global_scaling_weight: this.globalScalingWeight,
    };
    const out: Record<string, JsonValue> = {};
    for (const k of ORIGINAL_XLORA_KEYS) out[k] = values[k];
    return out;
  }

  /**
   * The `xlora_config.json` text as the original writes it (`json.dump(conf, f)` of {@link toOriginalDict}: one
   * line, `", "` / `": "` separators, floats as Python `repr`, no trailing newline).
   */
  toOriginalJson(): string {
    return pythonJsonDumps(this.toOriginalDict(), { floatKeys: FLOAT_KEYS });
  }

  /**
   * Fills `hiddenSize` from the base model: a copy with `hiddenSize` set when it is `null`, `this` when it already
   * equals `hiddenSize`, and a `ConfigError` when it differs (the classifier reads the model's hidden states, so
   * they must agree). Warnings of the copy's checks are silenced by default (they were given when this config was
   * made).
   */
  withModelHiddenSize(hiddenSize: number, settings: ConfigSettings = { warn: () => undefined }): this {
    if (this.hiddenSize === null) return this.with({ hiddenSize }, settings);
    if (this.hiddenSize !== hiddenSize) {
      throw new ConfigError(
        [{ code: 'invalid_value', path: ['hiddenSize'], message: `is ${this.hiddenSize} but the base model's hidden size is ${hiddenSize}` }],
        'XLoraConfig',
      );
    }
    return this;
  }
}

/** Shared by `fromJson` and `fromOriginalJson`: key filtering, the layout, required keys, unknown-key warning. */
function parse(cls: typeof XLoraConfig, raw: unknown, format: FileFormat, settings: ConfigSettings): XLoraConfig {
  const what = whatOf(settings, format);
  if (!isPlainObject(raw)) {
    throw new ConfigError([{ code: 'invalid_type', path: [], message: `must be a JSON object, got ${JSON.stringify(raw) ?? String(raw)}` }], what);
  }
  const warn = settings.warn ?? consoleWarn;
  const known: Record<string, unknown> = {};
  const unknownKeys: string[] = [];
  const issues: ConfigIssue[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const isKnown = format === 'peft' ? PEFT_KEYS.has(key) || key === 'peft_type' || key === 'runtime_config' : ORIGINAL_KEY_SET.has(key);
    if (isKnown) defineOwn(known, key, value);
    else unknownKeys.push(key);
  }
  if (format === 'original') {
    for (const key of ORIGINAL_REQUIRED_KEYS) {
      if (!Object.hasOwn(raw, key)) issues.push({ code: 'missing', path: [key], message: `is required in ${XLORA_CONFIG_NAME}` });
    }
    if (typeof known['base_model_id'] === 'string') known['base_model_name_or_path'] = known['base_model_id'];
    known['classifier_layout'] = 'original';
  } else {
    const original = ORIGINAL_ONLY_KEYS.some((k) => k !== 'base_model_id' && Object.hasOwn(raw, k));
    known['classifier_layout'] = original ? 'original' : 'peft';
  }
  if (unknownKeys.length > 0) {
    unknownKeys.sort();
    const legacy = unknownKeys.filter((k) => ORIGINAL_LEGACY_KEYS.has(k));
    const why =
      format === 'original'
        ? 'they are not fields of the original xlora package\'s xLoRAConfig (stop_token_id was removed from it in 2024-03; device is never saved)'
        : legacy.length > 0
          ? `${JSON.stringify(legacy)} belong to the original xlora package's config, not to PEFT's`
          : `the file was probably written by a newer PEFT version (peft-ts follows PEFT ${PEFT_FORMAT_VERSION})`;
    warn(`Unexpected keys ${JSON.stringify(unknownKeys)} for ${what}; they are ignored: ${why}.`);
  }
  let config: XLoraConfig | undefined;
  let error: ConfigError | undefined;
  try {
    // fromJson of the generated base: the JSON-key codec (snake_case paths, peft_type check, defaults)
    config = Base.fromJson.call(cls, known, settings) as XLoraConfig;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    error = e;
  }
  if (issues.length > 0 || error) throw new ConfigError([...issues, ...(error?.issues ?? [])], what);
  Object.defineProperty(config, 'unknownKeys', { value: Object.freeze(unknownKeys), enumerable: true, writable: false, configurable: true });
  return config!;
}

// ---------------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------------

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ code: 'missing', path: [], message: `cannot be read: ${(e as Error).message}` }], file);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigError([{ code: 'invalid_type', path: [], message: `is not valid JSON: ${(e as Error).message}` }], file);
  }
}

/**
 * Reads an X-LoRA checkpoint folder's config: `xlora_config.json` (the original's format) if it exists, else
 * `adapter_config.json`, which must have `peft_type` "XLORA". Which one was read shows in `classifierLayout` only
 * as far as the classifier's modules differ; callers that need the file format check for `xlora_config.json`. (An original checkpoint may also have a root
 * `adapter_config.json`: that of an expert named "default", which the original saves at the root.) Neither file,
 * or an `adapter_config.json` of another method, is a `ConfigError`.
 */
export async function loadXLoraConfig(dir: string, settings: ConfigSettings = {}): Promise<XLoraConfig> {
  const original = join(dir, XLORA_CONFIG_NAME);
  if (await exists(original)) {
    return XLoraConfig.fromOriginalJson(await readJson(original), { ...settings, source: settings.source ?? original });
  }
  const peft = join(dir, ADAPTER_CONFIG_FILE);
  if (!(await exists(peft))) {
    throw new ConfigError(
      [{ code: 'missing', path: [], message: `neither ${XLORA_CONFIG_NAME} (original xlora format) nor ${ADAPTER_CONFIG_FILE} (PEFT format) found in ${dir}; is this an X-LoRA checkpoint folder?` }],
      'X-LoRA config',
    );
  }
  const raw = await readJson(peft);
  const peftType = isPlainObject(raw) ? raw['peft_type'] : undefined;
  if (peftType !== 'XLORA') {
    throw new ConfigError(
      [{ code: 'invalid_value', path: ['peft_type'], message: `must be "XLORA" for an X-LoRA checkpoint, got ${JSON.stringify(peftType) ?? 'nothing'} (and there is no ${XLORA_CONFIG_NAME})` }],
      peft,
    );
  }
  return XLoraConfig.fromJson(raw, { ...settings, source: settings.source ?? peft });
}

/**
 * Writes the config atomically into `dir` (created if needed): `adapter_config.json` (`format` "peft", PEFT's
 * `json.dumps(indent=2, sort_keys=True)`) or `xlora_config.json` ("original", one line as the original writes
 * it). Returns the file written.
 */
export async function saveXLoraConfig(dir: string, config: XLoraConfig, format: FileFormat = 'peft'): Promise<string> {
  const text = format === 'peft' ? config.toJsonString() : config.toOriginalJson();
  await mkdir(dir, { recursive: true });
  const file = join(dir, format === 'peft' ? ADAPTER_CONFIG_FILE : XLORA_CONFIG_NAME);
  await writeFileAtomic(file, text);
  return file;
}
