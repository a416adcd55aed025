import type { OnnxDim, OnnxModelOptions, OnnxValueInfo } from '../proto.js';
import { OnnxDataType } from '../proto.js';
import type { OrtValue } from '../runtime.js';

/** A shape of named (run-time) dimensions, so one graph serves every size of a given rank. */
export function symbolicShape(prefix: string, rank: number): OnnxDim[] {
  return Array.from({ length: rank }, (_, i) => `${prefix}${i}`);
}

/** A 1-D int64 graph input (sizes that change from call to call, fed rather than baked into the graph). */
export function int64Feed(values: readonly number[]): OrtValue {
  return { data: BigInt64Array.from(values, (v) => BigInt(v)), dims: [values.length] };
}

/** Model options that enable ONNX Runtime's contrib operators (FusedMatMul, Gelu, ...). */
export const msDomains: OnnxModelOptions = { domains: { 'com.microsoft': 1 } };

/** A float32 graph input or output of the given rank, its dimensions named after it. */
export function floatValue(name: string, rank: number): OnnxValueInfo {
  return { name, elemType: OnnxDataType.float, shape: symbolicShape(`${name}_`, rank) };
}
