// Multi-threaded wasm in Node (src/engine/wasm.ts, wasm-node-threads.ts). The thread count is fixed when the
// backend starts, once per process, so each configuration runs in a child process
// (fixtures/wasm-threads-child.ts): results must be bit-identical to single-threaded ones, and the child must
// exit by itself promptly (no worker keeping the event loop alive).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { maxWasmThreads } from '../../src/engine/wasm.js';

const child = fileURLToPath(new URL('./fixtures/wasm-threads-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Digest {
  hash: string;
  head: number[];
  sum: number;
}

interface ChildReport {
  threads: number;
  listeners: number;
  results: Record<string, Digest>;
  doneAt: number;
}

interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  exitedAt: number;
}

function runChild(env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
    const proc = spawn(process.execPath, ['--import', 'tsx', child], { cwd: root, env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`child did not exit within ${timeoutMs} ms (hanging workers?)\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    proc.on('error', reject);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, exitedAt: Date.now() });
    });
  });
}

function report(run: ChildRun): ChildReport {
  assert.equal(run.code, 0, `child failed: ${run.stderr}`);
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as ChildReport;
}

describe('wasm threads in Node', () => {
  test('2 threads start, give bit-identical results to 1 thread, and the process exits on its own', async () => {
    const [one, two] = await Promise.all([runChild({ PEFT_TS_WASM_THREADS: '1' }), runChild({ PEFT_TS_WASM_THREADS: '2' })]);
    const r1 = report(one);
    const r2 = report(two);
    assert.equal(r1.threads, 1);
    assert.equal(r2.threads, 2, 'XNNPACK runs on 2 threads');
    assert.deepEqual(Object.keys(r2.results), Object.keys(r1.results));
    for (const [name, d1] of Object.entries(r1.results)) {
      assert.deepEqual(r2.results[name], d1, `${name}: 2 threads vs 1`);
    }
    // Emscripten's process-wide rethrowing listeners were removed after start.
    assert.equal(r1.listeners, 0);
    assert.equal(r2.listeners, 0);
    // Nothing keeps the event loop alive after the work (the child does not call process.exit).
    assert.ok(two.exitedAt - r2.doneAt < 5_000, `exited ${two.exitedAt - r2.doneAt} ms after finishing`);
  });

  test('the default is one thread per CPU, at most 8', async () => {
    const r = report(await runChild({ PEFT_TS_WASM_THREADS: undefined }));
    const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    assert.equal(r.threads, Math.min(cpus, maxWasmThreads));
  });

  test('an invalid PEFT_TS_WASM_THREADS is an error naming the variable', async () => {
    const run = await runChild({ PEFT_TS_WASM_THREADS: 'two' });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /PEFT_TS_WASM_THREADS="two"/);
  });
});
