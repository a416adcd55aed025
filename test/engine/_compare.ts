// Helpers for engine tests that run the same computation on the wasm and cpu backends.
import { setBackend } from '../../src/engine/index.js';
import type { BackendName } from '../../src/engine/index.js';
import { tf } from '../../src/engine/tf.js';

process.env['PEFT_TS_QUIET'] = '1';

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
export function randoms(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

let seedCounter = 1;

/** A random float32 tensor description (values are materialised on whichever backend runs). */
export function rand(shape: number[], seed = seedCounter++): { shape: number[]; values: Float32Array } {
  return { shape, values: randoms(shape.reduce((a, b) => a * b, 1), seed) };
}

export type Spec = { shape: number[]; values: Float32Array | Int32Array };

export function toTensor(spec: Spec): tf.Tensor {
  return spec.values instanceof Int32Array ? tf.tensor(spec.values, spec.shape, 'int32') : tf.tensor(spec.values, spec.shape);
}

export interface Result {
  shape: number[];
  values: Float32Array | Int32Array | Uint8Array;
}

/** Runs `fn` on `backend` inside tidy and returns its outputs' shapes and values. */
export async function runOn(backend: BackendName, fn: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await setBackend(backend);
  // Read outside tidy: tidy walks its return value looking for tensors, which is slow for large typed arrays.
  const out = tf.tidy(fn);
  const tensors = Array.isArray(out) ? out : [out];
  const results = tensors.map((t) => ({ shape: t.shape, values: t.dataSync() as Float32Array }));
  tf.dispose(tensors);
  return results;
}

/** Runs `fn` on wasm and on cpu. */
export async function onBoth(fn: () => tf.Tensor | tf.Tensor[]): Promise<{ wasm: Result[]; cpu: Result[] }> {
  const wasm = await runOn('wasm', fn);
  const cpu = await runOn('cpu', fn);
  return { wasm, cpu };
}
