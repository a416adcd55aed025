import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';

/** A `config.json` as read from disk. Unknown keys are kept so a saved config round-trips. */
export type RawConfig = Readonly<Record<string, unknown>>;

/**
 * Reads typed fields from a raw `config.json`, collecting every problem before throwing one `ConfigError`, so a
 * user sees all bad fields at once.
 */
export class ConfigReader {
  private readonly issues: ConfigIssue[] = [];
  constructor(
    private readonly raw: RawConfig,
    private readonly what: string,
  ) {}

  number(key: string, fallback: number, check: { integer?: boolean; min?: number; max?: number } = {}): number {
    const value = this.raw[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.fail(key, 'invalid_type', `must be a number, got ${JSON.stringify(value)}`, fallback);
    if (check.integer && !Number.isInteger(value)) return this.fail(key, 'invalid_value', `must be an integer, got ${value}`, fallback);
    if (check.min !== undefined && value < check.min) return this.fail(key, 'invalid_value', `must be >= ${check.min}, got ${value}`, fallback);
    if (check.max !== undefined && value > check.max) return this.fail(key, 'invalid_value', `must be <= ${check.max}, got ${value}`, fallback);
    return value;
  }

  /** A required positive integer (sizes, counts). */
  size(key: string, fallback?: number): number {
    if (this.raw[key] === undefined && fallback === undefined) return this.fail(key, 'missing', 'is required', 0);
    return this.number(key, fallback ?? 0, { integer: true, min: 1 });
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.raw[key] ?? fallback;
    if (typeof value !== 'boolean') return this.fail(key, 'invalid_type', `must be true or false, got ${JSON.stringify(value)}`, fallback);
    return value;
  }

  string(key: string, fallback: string): string {
    const value = this.raw[key] ?? fallback;
    if (typeof value !== 'string') return this.fail(key, 'invalid_type', `must be a string, got ${JSON.stringify(value)}`, fallback);
    return value;
  }

  /** An optional token id or list of ids (`eos_token_id` may be either). */
  tokenIds(key: string): number[] | undefined {
    const value = this.raw[key];
    if (value === undefined || value === null) return undefined;
    const list = Array.isArray(value) ? value : [value];
    if (!list.every((v) => Number.isInteger(v) && (v as number) >= 0)) {
      return this.fail(key, 'invalid_type', `must be a token id or a list of token ids, got ${JSON.stringify(value)}`, undefined);
    }
    return list as number[];
  }

  /** Records an issue on `key` unless `condition` holds (cross-field rules). */
  check(condition: boolean, key: string, message: string): void {
    if (!condition) this.fail(key, 'invalid_value', message, undefined);
  }

  /** Throws the collected issues, if any. */
  done(): void {
    if (this.issues.length) throw new ConfigError(this.issues, this.what);
  }

  private fail<T>(key: string, code: ConfigIssue['code'], message: string, fallback: T): T {
    this.issues.push({ code, path: [key], message });
    return fallback;
  }
}
