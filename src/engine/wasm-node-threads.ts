// Node-only support for the threaded build of tfjs-backend-wasm 4.22 (imported by wasm.ts only in Node, and
// only when more than one thread is asked for). See the comment at the top of wasm.ts for why each piece is
// needed.
import os from 'node:os';
import { resolveObjectURL } from 'node:buffer';
import type { TransferListItem } from 'node:worker_threads';
import { Worker as NodeWorker } from 'node:worker_threads';

/**
 * Installs, until the returned function is called, a `Worker` global that Emscripten can start from blob:
 * URLs, and an os.cpus() that reports 2 x `threads` CPUs (the module caps XNNPACK at half the CPU count).
 */
export function installThreadSupport(threads: number): () => void {
  const workerBefore = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
  Object.defineProperty(globalThis, 'Worker', {
    configurable: true,
    get: () => BlobWorker,
    // Emscripten assigns `commonjsGlobal.Worker = nodeWorkerThreads.Worker` while it starts; keep ours.
    set: () => {},
  });
  const cpus = os.cpus;
  os.cpus = function cpusForWasm() {
    const real = cpus.call(os);
    return Array.from({ length: 2 * threads }, (_, i) => real[i % Math.max(1, real.length)]);
  };
  return () => {
    os.cpus = cpus;
    if (workerBefore === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    else Object.defineProperty(globalThis, 'Worker', workerBefore);
  };
}

// Evaluated in each worker: sets the globals the Emscripten module expects (the bundle's renamed requires,
// `commonjsGlobal`, tslib helpers), waits for the first message (the worker script's text) and evaluates it,
// then serves the main script's text to the worker script's importScripts.
const bootstrap = `
const { parentPort } = require('node:worker_threads');
globalThis.require$$0 = require('node:fs');
globalThis.require$$1 = require('node:path');
globalThis.require$$3 = require('node:perf_hooks');
globalThis.require$$4 = require('node:os');
globalThis.commonjsGlobal = globalThis;
globalThis.__values = function (o) {
  var s = typeof Symbol === 'function' && Symbol.iterator, m = s && o[s], i = 0;
  if (m) return m.call(o);
  if (o && typeof o.length === 'number') return { next: function () { if (o && i >= o.length) o = void 0; return { value: o && o[i++], done: !o }; } };
  throw new TypeError('Object is not iterable.');
};
globalThis.__read = function (o, n) { var a = Array.from(o); return n === undefined ? a : a.slice(0, n); };
globalThis.__spreadArray = function (to, from) { return to.concat(Array.prototype.slice.call(from)); };
let mainScript;
parentPort.once('message', (first) => {
  // Registered before the worker script's own listener, so it sees (and rewrites) the load message first.
  parentPort.on('message', (d) => {
    if (d && d.cmd === 'load' && typeof d.peftTsMainScript === 'string') {
      mainScript = d.peftTsMainScript;
      d.urlOrBlob = 'peft-ts:main-script';
    }
  });
  (0, eval)(first.peftTsWorkerScript);
  const importScripts = globalThis.importScripts;
  globalThis.importScripts = (f) => (f === 'peft-ts:main-script' ? (0, eval)(mainScript) : importScripts(f));
});
`;

const blobTexts = new WeakMap<Blob, Promise<string>>();

function blobText(blob: Blob): Promise<string> {
  let text = blobTexts.get(blob);
  if (text === undefined) {
    text = blob.text();
    blobTexts.set(blob, text);
  }
  return text;
}

const urlTexts = new Map<string, Promise<string>>();

function urlText(url: string): Promise<string> {
  let text = urlTexts.get(url);
  if (text === undefined) {
    const blob = resolveObjectURL(url);
    text = blob === undefined ? Promise.reject(new Error(`peft-ts: wasm worker script ${url} is not a live blob: URL`)) : blob.text();
    urlTexts.set(url, text);
  }
  return text;
}

function isLoadMessage(value: unknown): value is { cmd: 'load'; urlOrBlob: unknown } {
  return typeof value === 'object' && value !== null && (value as { cmd?: unknown }).cmd === 'load';
}

/** A worker_threads.Worker that Emscripten can start from a blob: URL. */
class BlobWorker extends NodeWorker {
  /** Sends waiting for the worker's script texts; undefined once all went out (then posting is direct). */
  #pending: Promise<void> | undefined;

  constructor(url: string | URL) {
    super(bootstrap, { eval: true });
    const text = urlText(String(url));
    this.#enqueue(async () => {
      super.postMessage({ peftTsWorkerScript: await text });
    });
  }

  /**
   * Emscripten posts "load" (with the main script as a Blob) before the worker's script text is read; it
   * goes out, rewritten to carry the text, in order after it. Once nothing waits, posting is synchronous,
   * which pthreadpool needs: it posts "run" and then blocks the main thread until the worker answers.
   */
  override postMessage(value: unknown, transferList?: readonly TransferListItem[]): void {
    if (isLoadMessage(value) && value.urlOrBlob instanceof Blob) {
      const text = blobText(value.urlOrBlob);
      this.#enqueue(async () => {
        super.postMessage({ ...value, urlOrBlob: undefined, peftTsMainScript: await text }, transferList);
      });
    } else if (this.#pending !== undefined) {
      this.#enqueue(async () => super.postMessage(value, transferList));
    } else {
      super.postMessage(value, transferList);
    }
  }

  #enqueue(send: () => Promise<void>): void {
    const link: Promise<void> = (this.#pending ?? Promise.resolve()).then(send).then(
      () => {
        if (this.#pending === link) this.#pending = undefined;
      },
      (error: unknown) => {
        if (this.#pending === link) this.#pending = undefined;
        this.emit('error', error);
      },
    );
    this.#pending = link;
  }

  /** Kept unref'd: XNNPACK's pool threads never exit and must not hold the process open. */
  override ref(): void {}
}
