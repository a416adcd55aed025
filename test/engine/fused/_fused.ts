// Shared by the fused-op tests: the engine test helpers plus whether onnxruntime-node loads here.
import { loadOrt } from '../../../src/engine/onnx/runtime.js';

export { rand, randoms, runOn, toTensor } from '../_compare.js';
export type { Result, Spec } from '../_compare.js';

function canLoad(): boolean {
  try {
    loadOrt();
    return true;
  } catch {
    return false;
  }
}

export const ortAvailable = canLoad();

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertSameLength(a, b);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
}
