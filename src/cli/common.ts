// Shared pieces of the CLI: the I/O the commands write to, option parsers (commander's argParser functions, which
// throw InvalidArgumentError so the message names the option), backend start-up, and small file helpers.
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { setBackend } from '../engine/index.js';
import type { BackendName } from '../engine/index.js';
import { backendNames } from '../engine/index.js';

/** Where a command writes: stdout for results, stderr for progress and diagnostics. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Options every command receives from the root program. */
export interface GlobalOptions {
  verbose?: boolean;
  backend?: string;
}

/** `--x N`: an integer >= `min`. */
export function intOption(min: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}".`);
    return n;
  };
}

/** `--x F`: a finite number, optionally > 0. */
export function numberOption(options: { positive?: boolean; min?: number; max?: number } = {}): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}".`);
    if (options.positive && !(n > 0)) throw new InvalidArgumentError(`expected a number > 0, got "${value}".`);
    if (options.min !== undefined && n < options.min) throw new InvalidArgumentError(`expected a number >= ${options.min}, got "${value}".`);
    if (options.max !== undefined && n > options.max) throw new InvalidArgumentError(`expected a number <= ${options.max}, got "${value}".`);
    return n;
  };
}

/** `--x a,b,c`: a non-empty list of non-empty names. */
export function listOption(value: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list of names.');
  return items;
}

/** `--layer N|mean`. */
export function layerOption(value: string): number | 'mean' {
  if (value === 'mean') return 'mean';
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError(`expected a layer index or "mean", got "${value}".`);
  return n;
}

/** `--backend NAME`. */
export function backendOption(value: string): BackendName {
  const name = value.trim().toLowerCase();
  if (!(backendNames as readonly string[]).includes(name)) throw new InvalidArgumentError(`expected one of ${backendNames.join(', ')}, got "${value}".`);
  return name as BackendName;
}

/** Starts the compute backend; its greeting is printed only with `--verbose`. */
export async function startBackend(global: GlobalOptions): Promise<void> {
  if (!global.verbose) process.env['PEFT_TS_QUIET'] = '1';
  await setBackend(global.backend as BackendName | undefined);
}

/** Files a tokenizer may consist of (copied next to merged models). */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'vocab.txt',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
] as const;

export function hasTokenizer(dir: string): boolean {
  return existsSync(join(dir, 'tokenizer.json')) || existsSync(join(dir, 'tokenizer_config.json'));
}

/** The tokenizer folder: `explicit`, else the first of `candidates` that holds tokenizer files, else the last candidate. */
export function tokenizerDir(explicit: string | undefined, candidates: readonly (string | undefined)[]): string {
  if (explicit !== undefined) return explicit;
  const dirs = candidates.filter((d): d is string => d !== undefined);
  return dirs.find(hasTokenizer) ?? dirs.at(-1)!;
}

/** Copies the files among `names` that exist in `from` into `to`; returns the names copied. */
export async function copyPresent(from: string, to: string, names: readonly string[]): Promise<string[]> {
  await mkdir(to, { recursive: true });
  const copied: string[] = [];
  for (const name of names) {
    if (!existsSync(join(from, name))) continue;
    await copyFile(join(from, name), join(to, name));
    copied.push(name);
  }
  return copied;
}

/** `1234567` -> `1,234,567`. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** A usage problem found while a command runs (after parsing): printed as one line, exit code 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}
