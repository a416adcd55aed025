// Typed access to the parts of tfjs-backend-wasm's BackendWasm that our kernels use. The class is exported by
// the package, but its `wasm` module type comes from generated declarations; we describe only what we touch.
import type { DataId, DataType, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../tf.js';

interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: DataType;
  refCount: number;
}

/** The members of tfjs-backend-wasm's `BackendWasm` that peft-ts kernels rely on (tfjs 4.22). */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: DataId): WasmTensorData | undefined };
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
}

export function asWasmBackend(backend: object): WasmBackend {
  const b = backend as Partial<WasmBackend>;
  if (typeof b.makeOutput !== 'function' || b.dataIdMap === undefined || b.wasm === undefined) {
    throw new Error('peft-ts wasm kernel called with a backend that is not tfjs-backend-wasm');
  }
  return backend as WasmBackend;
}

function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data === undefined) throw new Error('peft-ts wasm kernel: tensor data not found on the wasm backend');
  return data.memoryOffset;
}

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A Float32Array view of a float32 tensor's memory on the wasm heap (no copy). Take views only after the
 * allocations of the kernel are done: growing the heap replaces its buffer and detaches older views' reach.
 */
export function f32View(backend: WasmBackend, t: TensorInfo): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`peft-ts wasm kernel: expected float32, got ${t.dtype}`);
  return new Float32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size(t.shape));
}

/** An Int32Array view of an int32 tensor's memory on the wasm heap (no copy). */
export function i32View(backend: WasmBackend, t: TensorInfo): Int32Array {
  if (t.dtype !== 'int32') throw new Error(`peft-ts wasm kernel: expected int32, got ${t.dtype}`);
  return new Int32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size(t.shape));
}

/** Copies `count` elements (4 bytes each) from `src` at element `srcAt` into `dst` at element `dstAt`. */
export function copyElements(backend: WasmBackend, src: TensorInfo, srcAt: number, dst: TensorInfo, dstAt: number, count: number): void {
  const heap = backend.wasm.HEAPU8;
  const from = offsetOf(backend, src) + 4 * srcAt;
  heap.copyWithin(offsetOf(backend, dst) + 4 * dstAt, from, from + 4 * count);
}

/** A float32 output tensor on the wasm heap, filled with zeros. */
export function zerosOutput(backend: WasmBackend, shape: number[]): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  f32View(backend, out).fill(0);
  return out;
}

/** Releases an intermediate tensor a kernel made. */
export function release(backend: WasmBackend, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

/** A tensor info with a new shape sharing `t`'s data (the caller releases it like any intermediate). */
export function reshapeInfo(backend: WasmBackend, t: TensorInfo, shape: number[]): TensorInfo {
  const reshape = wasmKernel('Reshape');
  return reshape({ inputs: { x: t }, backend, attrs: { shape } }) as TensorInfo;
}

/** Transposes `t` with the backend's own Transpose kernel. */
export function transposeInfo(backend: WasmBackend, t: TensorInfo, perm: number[]): TensorInfo {
  const transpose = wasmKernel('Transpose');
  return transpose({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfo;
}

/**
 * Swaps the last two dimensions of a float32 tensor ([..., R, C] -> [..., C, R]) with a tiled loop over heap
 * views. The wasm backend's Transpose kernel moves ~7-14 ns per element on such shapes (its generic N-d index
 * walk); this runs ~1.5-3 ns, which is what makes an explicit transpose before a fast matmul pay off.
 */
export function transposeLastTwo(backend: WasmBackend, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const rows = t.shape[rank - 2];
  const cols = t.shape[rank - 1];
  const out = backend.makeOutput([...t.shape.slice(0, -2), cols, rows], 'float32');
  const src = f32View(backend, t);
  const dst = f32View(backend, out);
  const plane = rows * cols;
  const tile = 16;
  for (let base = 0; base < src.length; base += plane) {
    for (let i0 = 0; i0 < rows; i0 += tile) {
      const i1 = Math.min(rows, i0 + tile);
      for (let j0 = 0; j0 < cols; j0 += tile) {
        const j1 = Math.min(cols, j0 + tile);
        for (let j = j0; j < j1; j++) {
          const d = base + j * rows;
          for (let i = i0; i < i1; i++) dst[d + i] = src[base + i * cols + j];
        }
      }
    }
  }
  return out;
}

/** The kernel function the wasm backend has registered under `name` (ours where we replaced one). */
export function wasmKernel(name: string): KernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (config === undefined) throw new Error(`peft-ts: the wasm backend has no ${name} kernel`);
  return config.kernelFunc;
}
