// ONNX Runtime from Node, synchronously. onnxruntime-node's public `InferenceSession.run` is async (it defers
// the native call to setImmediate), but TF.js kernels are synchronous; the package's native binding, which its
// public API wraps, runs synchronously. We use that binding directly: feeds are views of TF.js's own typed
// arrays and outputs are written into arrays we allocate. (onnxruntime-node 1.30's binding still copies each
// output into a new ArrayBuffer for its return value, which we drop.)
import { createRequire } from 'node:module';
import { BackendUnavailableError } from '../../errors.js';
import type { OnnxElemType, OnnxGraph, OnnxModelOptions } from './proto.js';
import { OnnxDataType, encodeModel } from './proto.js';

type OrtTypedArray = Float32Array | Int32Array | Uint8Array | BigInt64Array;
type OrtTypeName = 'float32' | 'int32' | 'uint8' | 'bool' | 'int64';

interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: OrtTypedArray;
  readonly location?: 'cpu';
}

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: readonly { name: string }[];
  readonly outputMetadata: readonly { name: string }[];
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor | null>, options?: object): Record<string, OrtTensor>;
  dispose(): void;
}

interface OrtModules {
  Session: new () => NativeSession;
}

let modules: OrtModules | undefined;
let loadError: unknown;

// Held in a variable so bundlers leave the optional package alone.
const ortPackage = 'onnxruntime-node';

/** Loads onnxruntime-node's native binding; throws BackendUnavailableError when it is not installed or fails. */
export function loadOrt(): OrtModules {
  if (modules !== undefined) return modules;
  if (loadError !== undefined) throw loadError;
  try {
    const require = createRequire(import.meta.url);
    const { binding, initOrt } = require(`${ortPackage}/dist/binding.js`) as {
      binding: { InferenceSession: new () => NativeSession };
      initOrt(): void;
    };
    initOrt();
    modules = { Session: binding.InferenceSession };
    return modules;
  } catch (cause) {
    loadError = new BackendUnavailableError(
      'onnxruntime',
      `Backend "onnxruntime" needs the package ${ortPackage} (an optional dependency of peft-ts): install it with \`npm install ${ortPackage}\`.`,
      { cause },
    );
    throw loadError;
  }
}

export interface OrtOptions {
  /** Threads for one operator (ONNX Runtime's intra-op pool). */
  threads: number;
}

let ortOptions: OrtOptions = { threads: 1 };

export function configureOrt(options: OrtOptions): void {
  ortOptions = options;
}

function sessionOptions(): object {
  return {
    intraOpNumThreads: ortOptions.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Pool threads would otherwise spin between our calls, taking the core that runs JavaScript.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

const ortTypeOf: Record<OnnxElemType, OrtTypeName> = {
  [OnnxDataType.float]: 'float32',
  [OnnxDataType.int32]: 'int32',
  [OnnxDataType.uint8]: 'uint8',
  [OnnxDataType.bool]: 'bool',
  [OnnxDataType.int64]: 'int64',
};

/** A typed array and the shape it holds, in or out of a graph. */
export interface OrtValue {
  data: OrtTypedArray;
  dims: readonly number[];
}

/** A compiled ONNX graph, run synchronously with caller-owned buffers. */
export class OrtGraph {
  private readonly session: NativeSession;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private readonly inputTypes: readonly OrtTypeName[];
  private readonly outputTypes: readonly OrtTypeName[];

  constructor(graph: OnnxGraph, options?: OnnxModelOptions) {
    const ort = loadOrt();
    const bytes = encodeModel(graph, options);
    this.session = new ort.Session();
    this.session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, sessionOptions());
    this.inputNames = graph.inputs.map((v) => v.name);
    this.outputNames = graph.outputs.map((v) => v.name);
    this.inputTypes = graph.inputs.map((v) => ortTypeOf[v.elemType]);
    this.outputTypes = graph.outputs.map((v) => ortTypeOf[v.elemType]);
  }

  /** Runs the graph: inputs in declaration order; outputs are written into the given buffers. */
  run(inputs: readonly OrtValue[], outputs: readonly OrtValue[]): void {
    // The binding reads type, dims, location and data off plain objects: onnxruntime-common's Tensor
    // constructor would only re-validate what the graph's declaration already fixes (~2 us a tensor).
    const feeds: Record<string, OrtTensor> = {};
    for (let i = 0; i < inputs.length; i++) {
      feeds[this.inputNames[i]!] = { type: this.inputTypes[i]!, dims: inputs[i]!.dims, data: inputs[i]!.data, location: 'cpu' };
    }
    const fetches: Record<string, OrtTensor> = {};
    for (let i = 0; i < outputs.length; i++) {
      fetches[this.outputNames[i]!] = { type: this.outputTypes[i]!, dims: outputs[i]!.dims, data: outputs[i]!.data, location: 'cpu' };
    }
    // Without run options the binding uses its defaults instead of building new ones per call.
    this.session.run(feeds, fetches);
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** Graphs by signature, built on first use. */
export class OrtGraphCache {
  private readonly graphs = new Map<string, OrtGraph>();

  get(key: string, build: () => { graph: OnnxGraph; options?: OnnxModelOptions }): OrtGraph {
    let g = this.graphs.get(key);
    if (g === undefined) {
      const { graph, options } = build();
      g = new OrtGraph(graph, options);
      this.graphs.set(key, g);
    }
    return g;
  }

  get size(): number {
    return this.graphs.size;
  }

  clear(): void {
    for (const g of this.graphs.values()) g.dispose();
    this.graphs.clear();
  }
}
