/**
 * The adapter-config codec shared by every method. A config class declares each field once (camelCase name,
 * snake_case `adapter_config.json` key, default, parser) and {@link defineConfig} derives from that table:
 *
 * - the TypeScript type of the fields (readonly) and of the camelCase constructor options;
 * - `new XConfig(options)`: validates every option, reports all problems at once as one `ConfigError` (paths in
 *   camelCase), and rejects unknown option names at compile time and at run time;
 * - `XConfig.fromJson(raw)`: reads PEFT's snake_case JSON; missing keys take defaults, unknown keys (written by a
 *   newer PEFT) give one warning and are ignored (listed in `unknownKeys`), `runtime_config` is ignored with a
 *   warning, bad values give one `ConfigError` (paths in snake_case);
 * - `toJson()` / `toJsonString()`: every field under its snake_case key plus `peft_type`, keys sorted at every level,
 *   formatted as PEFT's `json.dumps(indent=2, sort_keys=True)`;
 * - `with(changes)`: a validated copy (configs are immutable).
 *
 * The registry of config classes and the file helpers are in `config.ts`; this module imports no method, so the
 * method configs can import it without a cycle.
 */
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import { formatPythonJson, sortKeysDeep } from './python-json.js';
import { pythonRegexError } from './python-regex.js';

export type PeftType = 'LORA' | 'LOHA' | 'XLORA';

/** PEFT's `TaskType` values. */
export const TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** The PEFT release whose `adapter_config.json` format peft-ts writes (every key of that version's configs). */
export const PEFT_FORMAT_VERSION = '0.21.2';
/** peft-ts's own version (kept equal to package.json's by a test). */
export const PEFT_TS_VERSION = '0.1.0';
/**
 * What peft-ts writes as `peft_version` in configs it creates. PEFT writes its `__version__`, or
 * `"<version>@<git hash>"` for dev builds, and reads the field back with `peft_version.partition("@")[0]` parsed
 * as a PEP 440 version (OFT's compatibility check, 0.18+). So we write the PEFT format version we follow and name
 * the writer after the `@`, which stays parseable by PEFT: `"0.21.2@peft-ts-0.1.0"`. A config read from a file
 * keeps the `peft_version` it was written with.
 */
export const WRITER_PEFT_VERSION = `${PEFT_FORMAT_VERSION}@peft-ts-${PEFT_TS_VERSION}`;

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export type JsonObject = { readonly [key: string]: JsonValue };

export type Warn = (message: string) => void;
export const consoleWarn: Warn = (message) => console.warn(`peft-ts: ${message}`);

// ---------------------------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------------------------

/** A problem found by a parser; the field's path is prefixed by the codec. */
export interface FieldIssue {
  readonly code: ConfigIssue['code'];
  readonly message: string;
  readonly subpath?: readonly (string | number)[];
}
export type Report = (issue: FieldIssue) => void;

/** Returned by a parser after it reported an issue. */
export const INVALID: unique symbol = Symbol('invalid');
export type Parser<T> = (value: unknown, report: Report) => T | typeof INVALID;

function describe(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function invalidType(report: Report, expected: string, value: unknown, subpath?: readonly (string | number)[]): typeof INVALID {
  report({ code: 'invalid_type', message: `must be ${expected}, got ${describe(value)}`, ...(subpath ? { subpath } : {}) });
  return INVALID;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface NumberBounds {
  readonly integer?: boolean;
  readonly min?: number;
  readonly max?: number;
  readonly maxExclusive?: boolean;
}

function checkNumber(value: unknown, bounds: NumberBounds, report: Report, subpath?: readonly (string | number)[]): number | typeof INVALID {
  const sub = subpath ? { subpath } : {};
  if (typeof value !== 'number' || !Number.isFinite(value)) return invalidType(report, bounds.integer ? 'an integer' : 'a finite number', value, subpath);
  if (bounds.integer && !Number.isInteger(value)) {
    report({ code: 'invalid_value', message: `must be an integer, got ${value}`, ...sub });
    return INVALID;
  }
  if (bounds.min !== undefined && value < bounds.min) {
    report({ code: 'invalid_value', message: `must be >= ${bounds.min}, got ${value}`, ...sub });
    return INVALID;
  }
  if (bounds.max !== undefined && (bounds.maxExclusive ? value >= bounds.max : value > bounds.max)) {
    report({ code: 'invalid_value', message: `must be ${bounds.maxExclusive ? '<' : '<='} ${bounds.max}, got ${value}`, ...sub });
    return INVALID;
  }
  return value;
}

/** Sets an own property even for keys like `__proto__` (JSON.parse creates those as own properties too). */
function defineOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Deep-frozen copy of a JSON value, or `INVALID` (reported) for anything JSON cannot hold. */
function jsonCopy(value: unknown, report: Report, subpath: (string | number)[]): JsonValue | typeof INVALID {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : invalidType(report, 'a finite number', value, subpath);
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    let ok = true;
    value.forEach((item, i) => {
      const v = jsonCopy(item, report, [...subpath, i]);
      if (v === INVALID) ok = false;
      else out.push(v);
    });
    return ok ? Object.freeze(out) : INVALID;
  }
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    let ok = true;
    for (const [k, item] of Object.entries(value)) {
      const v = jsonCopy(item, report, [...subpath, k]);
      if (v === INVALID) ok = false;
      else defineOwn(out, k, v);
    }
    return ok ? Object.freeze(out) : INVALID;
  }
  return invalidType(report, 'a JSON value', value, subpath.length ? subpath : undefined);
}

/** Parsers for the value types of adapter configs. Arrays and objects come back frozen. */
export const p = {
  boolean: ((value, report) => (typeof value === 'boolean' ? value : invalidType(report, 'true or false', value))) as Parser<boolean>,

  string: ((value, report) => (typeof value === 'string' ? value : invalidType(report, 'a string', value))) as Parser<string>,

  integer(bounds: Omit<NumberBounds, 'integer'> = {}): Parser<number> {
    return (value, report) => checkNumber(value, { ...bounds, integer: true }, report);
  },

  number(bounds: Omit<NumberBounds, 'integer'> = {}): Parser<number> {
    return (value, report) => checkNumber(value, bounds, report);
  },

  oneOf<const T extends string>(values: readonly T[]): Parser<T> {
    return (value, report) => {
      if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
      report({ code: 'invalid_value', message: `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(value)}` });
      return INVALID;
    };
  },

  nullable<T>(inner: Parser<T>): Parser<T | null> {
    return (value, report) => (value === null ? null : inner(value, report));
  },

  stringList: ((value, report) => {
    if (!Array.isArray(value)) return invalidType(report, 'a list of strings', value);
    const bad = value.findIndex((v) => typeof v !== 'string');
    if (bad >= 0) return invalidType(report, 'a string', value[bad], [bad]);
    return Object.freeze([...(value as string[])]);
  }) as Parser<readonly string[]>,

  /** A regex string or a list of names; PEFT turns a list into a set, so duplicates are dropped (`dedupe`). */
  stringOrStringList(options: { dedupe: boolean }): Parser<string | readonly string[]> {
    return (value, report) => {
      if (typeof value === 'string') return value;
      if (!Array.isArray(value)) return invalidType(report, 'a string or a list of strings', value);
      const bad = value.findIndex((v) => typeof v !== 'string');
      if (bad >= 0) return invalidType(report, 'a string', value[bad], [bad]);
      const list = value as string[];
      return Object.freeze(options.dedupe ? [...new Set(list)] : [...list]);
    };
  },

  integerList(bounds: Omit<NumberBounds, 'integer'> = {}): Parser<readonly number[]> {
    return (value, report) => {
      if (!Array.isArray(value)) return invalidType(report, 'a list of integers', value);
      let ok = true;
      value.forEach((v, i) => {
        if (checkNumber(v, { ...bounds, integer: true }, report, [i]) === INVALID) ok = false;
      });
      return ok ? Object.freeze([...(value as number[])]) : INVALID;
    };
  },

  integerOrIntegerList(bounds: Omit<NumberBounds, 'integer'> = {}): Parser<number | readonly number[]> {
    const list = p.integerList(bounds);
    return (value, report) => (Array.isArray(value) ? list(value, report) : checkNumber(value, { ...bounds, integer: true }, report));
  },

  /** A `{ pattern: number }` map (rank_pattern, alpha_pattern); key order is kept. */
  numberRecord(bounds: NumberBounds = {}): Parser<Readonly<Record<string, number>>> {
    return (value, report) => {
      if (!isPlainObject(value)) return invalidType(report, 'an object mapping module-name patterns to numbers', value);
      let ok = true;
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(value)) {
        const n = checkNumber(v, bounds, report, [k]);
        if (n === INVALID) ok = false;
        else defineOwn(out, k, n);
      }
      return ok ? Object.freeze(out) : INVALID;
    };
  },

  json: ((value, report) => jsonCopy(value, report, [])) as Parser<JsonValue>,

  jsonObject: ((value, report) => (isPlainObject(value) ? (jsonCopy(value, report, []) as JsonObject | typeof INVALID) : invalidType(report, 'an object', value))) as Parser<JsonObject>,
} as const;

/** The frozen `{}` default of map fields. */
export const EMPTY_OBJECT: Readonly<Record<string, never>> = Object.freeze({});

// ---------------------------------------------------------------------------------------------------------------
// Fields and schemas
// ---------------------------------------------------------------------------------------------------------------

export interface Field<T> {
  /** The snake_case key in `adapter_config.json`. */
  readonly key: string;
  readonly default: T;
  readonly parse: Parser<T>;
  /** Written as a Python float (`0.0`, not `0`). */
  readonly float: boolean;
  /** A `null` in a file means "default" (fields PEFT types as Optional but never leaves null). */
  readonly nullMeansDefault: boolean;
}

export function field<T>(key: string, defaultValue: T, parse: Parser<T>, options: { float?: boolean; nullMeansDefault?: boolean } = {}): Field<T> {
  return Object.freeze({ key, default: defaultValue, parse, float: options.float ?? false, nullMeansDefault: options.nullMeansDefault ?? false });
}

export type Schema = { readonly [name: string]: Field<unknown> };
export type FieldValues<S extends Schema> = { readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };
export type ConfigOptions<S extends Schema> = { readonly [K in keyof S]?: FieldValues<S>[K] };
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Handed to a config's cross-field checks. */
export interface RefineContext<S extends Schema> {
  /** Records a problem on field `name` (its path is spelled the way the user spelled it). */
  issue(name: keyof S & string, code: ConfigIssue['code'], message: string, subpath?: readonly (string | number)[]): void;
  /** Field `name` as the user spells it: snake_case when read from JSON, camelCase for constructor options. */
  name(name: keyof S & string): string;
  warn(message: string): void;
}

export interface ConfigDefinition<P extends PeftType, S extends Schema> {
  readonly peftType: P;
  /** Class name for messages, e.g. `"LoraConfig"`. */
  readonly what: string;
  readonly fields: S;
  /** Cross-field checks (PEFT's `__post_init__`); may normalise values as PEFT does. */
  readonly refine?: (values: Mutable<FieldValues<S>>, ctx: RefineContext<S>) => void;
}

export interface ConfigSettings {
  /** Where warnings go (default `console.warn`). */
  readonly warn?: Warn;
  /** Named in error messages, e.g. the file a config was read from. */
  readonly source?: string;
}

/** What every config instance has besides its fields. */
export interface PeftConfigMethods<P extends PeftType, S extends Schema> {
  readonly peftType: P;
  /** Keys of the JSON this config was read from that this version does not know (they were ignored). */
  readonly unknownKeys: readonly string[];
  /** PEFT's `to_dict()` as written: snake_case keys plus `peft_type`, sorted at every level. */
  toJson(): JsonObject;
  /** The `adapter_config.json` text, formatted as PEFT's `json.dumps(indent=2, sort_keys=True)`. */
  toJsonString(): string;
  /** A validated copy with `changes` applied (an `undefined` value resets a field to its default). */
  with(changes: ConfigOptions<S>, settings?: ConfigSettings): this;
}

export type ConfigInstance<P extends PeftType, S extends Schema> = FieldValues<S> & PeftConfigMethods<P, S>;

export interface ConfigClass<P extends PeftType, S extends Schema> {
  new (options?: ConfigOptions<S>, settings?: ConfigSettings): ConfigInstance<P, S>;
  readonly peftType: P;
  readonly what: string;
  readonly fields: S;
  /** Reads PEFT's snake_case JSON (an `adapter_config.json` object). */
  fromJson<C extends abstract new (...args: never[]) => unknown>(this: C, raw: unknown, settings?: ConfigSettings): InstanceType<C>;
}

const FROM_JSON = Symbol('fromJson');
interface InternalSettings extends ConfigSettings {
  readonly [FROM_JSON]?: { readonly unknownKeys: readonly string[]; readonly issues: readonly ConfigIssue[] };
}

function whatOf(what: string, settings: ConfigSettings): string {
  return settings.source ? `${what} (${settings.source})` : what;
}

function camelToSnakeHint(name: string, fields: Schema): string {
  const byKey = Object.entries(fields).find(([, f]) => f.key === name);
  return byKey ? ` (did you mean ${byKey[0]}? options are camelCase)` : '';
}

/**
 * Builds a config class from its field table. Subclass the result to add methods; a subclass must not declare
 * instance fields of its own (use `declare` for type refinements).
 */
export function defineConfig<const P extends PeftType, const S extends Schema>(def: ConfigDefinition<P, S>): ConfigClass<P, S> {
  const names = Object.keys(def.fields) as (keyof S & string)[];
  const nameByKey = new Map(names.map((n) => [def.fields[n]!.key, n]));
  const floatKeys = new Set(names.filter((n) => def.fields[n]!.float).map((n) => def.fields[n]!.key));

  function build(input: Readonly<Record<string, unknown>>, naming: 'camel' | 'snake', settings: InternalSettings): Record<string, unknown> {
    const issues: ConfigIssue[] = [...(settings[FROM_JSON]?.issues ?? [])];
    const spell = (n: keyof S & string): string => (naming === 'snake' ? def.fields[n]!.key : n);
    if (naming === 'camel') {
      for (const k of Object.keys(input)) {
        if (!Object.hasOwn(def.fields, k)) {
          issues.push({ code: 'unrecognized_key', path: [k], message: `is not a ${def.what} option${camelToSnakeHint(k, def.fields)}` });
        }
      }
    }
    const values: Record<string, unknown> = {};
    for (const n of names) {
      const f = def.fields[n]!;
      const raw = Object.hasOwn(input, n) ? input[n] : undefined;
      if (raw === undefined || (raw === null && f.nullMeansDefault)) {
        values[n] = f.default;
        continue;
      }
      const parsed = f.parse(raw, (issue) => issues.push({ code: issue.code, path: [spell(n), ...(issue.subpath ?? [])], message: issue.message }));
      values[n] = parsed === INVALID ? f.default : parsed;
    }
    def.refine?.(values as Mutable<FieldValues<S>>, {
      issue: (n, code, message, subpath = []) => issues.push({ code, path: [spell(n), ...subpath], message }),
      name: spell,
      warn: settings.warn ?? consoleWarn,
    });
    if (issues.length > 0) throw new ConfigError(issues, whatOf(def.what, settings));
    return values;
  }

  class Config {
    static readonly peftType = def.peftType;
    static readonly what = def.what;
    static readonly fields = def.fields;

    static fromJson(this: new (options: Record<string, unknown>, settings: InternalSettings) => unknown, raw: unknown, settings: ConfigSettings = {}): unknown {
      const warn = settings.warn ?? consoleWarn;
      if (!isPlainObject(raw)) {
        throw new ConfigError([{ code: 'invalid_type', path: [], message: `must be a JSON object, got ${describe(raw)}` }], whatOf(def.what, settings));
      }
      const values: Record<string, unknown> = {};
      const unknownKeys: string[] = [];
      const issues: ConfigIssue[] = [];
      for (const [key, value] of Object.entries(raw)) {
        if (key === 'peft_type') {
          if (value !== def.peftType) issues.push({ code: 'invalid_value', path: ['peft_type'], message: `must be "${def.peftType}" for ${def.what}, got ${describe(value)}` });
        } else if (key === 'runtime_config') {
          warn('The configuration file contains a `runtime_config` key. This is ignored. Runtime configurations are only valid at runtime.');
        } else {
          const name = nameByKey.get(key);
          if (name === undefined) unknownKeys.push(key);
          else values[name] = value;
        }
      }
      if (unknownKeys.length > 0) {
        unknownKeys.sort();
        warn(
          `Unexpected keys ${JSON.stringify(unknownKeys)} for ${whatOf(def.what, settings)}; they are ignored. The file was probably ` +
            `written by a newer PEFT version (peft-ts follows PEFT ${PEFT_FORMAT_VERSION}).`,
        );
      }
      return new this(values, { ...settings, [FROM_JSON]: { unknownKeys, issues } });
    }

    readonly peftType: P;
    readonly unknownKeys: readonly string[];

    constructor(options: Readonly<Record<string, unknown>> = {}, settings: InternalSettings = {}) {
      const fromJson = settings[FROM_JSON];
      const values = build(options, fromJson ? 'snake' : 'camel', settings);
      this.peftType = def.peftType;
      this.unknownKeys = Object.freeze([...(fromJson?.unknownKeys ?? [])]);
      Object.assign(this, values);
    }

    private fieldValue(n: string): unknown {
      return (this as unknown as Record<string, unknown>)[n];
    }

    toJson(): JsonObject {
      const out: Record<string, JsonValue> = { peft_type: def.peftType };
      for (const n of names) out[def.fields[n]!.key] = this.fieldValue(n) as JsonValue;
      return sortKeysDeep(out) as JsonObject;
    }

    toJsonString(): string {
      return formatPythonJson(this.toJson(), floatKeys);
    }

    with(changes: Readonly<Record<string, unknown>>, settings: ConfigSettings = {}): this {
      const current = Object.fromEntries(names.map((n) => [n, this.fieldValue(n)]));
      const Ctor = this.constructor as new (options: Record<string, unknown>, settings: ConfigSettings) => this;
      return new Ctor({ ...current, ...changes }, settings);
    }
  }
  return Config as unknown as ConfigClass<P, S>;
}

// ---------------------------------------------------------------------------------------------------------------
// Fields every PEFT config has, and those LoRA and LoHa share
// ---------------------------------------------------------------------------------------------------------------

/** `PeftConfigMixin` / `PeftConfig` fields (`peft_type` is the class itself). */
export const peftConfigFields = {
  taskType: field('task_type', null, p.nullable(p.oneOf(TASK_TYPES))),
  autoMapping: field('auto_mapping', null, p.nullable(p.jsonObject)),
  peftVersion: field('peft_version', WRITER_PEFT_VERSION, p.string, { nullMeansDefault: true }),
  baseModelNameOrPath: field('base_model_name_or_path', null, p.nullable(p.string)),
  revision: field('revision', null, p.nullable(p.string)),
  inferenceMode: field('inference_mode', false, p.boolean),
} as const;

/** Fields of the target-selection grammar (`matching.ts`) and the per-module patterns, shared by LoRA and LoHa. */
export const tunerFields = {
  targetModules: field('target_modules', null, p.nullable(p.stringOrStringList({ dedupe: true }))),
  excludeModules: field('exclude_modules', null, p.nullable(p.stringOrStringList({ dedupe: true }))),
  layersToTransform: field('layers_to_transform', null, p.nullable(p.integerOrIntegerList({ min: 0 }))),
  layersPattern: field('layers_pattern', null, p.nullable(p.stringOrStringList({ dedupe: false }))),
  rankPattern: field('rank_pattern', EMPTY_OBJECT as Readonly<Record<string, number>>, p.numberRecord({ integer: true, min: 1 }), { nullMeansDefault: true }),
  alphaPattern: field('alpha_pattern', EMPTY_OBJECT as Readonly<Record<string, number>>, p.numberRecord(), { nullMeansDefault: true }),
  modulesToSave: field('modules_to_save', null, p.nullable(p.stringList)),
} as const;

type TunerFieldValues = Mutable<FieldValues<typeof tunerFields>>;

/**
 * The `__post_init__` checks on the shared fields, plus a check that every Python regex among them can run here.
 * `stringTargetsWithLayers`: LoRA rejects `layers_to_transform`/`layers_pattern` next to a regex `target_modules`;
 * LoHa ignores them (we warn).
 */
export function refineTunerFields<S extends typeof tunerFields>(
  values: TunerFieldValues,
  ctx: RefineContext<S>,
  options: { stringTargetsWithLayers: 'error' | 'warn' },
): void {
  const regex = (name: keyof typeof tunerFields & string, pattern: string, embedded: boolean, subpath?: readonly (string | number)[]): void => {
    const error = pythonRegexError(pattern, { embedded });
    if (error !== undefined) ctx.issue(name, 'invalid_value', error, subpath);
  };
  if (typeof values.targetModules === 'string') regex('targetModules', values.targetModules, false);
  if (typeof values.excludeModules === 'string') regex('excludeModules', values.excludeModules, false);
  for (const k of Object.keys(values.rankPattern)) regex('rankPattern', k, true, [k]);
  for (const k of Object.keys(values.alphaPattern)) regex('alphaPattern', k, true, [k]);
  if (typeof values.layersPattern === 'string') regex('layersPattern', values.layersPattern, true);
  else values.layersPattern?.forEach((lp, i) => regex('layersPattern', lp, true, [i]));
  values.modulesToSave?.forEach((m, i) => regex('modulesToSave', m, true, [i]));

  if (values.layersPattern !== null && values.layersPattern.length > 0 && values.layersToTransform === null) {
    ctx.issue('layersPattern', 'invalid_value', `When ${ctx.name('layersPattern')} is specified, ${ctx.name('layersToTransform')} must also be specified.`);
  }
  if (typeof values.targetModules === 'string') {
    for (const n of ['layersToTransform', 'layersPattern'] as const) {
      if (values[n] === null) continue;
      if (options.stringTargetsWithLayers === 'error') {
        ctx.issue(n, 'invalid_value', `cannot be used when ${ctx.name('targetModules')} is a string (a regex); use a list of module names.`);
      } else {
        ctx.warn(`${ctx.name(n)} is ignored because ${ctx.name('targetModules')} is a string (a regex).`);
      }
    }
  }
}
