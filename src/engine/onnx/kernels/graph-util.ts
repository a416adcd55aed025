import type { OnnxDim, OnnxModelOptions, OnnxValueInfo } from '../proto.js';
import { OnnxDataType } from '../proto.js';

/** A shape of named (run-time) dimensions, so one graph serves every size of a given rank. */
export function symbolicShape(prefix: string, rank: number): OnnxDim[] {
  return Array.from({ length: rank }, (_, i) => `${prefix}${i}`);
}

/** Model options that enable ONNX Runtime's contrib operators (FusedMatMul, Gelu, ...). */
export const msDomains: OnnxModelOptions = { domains: { 'com.microsoft': 1 } };

/** A float32 graph input or output of the given rank, its dimensions named after it. */
export function floatValue(name: string, rank: number): OnnxValueInfo {
  return { name, elemType: OnnxDataType.float, shape: symbolicShape(`${name}_`, rank) };
}
