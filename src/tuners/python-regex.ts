/**
 * Python `re` patterns run as JavaScript RegExps. PEFT treats several user strings as Python regexes (a string
 * `target_modules`/`exclude_modules`, `rank_pattern`/`alpha_pattern` keys, `layers_pattern` entries, and
 * `modules_to_save` entries in the matching guard) and splices some of them into f-string templates; this module
 * translates the user's part once and compiles the same templates. The matching itself lives in `matching.ts`.
 */
import { ConfigError } from '../errors.js';

/**
 * A Python `re` pattern rewritten for JavaScript (no `u` flag, so escapes stay as lenient as Python's).
 *
 * Translated: `(?P<name>...)` → `(?<name>...)`, `(?P=name)` → `\k<name>`, `(?#comment)` (dropped), `\A` → `^`,
 * `\Z` → `$`, `\a` → `\x07`, `x{,n}` → `x{0,n}`, a `]` first in a character class (literal in Python, an empty
 * class in JS) → `\]`, and leading global flags `(?i)`, `(?s)`, `(?m)` (JS flags) and `(?a)`, `(?u)` (no effect on
 * ASCII module names).
 *
 * Rejected (JavaScript has no equivalent, or Python itself rejects it): scoped flags `(?i:...)`, `(?x)` verbose
 * mode, `(?L)`, conditionals `(?(1)a|b)`, atomic groups `(?>...)`, possessive quantifiers `a*+`, `\U`, `\N{...}`,
 * unknown letter escapes such as `\q`, and `(?<name>...)` (JS syntax that Python's `re` refuses).
 *
 * Differences left alone because module names never contain them: Python's `$` also matches before a trailing
 * newline, and `\d`/`\w` match non-ASCII digits/letters in Python.
 */
export interface TranslatedRegex {
  readonly source: string;
  readonly flags: string;
}

/** Thrown by {@link translatePythonRegex}; callers turn it into a `ConfigError` issue with the field's path. */
export class PythonRegexSyntaxError extends Error {}

const KNOWN_LETTER_ESCAPES = new Set(['b', 'B', 'd', 'D', 's', 'S', 'w', 'W', 'f', 'n', 'r', 't', 'v']);

/**
 * Translates a Python regex to a JavaScript one. `embedded` patterns are spliced into a larger template (as PEFT
 * does with f-strings), where Python 3.11 refuses global flags.
 */
export function translatePythonRegex(pattern: string, options: { embedded?: boolean } = {}): TranslatedRegex {
  let out = '';
  const flags = new Set<string>();
  let i = 0;
  let inClass = false;
  const n = pattern.length;
  const fail = (message: string): never => {
    throw new PythonRegexSyntaxError(`${message} (at position ${i} of ${JSON.stringify(pattern)})`);
  };
  while (i < n) {
    const c = pattern[i]!;
    if (c === '\\') {
      if (i + 1 >= n) fail('pattern ends with a backslash');
      const d = pattern[i + 1]!;
      if (/[A-Za-z]/.test(d)) {
        if (d === 'A' || d === 'Z') {
          if (inClass) fail(`bad escape \\${d} in a character class`);
          out += d === 'A' ? '^' : '$';
        } else if (d === 'a') out += '\\x07';
        else if (d === 'x') {
          if (!/^[0-9A-Fa-f]{2}$/.test(pattern.slice(i + 2, i + 4))) fail('\\x needs two hex digits');
          out += pattern.slice(i, i + 4);
          i += 2;
        } else if (d === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(pattern.slice(i + 2, i + 6))) fail('\\u needs four hex digits');
          out += pattern.slice(i, i + 6);
          i += 4;
        } else if (KNOWN_LETTER_ESCAPES.has(d)) out += `\\${d}`;
        else if (d === 'U' || d === 'N') fail(`\\${d} escapes are not supported by peft-ts (JavaScript has no equivalent)`);
        else fail(`bad escape \\${d}`);
      } else {
        // digits (backreferences / octal) and escaped punctuation mean the same in both dialects
        out += `\\${d}`;
      }
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += '[';
      i++;
      if (pattern[i] === '^') {
        out += '^';
        i++;
      }
      if (pattern[i] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2);
      const named = /^P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
      const backref = /^P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest);
      const globalFlags = /^([aiLmsux]+)\)/.exec(rest);
      if (named) {
        out += `(?<${named[1]!}>`;
        i += 2 + named[0].length;
      } else if (backref) {
        out += `\\k<${backref[1]!}>`;
        i += 2 + backref[0].length;
      } else if (rest.startsWith('#')) {
        const end = pattern.indexOf(')', i);
        if (end < 0) fail('missing ) after comment');
        i = end + 1;
      } else if (/^(?::|=|!|<=|<!)/.test(rest)) {
        out += '(?';
        i += 2;
      } else if (globalFlags) {
        if (options.embedded || out !== '') fail('global flags not at the start of the expression');
        for (const f of globalFlags[1]!) {
          if (f === 'i' || f === 'm' || f === 's') flags.add(f);
          else if (f === 'x' || f === 'L') fail(`the (?${f}) flag is not supported by peft-ts`);
          // a, u: ASCII/Unicode matching, no effect on module names
        }
        i += 2 + globalFlags[0].length;
      } else if (/^[aiLmsux-]+:/.test(rest)) {
        fail('scoped inline flags such as (?i:...) are not supported by peft-ts (JavaScript has no equivalent)');
      } else if (rest.startsWith('<')) {
        fail('(?<name>...) is not Python syntax; write (?P<name>...)');
      } else {
        fail(`unsupported group extension (?${rest.slice(0, 1)} (conditionals and atomic groups have no JavaScript equivalent)`);
      }
      continue;
    }
    if (c === '{') {
      const upTo = /^\{,(\d+)\}/.exec(pattern.slice(i));
      if (upTo) {
        out += `{0,${upTo[1]!}}`;
        i += upTo[0].length;
        continue;
      }
    }
    if (c === '+' && i > 0 && /[*+?}]/.test(pattern[i - 1]!) && pattern[i - 2] !== '\\') {
      fail('possessive quantifiers are not supported by peft-ts (JavaScript has no equivalent)');
    }
    out += c;
    i++;
  }
  if (inClass) fail('unterminated character set');
  const result = { source: out, flags: [...flags].sort().join('') };
  try {
    new RegExp(result.source, result.flags);
  } catch (e) {
    fail(`not a valid regular expression: ${(e as Error).message}`);
  }
  return result;
}

/** `undefined` if `pattern` is a Python regex peft-ts can run, else why not (for config validation). */
export function pythonRegexError(pattern: string, options: { embedded?: boolean } = {}): string | undefined {
  try {
    translatePythonRegex(pattern, options);
    return undefined;
  } catch (e) {
    if (e instanceof PythonRegexSyntaxError) return e.message;
    throw e;
  }
}

const regexCache = new Map<string, RegExp>();

/**
 * Compiles `before + pattern + after` as Python would compile the f-string PEFT builds, anchored at the start
 * (`re.match`) or at both ends (`re.fullmatch`). `pattern` is the user's part; the template parts are written
 * in the common subset of both dialects.
 */
export function compilePythonTemplate(mode: 'match' | 'fullmatch', before: string, pattern: string, after: string, path: readonly (string | number)[]): RegExp {
  const cacheKey = `${mode}\u0000${before}\u0000${pattern}\u0000${after}`;
  let re = regexCache.get(cacheKey);
  if (!re) {
    const embedded = before !== '' || after !== '';
    let t: TranslatedRegex;
    try {
      t = translatePythonRegex(pattern, { embedded });
    } catch (e) {
      if (!(e instanceof PythonRegexSyntaxError)) throw e;
      throw new ConfigError([{ code: 'invalid_value', path, message: e.message }], 'adapter config');
    }
    re = new RegExp(`^(?:${before}${t.source}${after})${mode === 'fullmatch' ? '$' : ''}`, t.flags);
    if (regexCache.size > 4096) regexCache.clear();
    regexCache.set(cacheKey, re);
  }
  return re;
}
