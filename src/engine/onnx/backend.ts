// The "onnxruntime" TF.js backend: TF.js's cpu backend (tensors are plain typed arrays in the JavaScript heap)
// with the heavy kernels replaced by small ONNX graphs run in ONNX Runtime. Autodiff, models and tuners see an
// ordinary TF.js backend: gradients are TF.js's own, expressed in kernels that land here again.
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { DataId, DataType, KernelConfig, TensorInfo, backend_util } from '@tensorflow/tfjs';
import { tf } from '../tf.js';
import type { OnnxGraph, OnnxModelOptions } from './proto.js';
import type { OrtGraph, OrtValue } from './runtime.js';
import { OrtGraphCache, loadOrt } from './runtime.js';
import { BufferPool } from './buffer-pool.js';

/** Freed output arrays kept for reuse, at most this many bytes (`PEFT_TS_ORT_POOL_MB`). */
const poolBytes = Number(process.env['PEFT_TS_ORT_POOL_MB'] ?? 1024) * 2 ** 20;

export const onnxRuntimeBackendName = 'onnxruntime';

type Values = Float32Array | Int32Array | Uint8Array;

/** TF.js's cpu backend plus a cache of compiled ONNX graphs. */
export class OnnxRuntimeBackend extends MathBackendCPU {
  readonly graphs = new OrtGraphCache();
  readonly pool = new BufferPool(poolBytes);

  constructor() {
    super();
    // The cpu backend's one-time advice to install tfjs-node does not apply here.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** The typed array behind a tensor (no copy). */
  values(t: TensorInfo): Values {
    const data = this.data.get(t.dataId);
    const values = data?.values;
    if (values === undefined || typeof (values as { length?: unknown }).length !== 'number' || Array.isArray(values)) {
      throw new Error(`peft-ts onnxruntime kernel: tensor of dtype ${t.dtype} has no typed-array data`);
    }
    return values as Values;
  }

  /** A feed for a graph input: the tensor's own array and shape. */
  feed(t: TensorInfo): OrtValue {
    let data = this.values(t);
    // The cpu backend's Cast from int32 or bool to float32 keeps the source array (no precision is lost).
    if (t.dtype === 'float32' && !(data instanceof Float32Array)) data = Float32Array.from(data);
    else if (t.dtype === 'int32' && !(data instanceof Int32Array)) data = Int32Array.from(data);
    return { data, dims: t.shape };
  }

  /** A new output tensor whose array ONNX Runtime writes into. */
  output(shape: readonly number[], dtype: DataType = 'float32'): { info: TensorInfo; value: OrtValue } {
    const size = tf.util.sizeFromShape([...shape]);
    const data = dtype === 'int32' ? new Int32Array(size) : dtype === 'bool' ? new Uint8Array(size) : this.pool.take(size);
    return { info: this.makeTensorInfo([...shape], dtype, data), value: { data, dims: shape } };
  }

  graph(key: string, build: () => { graph: OnnxGraph; options?: OnnxModelOptions }): OrtGraph {
    return this.graphs.get(key, build);
  }

  /** Runs a cached graph on tensors (or raw values, such as int64 sizes) and returns its outputs as new tensors. */
  runGraph(
    key: string,
    build: () => { graph: OnnxGraph; options?: OnnxModelOptions },
    inputs: readonly (TensorInfo | OrtValue)[],
    outputs: readonly { shape: readonly number[]; dtype?: DataType }[],
  ): TensorInfo[] {
    const g = this.graph(key, build);
    const made = outputs.map((o) => this.output(o.shape, o.dtype));
    try {
      g.run(
        inputs.map((t) => ('dataId' in t ? this.feed(t) : t)),
        made.map((m) => m.value),
      );
    } catch (error) {
      for (const m of made) this.disposeData(m.info.dataId, true);
      throw error;
    }
    return made.map((m) => m.info);
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    const dataId = super.write(values, shape, dtype);
    this.pool.retain(values);
    return dataId;
  }

  override move(dataId: DataId, values: backend_util.BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.retain(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const disposed = super.disposeData(dataId, force);
    if (disposed && values !== undefined && !this.data.has(dataId)) this.pool.release(values);
    return disposed;
  }

  /** A copy when the array is pooled: it is reused once the tensor is disposed, and callers keep what they read. */
  override readSync(dataId: DataId): backend_util.BackendValues {
    const values = super.readSync(dataId);
    return this.pool.owns(values) ? values.slice() : values;
  }

  override dispose(): void {
    this.pool.clear();
    this.graphs.clear();
    super.dispose();
  }
}

export function asOnnxRuntimeBackend(backend: object): OnnxRuntimeBackend {
  if (!(backend instanceof OnnxRuntimeBackend)) throw new Error('peft-ts onnxruntime kernel called on another backend');
  return backend;
}

let registered = false;

/**
 * Registers the "onnxruntime" backend with TF.js: every cpu kernel under the new name, then ours on top.
 * Throws BackendUnavailableError when onnxruntime-node cannot load.
 */
export function registerOnnxRuntimeBackend(kernels: readonly KernelConfig[]): void {
  loadOrt();
  if (registered) return;
  registered = true;
  tf.registerBackend(onnxRuntimeBackendName, () => new OnnxRuntimeBackend(), 0);
  const ours = new Set(kernels.map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (!ours.has(k.kernelName)) tf.registerKernel({ ...k, backendName: onnxRuntimeBackendName });
  }
  for (const k of kernels) tf.registerKernel({ ...k, backendName: onnxRuntimeBackendName });
}
