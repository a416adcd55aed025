import { tf } from './tf.js';
import { BackendUnavailableError } from '../errors.js';
import { registerEngineKernels } from './kernels/index.js';

/** Compute backends peft-ts knows how to start. */
export const backendNames = ['tensorflow', 'onnxruntime', 'wasm', 'cpu', 'webgpu', 'webgl'] as const;
export type BackendName = (typeof backendNames)[number];

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** Environment variable that forces a backend (e.g. `PEFT_TS_BACKEND=cpu`). */
export const backendEnvVar = 'PEFT_TS_BACKEND';

let current: Promise<BackendName> | undefined;
let logged = false;

function isBackendName(name: string): name is BackendName {
  return (backendNames as readonly string[]).includes(name);
}

/** Backends to try, best first, for this platform. */
function candidates(): BackendName[] {
  if (isNode) return ['tensorflow', 'onnxruntime', 'wasm', 'cpu'];
  const hasGpu = typeof navigator !== 'undefined' && 'gpu' in navigator;
  return hasGpu ? ['webgpu', 'webgl', 'wasm', 'cpu'] : ['webgl', 'wasm', 'cpu'];
}

// Package names are held in variables so bundlers and tsc do not try to resolve optional packages.
const optionalPackages: Partial<Record<BackendName, string>> = {
  tensorflow: '@tensorflow/tfjs-node',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
};

async function start(name: BackendName): Promise<void> {
  if (name === 'wasm') {
    const { configureWasm } = await import('./wasm.js');
    await configureWasm();
  } else if (name === 'onnxruntime') {
    if (!isNode) throw new BackendUnavailableError(name, 'Backend "onnxruntime" runs in Node only (onnxruntime-node).');
    const { prepareOnnxRuntime } = await import('./onnx/index.js');
    prepareOnnxRuntime();
  } else if (name === 'webgl') {
    // Registered by @tensorflow/tfjs itself.
  } else if (name === 'cpu') {
    // Registered by @tensorflow/tfjs itself. Its greeting to Node users (install tfjs-node) is marked as given
    // by registerEngineKernels, without PROD mode, which would mute every other TF.js warning too.
  } else {
    const pkg = optionalPackages[name];
    if (pkg === undefined) throw new BackendUnavailableError(name, `No loader for backend "${name}".`);
    try {
      await import(/* @vite-ignore */ pkg);
    } catch (cause) {
      throw new BackendUnavailableError(name, `Backend "${name}" needs the package ${pkg}: install it with \`npm install ${pkg}\`.`, { cause });
    }
  }
  let ok = false;
  const restoreProcessHandlers = guardProcessHandlers();
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (cause) {
    throw new BackendUnavailableError(name, `Backend "${name}" failed to initialise.`, { cause });
  } finally {
    restoreProcessHandlers();
  }
  if (!ok || tf.getBackend() !== name) throw new BackendUnavailableError(name, `Backend "${name}" failed to initialise.`);
  registerEngineKernels(name);
}

/**
 * Selects and initialises the compute backend. With no argument: `PEFT_TS_BACKEND` if set, else the best that
 * starts on this platform (Node: tfjs-node when installed, then onnxruntime (onnxruntime-node), wasm, cpu; browsers: webgpu, webgl, wasm,
 * cpu). A named backend that cannot start throws `BackendUnavailableError`; automatic choice falls through.
 */
export async function setBackend(name?: BackendName): Promise<BackendName> {
  const forced = name ?? readEnvBackend();
  const run = async (): Promise<BackendName> => {
    if (forced !== undefined) {
      await start(forced);
      return report(forced, 'requested');
    }
    const failures: string[] = [];
    for (const candidate of candidates()) {
      try {
        await start(candidate);
        return report(candidate, 'automatic');
      } catch (error) {
        failures.push(`${candidate}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    throw new BackendUnavailableError('auto', `No TF.js backend could start. Tried ${failures.join('; ')}`);
  };
  current = run();
  return current;
}

/** Resolves once a backend is running, starting the default one on first use. */
export async function ensureBackend(): Promise<BackendName> {
  current ??= setBackend();
  return current;
}

/** The name of the running backend (after `setBackend` / `ensureBackend`). */
export function getBackend(): string {
  return tf.getBackend();
}

function readEnvBackend(): BackendName | undefined {
  const value = isNode ? process.env[backendEnvVar]?.trim().toLowerCase() : undefined;
  if (!value) return undefined;
  if (!isBackendName(value)) {
    throw new BackendUnavailableError(value, `${backendEnvVar}="${value}" is not a backend; use one of ${backendNames.join(', ')}.`);
  }
  return value;
}

function report(name: BackendName, how: string): BackendName {
  if (!logged && !(isNode && process.env['PEFT_TS_QUIET'])) {
    logged = true;
    console.info(`[peft-ts] using TF.js backend "${name}" (${how})`);
  }
  return name;
}

/**
 * The wasm backend's emscripten runtime installs process-wide `uncaughtException`/`unhandledRejection`
 * handlers that rethrow, which turns any later error in the user's program into a dump of minified wasm glue.
 * Handlers added while a backend starts are removed again.
 */
function guardProcessHandlers(): () => void {
  if (!isNode) return () => {};
  const exceptionBefore = new Set(process.listeners('uncaughtException'));
  const rejectionBefore = new Set(process.listeners('unhandledRejection'));
  return () => {
    for (const l of process.listeners('uncaughtException')) if (!exceptionBefore.has(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!rejectionBefore.has(l)) process.removeListener('unhandledRejection', l);
  };
}
