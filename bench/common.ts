// Shared benchmark harness: timing helpers, child processes (one per configuration, so peak RSS is that
// configuration's own), the PyTorch side (tools/parity/bench_torch.py in tools/parity/.venv), and table printing.
// Benchmarks are scripts, never tests.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (bench/..). */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
/** The worker script that runs one TypeScript configuration (bench/worker.ts). */
export const workerScript = join(repoRoot, 'bench', 'worker.ts');
/** The PyTorch side and its interpreter (tools/parity/.venv, or PEFT_TS_BENCH_PYTHON). */
export const torchScript = join(repoRoot, 'tools', 'parity', 'bench_torch.py');
export const torchPython = process.env['PEFT_TS_BENCH_PYTHON'] || join(repoRoot, 'tools', 'parity', '.venv', 'bin', 'python');

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export async function timeMsAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Runs `fn` `warmup` times untimed, then `reps` times timed; returns the times in ms. Synchronous kernels (wasm,
 * cpu) finish inside `fn` when it reads its result back, which every bench function does.
 */
export async function repeat(fn: () => unknown, reps: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) out.push(await timeMsAsync(async () => fn()));
  return out;
}

/** This process's peak resident set size in MB (`maxRSS` is in KiB). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** The 1/5/15-minute load averages, formatted. */
export function loadAverage(): string {
  return loadavg().map((x) => x.toFixed(2)).join(' / ');
}

/** What a child reports: its measurements (numbers, strings) plus peakRssMb; or why it failed. */
export type Measurement = Record<string, number | string | boolean | number[]> & { peakRssMb?: number };
export type ChildResult = { ok: true; data: Measurement; wallS: number } | { ok: false; error: string; wallS: number };

/** Last non-empty stdout line that parses as a JSON object. */
function lastJson(stdout: string): Measurement | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      return JSON.parse(t) as Measurement;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Runs a command, returns its last JSON line; stderr is kept for errors. Kills only the child it started. */
export function runJson(command: string, args: readonly string[], options: { timeoutS: number; env?: NodeJS.ProcessEnv; verbose?: boolean }): Promise<ChildResult> {
  const t0 = performance.now();
  return new Promise((resolveResult) => {
    const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (options.verbose) process.stderr.write(d);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutS * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolveResult({ ok: false, error: e.message, wallS: (performance.now() - t0) / 1000 });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallS = (performance.now() - t0) / 1000;
      const data = lastJson(stdout);
      if (code === 0 && data) resolveResult({ ok: true, data, wallS });
      else {
        const why = timedOut ? `timed out after ${options.timeoutS} s` : `exit ${code ?? signal}`;
        const tail = stderr.trim().split('\n').slice(-6).join(' | ');
        resolveResult({ ok: false, error: `${why}${tail ? `: ${tail}` : ''}`, wallS });
      }
    });
  });
}

/** Runs one TypeScript configuration (`bench/worker.ts <case> <json>`) in its own Node process. */
export function runOurs(caseName: string, args: object, options: { timeoutS?: number; threads?: number; verbose?: boolean; backend?: string } = {}): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { PEFT_TS_QUIET: '1' };
  if (options.threads !== undefined) {
    env['PEFT_TS_WASM_THREADS'] = String(options.threads);
    env['PEFT_TS_ORT_THREADS'] = String(options.threads);
  }
  if (options.backend !== undefined) env['PEFT_TS_BACKEND'] = options.backend;
  return runJson(process.execPath, ['--import', 'tsx', workerScript, caseName, JSON.stringify(args)], { timeoutS: options.timeoutS ?? 600, env, verbose: options.verbose });
}

/** Whether the PyTorch venv is there. */
export function torchAvailable(): boolean {
  return existsSync(torchPython) && existsSync(torchScript);
}

/** Runs one PyTorch configuration (`bench_torch.py <section> <json>`); `undefined` when the venv is absent. */
export async function runTorch(section: string, args: object, options: { timeoutS?: number; threads?: number; verbose?: boolean } = {}): Promise<ChildResult | undefined> {
  if (!torchAvailable()) return undefined;
  const env: NodeJS.ProcessEnv = { OMP_NUM_THREADS: String(options.threads ?? 2), MKL_NUM_THREADS: String(options.threads ?? 2), TOKENIZERS_PARALLELISM: 'false' };
  return runJson(torchPython, [torchScript, section, JSON.stringify({ threads: options.threads ?? 2, ...args })], { timeoutS: options.timeoutS ?? 600, env, verbose: options.verbose });
}

/** A cell: a number with `digits` decimals, or a placeholder when missing. */
export function fmt(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** ours / theirs as "0.42x", or a placeholder. */
export function ratio(ours: number | undefined, theirs: number | undefined): string {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs === 0) return '—';
  return `${(ours / theirs).toFixed(2)}x`;
}

/** A number field of a child's result, if it succeeded. */
export function num(result: ChildResult | undefined, key: string): number | undefined {
  if (!result?.ok) return undefined;
  const v = result.data[key];
  return typeof v === 'number' ? v : undefined;
}

/** Prints a Markdown table (columns in the key order of the first row), with a title and notes. */
export function printTable(title: string, rows: readonly Record<string, string>[], notes: readonly string[] = []): void {
  console.log(`\n### ${title}\n`);
  if (rows.length === 0) {
    console.log('(no rows)');
  } else {
    const cols = Object.keys(rows[0]!);
    const numeric = cols.map((c) => rows.every((r) => /^[-—0-9.,x ]*$/.test(r[c] ?? '') || (r[c] ?? '').startsWith('—')));
    console.log(`| ${cols.join(' | ')} |`);
    console.log(`|${cols.map((_, i) => (numeric[i] ? '---:' : '---')).join('|')}|`);
    for (const r of rows) console.log(`| ${cols.map((c) => r[c] ?? '').join(' | ')} |`);
  }
  for (const n of notes) console.log(`- ${n}`);
}

/** One line per failed child, for the notes under a table. */
export function failures(results: Record<string, ChildResult | undefined>): string[] {
  return Object.entries(results).flatMap(([name, r]) => (r && !r.ok ? [`${name} failed: ${r.error}`] : []));
}
