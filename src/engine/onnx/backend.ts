// The "onnxruntime" TF.js backend: TF.js's cpu backend (tensors are plain typed arrays in the JavaScript heap)
// with the heavy kernels replaced by small ONNX graphs run in ONNX Runtime. Autodiff, models and tuners see an
// ordinary TF.js backend: gradients are TF.js's own, expressed in kernels that land here again.
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { DataType, KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../tf.js';
import type { OnnxGraph, OnnxModelOptions } from './proto.js';
import type { OrtGraph, OrtValue } from './runtime.js';
import { OrtGraphCache, loadOrt } from './runtime.js';

export const onnxRuntimeBackendName = 'onnxruntime';

type Values = Float32Array | Int32Array | Uint8Array;

/** TF.js's cpu backend plus a cache of compiled ONNX graphs. */
export class OnnxRuntimeBackend extends MathBackendCPU {
  readonly graphs = new OrtGraphCache();

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
    return { data: this.values(t), dims: t.shape };
  }

  /** A new output tensor whose array ONNX Runtime writes into. */
  output(shape: readonly number[], dtype: DataType = 'float32'): { info: TensorInfo; value: OrtValue } {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = dtype === 'int32' ? new Int32Array(size) : dtype === 'bool' ? new Uint8Array(size) : new Float32Array(size);
    return { info: this.makeTensorInfo([...shape], dtype, data), value: { data, dims: shape } };
  }

  graph(key: string, build: () => { graph: OnnxGraph; options?: OnnxModelOptions }): OrtGraph {
    return this.graphs.get(key, build);
  }

  /** Runs a cached graph on tensors and returns its outputs as new tensors. */
  runGraph(
    key: string,
    build: () => { graph: OnnxGraph; options?: OnnxModelOptions },
    inputs: readonly TensorInfo[],
    outputs: readonly { shape: readonly number[]; dtype?: DataType }[],
  ): TensorInfo[] {
    const g = this.graph(key, build);
    const made = outputs.map((o) => this.output(o.shape, o.dtype));
    g.run(
      inputs.map((t) => this.feed(t)),
      made.map((m) => m.value),
    );
    return made.map((m) => m.info);
  }

  override dispose(): void {
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
