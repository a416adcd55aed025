import type { OnnxDim, OnnxModelOptions } from '../proto.js';

/** A shape of named (run-time) dimensions, so one graph serves every size of a given rank. */
export function symbolicShape(prefix: string, rank: number): OnnxDim[] {
  return Array.from({ length: rank }, (_, i) => `${prefix}${i}`);
}

/** Model options that enable ONNX Runtime's contrib operators (FusedMatMul, Gelu, ...). */
export const msDomains: OnnxModelOptions = { domains: { 'com.microsoft': 1 } };
