// Setup of TF.js's wasm backend (tfjs-backend-wasm 4.22) before it starts: SIMD, and multi-threaded XNNPACK in
// Node, which TF.js itself turns off there (WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE, tfjs #3830).
//
// Threads in Node work with four fixes (wasm-node-threads.ts), each the reason an earlier attempt did not:
//  1. The threaded Emscripten module starts its pthread pool (8 workers, PTHREAD_POOL_SIZE) with
//     `new Worker(blobUrl)` and sends each worker the main script as a Blob. Node's worker_threads cannot
//     start from a blob: URL, so while the backend initialises `Worker` is a worker_threads.Worker subclass
//     that boots from an eval'd bootstrap, reads the Blob texts (asynchronously) and hands them to the worker
//     to evaluate, with the globals the bundle's code expects there (require$$0 fs, require$$1 path,
//     require$$3 perf_hooks, require$$4 os, commonjsGlobal, tslib's __values/__read/__spreadArray).
//  2. Once a worker is loaded, messages to it must go out synchronously: pthreadpool_create posts "run" to
//     each worker and then blocks the main thread in a futex wait until they check in, so a message deferred
//     to a promise callback is never sent and the start deadlocks. (Blocking the main thread is otherwise
//     harmless: workers receive messages on their own event loops.)
//  3. XNNPACK's thread count is capped in the module's C++ (init_with_threads_count) at
//     min(requested, 8, emscripten_num_logical_cores() / 2), the last read once by a static constructor from
//     os.cpus().length. On a 2-core machine that cap is 1, which is why setThreadsCount(2) with the Worker fix
//     alone still gave getThreadsCount() === 1 and one busy core. While the module starts, os.cpus() reports
//     2 x the requested threads, and is restored right after.
//  4. Emscripten ref()s a worker while a pthread runs on it, and XNNPACK's pool threads never exit, so the
//     process would never end. The workers stay unref'd: a pool thread only computes while the main thread is
//     blocked in a kernel waiting for it, so exiting never cuts work short.
// The module also adds process-wide `uncaughtException` / `unhandledRejection` listeners that rethrow (single-
// and multi-threaded builds alike); they are removed after start so Node's (and node:test's) handling stays.
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import type { KernelBackend } from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../errors.js';
import { tf } from './tf.js';

/** Environment variable overriding the number of wasm threads (`PEFT_TS_WASM_THREADS=1` for one). */
export const wasmThreadsEnvVar = 'PEFT_TS_WASM_THREADS';

/** tfjs-backend-wasm 4.22 never runs XNNPACK on more than 8 threads (its pre-created pthread pool). */
export const maxWasmThreads = 8;

export interface WasmOptions {
  /**
   * Threads for XNNPACK kernels (matmul, conv). Default: `PEFT_TS_WASM_THREADS`, else the number of CPUs
   * (at most 8). In browsers the single-threaded build is used. Fixed once the wasm backend has started.
   */
  threads?: number;
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

let requestedThreads = 1;
/** Threads asked for explicitly through configureWasm; later calls without options (setBackend's) keep it. */
let explicitThreads: number | undefined;
let startedThreads: number | undefined;
let factoryWrapped = false;

async function cpuCount(): Promise<number> {
  if (isNode) {
    const os = await import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  return typeof navigator !== 'undefined' ? navigator.hardwareConcurrency : 1;
}

async function resolveThreads(option: number | undefined): Promise<number> {
  let threads = option;
  let source = 'threads';
  if (threads === undefined && isNode) {
    const env = process.env[wasmThreadsEnvVar]?.trim();
    if (env) {
      threads = Number(env);
      source = `${wasmThreadsEnvVar}="${env}"`;
    }
  }
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    throw new BackendUnavailableError('wasm', `${source === 'threads' ? `threads=${threads}` : source} is not a positive whole number of wasm threads.`);
  }
  return Math.min(threads ?? Math.max(1, await cpuCount()), maxWasmThreads);
}

function simdSupported(): boolean {
  // The WebAssembly SIMD feature test TF.js uses (from GoogleChromeLabs/wasm-feature-detect).
  try {
    return WebAssembly.validate(
      new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11]),
    );
  } catch {
    return false;
  }
}

/** Whether the wasm backend has been initialised in this process (its settings are then fixed). */
function wasmStarted(): boolean {
  return tf.engine().registry['wasm'] !== undefined;
}

/**
 * Prepares the wasm backend before `tf.setBackend('wasm')`: SIMD on where the runtime has it, and `threads`
 * XNNPACK threads in Node (see the comment at the top of this file). Calling it again before the backend
 * starts replaces the settings (a call without `threads` keeps an earlier explicit count); after the backend
 * has started it changes nothing.
 */
export async function configureWasm(options: WasmOptions = {}): Promise<void> {
  if (wasmStarted()) return;
  const threads = await resolveThreads(options.threads ?? explicitThreads);
  if (options.threads !== undefined) explicitThreads = options.threads;
  const simd = simdSupported();
  tf.env().set('WASM_HAS_SIMD_SUPPORT', simd);
  // The threaded binary is also the SIMD one: TF.js picks it only with both flags.
  const useThreads = isNode && threads > 1 && simd && typeof SharedArrayBuffer === 'function';
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', useThreads);
  requestedThreads = useThreads ? threads : 1;
  setThreadsCount(requestedThreads);
  wrapFactory();
}

/** XNNPACK threads of the running wasm backend (undefined until it has started). */
export function wasmThreads(): number | undefined {
  return startedThreads;
}

/** Wraps the registered wasm backend factory so thread support and listener cleanup bracket its start. */
function wrapFactory(): void {
  if (factoryWrapped) return;
  const entry = tf.engine().registryFactory['wasm'];
  if (entry === undefined) throw new BackendUnavailableError('wasm', 'tfjs-backend-wasm is not registered with TF.js.');
  const original = entry.factory;
  entry.factory = async (): Promise<KernelBackend> => {
    const threads = requestedThreads;
    const listenersBefore = isNode
      ? { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') }
      : undefined;
    let undo = (): void => {};
    if (threads > 1) {
      const { installThreadSupport } = await import('./wasm-node-threads.js');
      undo = installThreadSupport(threads);
    }
    try {
      const backend = await original();
      startedThreads = getThreadsCount();
      return backend;
    } catch (cause) {
      if (threads <= 1) throw cause;
      throw new BackendUnavailableError('wasm', `The multi-threaded wasm backend (${threads} threads) failed to start; ${wasmThreadsEnvVar}=1 selects the single-threaded build.`, { cause });
    } finally {
      undo();
      if (listenersBefore !== undefined) {
        for (const listener of process.listeners('uncaughtException')) {
          if (!listenersBefore.uncaughtException.includes(listener)) process.removeListener('uncaughtException', listener);
        }
        for (const listener of process.listeners('unhandledRejection')) {
          if (!listenersBefore.unhandledRejection.includes(listener)) process.removeListener('unhandledRejection', listener);
        }
      }
    }
  };
  factoryWrapped = true;
}
