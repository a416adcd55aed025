/**
 * JSON written the way Python writes it: PEFT saves `adapter_config.json` with
 * `json.dumps(config, indent=2, sort_keys=True)`, and matching its bytes keeps files diffable against PEFT's.
 */
import type { JsonObject, JsonValue } from './config-schema.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets an own property even for keys like `__proto__`. */
function defineOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A copy of `value` with object keys sorted (code-point order) at every level, as `sort_keys=True` writes them. */
export function sortKeysDeep(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const k of Object.keys(value).sort(compareCodePoints)) defineOwn(out, k, sortKeysDeep((value as JsonObject)[k]!));
    return out;
  }
  return value as JsonValue;
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const exp = Number(expText);
  const digits = mantissa.replace('.', '');
  const sign = x < 0 ? '-' : '';
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    return `${sign}${intPart}.${frac || '0'}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/** Python's `json.dumps` string encoding with `ensure_ascii=True`. */
function pythonJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

export interface PythonJsonOptions {
  /** `indent=` (undefined: one line with `", "` / `": "`, `json.dump`'s defaults). */
  indent?: number;
  /** `sort_keys=True`: keys in code-point order at every level (except under `keepOrderKeys`). */
  sortKeys?: boolean;
  /** JSON has one number type: numbers under these top-level keys are written as floats (`0.0`). */
  floatKeys?: ReadonlySet<string>;
  /** Top-level keys whose object value keeps its insertion order even with `sortKeys` (X-LoRA's `adapters`). */
  keepOrderKeys?: ReadonlySet<string>;
}

/**
 * `json.dumps(value, ...)` as Python writes it: ASCII-only strings, integers without a fraction, floats via
 * `repr`. The one Python-JSON writer of peft-ts (adapter configs, X-LoRA configs, scalings-log mappings).
 */
export function pythonJsonDumps(value: JsonValue, options: PythonJsonOptions = {}): string {
  const floatKeys = options.floatKeys ?? new Set<string>();
  const keepOrderKeys = options.keepOrderKeys ?? new Set<string>();
  const fmt = (v: JsonValue, depth: number, isFloat: boolean, keepOrder: boolean): string => {
    if (v === null) return 'null';
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'number') return !isFloat && Number.isInteger(v) ? BigInt(v).toString() : pythonFloatRepr(v);
    if (typeof v === 'string') return pythonJsonString(v);
    const items: string[] = [];
    const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
    if (Array.isArray(v)) {
      for (const item of v as readonly JsonValue[]) items.push(fmt(item, depth + 1, isFloat, false));
    } else {
      const obj = v as JsonObject;
      const keys = Object.keys(obj);
      if (options.sortKeys && !keepOrder) keys.sort(compareCodePoints);
      const top = depth === 0;
      for (const k of keys) {
        items.push(`${pythonJsonString(k)}: ${fmt(obj[k]!, depth + 1, isFloat || (top && floatKeys.has(k)), top && keepOrderKeys.has(k))}`);
      }
    }
    if (items.length === 0) return open + close;
    if (options.indent === undefined) return open + items.join(', ') + close;
    const pad = ' '.repeat(options.indent * (depth + 1));
    return `${open}\n${items.map((item) => pad + item).join(',\n')}\n${' '.repeat(options.indent * depth)}${close}`;
  };
  return fmt(value, 0, false, false);
}

/** `json.dumps(value, indent=2, sort_keys=True)`, as PEFT writes `adapter_config.json`. */
export function formatPythonJson(value: JsonValue, floatKeys: ReadonlySet<string> = new Set()): string {
  return pythonJsonDumps(value, { indent: 2, sortKeys: true, floatKeys });
}
