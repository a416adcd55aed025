// UnsortedSegmentSum for the wasm backend (tfjs-backend-wasm 4.22 has none). It is the gradient of `gather`,
// so embedding training needs it: dTable = unsortedSegmentSum(dy [ids, dim], ids, vocab).
//
// A one-hot matmul costs vocab x ids x dim multiply-adds (50k x 4k x 768 = 150 GFLOP for a GPT-2 batch) and a
// scatter built from wasm kernels still needs a dense [vocab, dim] intermediate per step; a plain loop over the
// wasm heap does ids x dim adds plus one zero-fill of the output, with no copies of the inputs. It runs in
// place on heap views, so nothing is read back through dataSync.
import type { KernelConfig, KernelFunc, TensorInfo, UnsortedSegmentSumAttrs } from '@tensorflow/tfjs';
import { asWasmBackend, f32View, i32View } from './wasm-backend.js';

const unsortedSegmentSum: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = asWasmBackend(b);
  const x = inputs['x'] as TensorInfo;
  const segmentIds = inputs['segmentIds'] as TensorInfo;
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32 values, got ${x.dtype}`);
  }
  if (segmentIds.dtype !== 'int32') throw new Error(`UnsortedSegmentSum needs int32 segment ids, got ${segmentIds.dtype}`);
  const idRank = segmentIds.shape.length;
  for (let i = 0; i < idRank; i++) {
    if (x.shape[i] !== segmentIds.shape[i]) {
      throw new Error(`UnsortedSegmentSum: segment ids shape [${segmentIds.shape}] is not a prefix of x shape [${x.shape}]`);
    }
  }
  const inner = x.shape.slice(idRank);
  let dim = 1;
  for (const d of inner) dim *= d;

  const out = backend.makeOutput([numSegments, ...inner], x.dtype);
  // Views are taken after the only allocation (makeOutput may grow the heap).
  const ids = i32View(backend, segmentIds);
  const src = x.dtype === 'float32' ? f32View(backend, x) : i32View(backend, x);
  const dst = x.dtype === 'float32' ? f32View(backend, out) : i32View(backend, out);
  dst.fill(0);
  const rows = ids.length;
  for (let r = 0; r < rows; r++) {
    const seg = ids[r];
    // Like TensorFlow (and tfjs's cpu kernel), ids outside [0, numSegments) contribute nothing.
    if (seg < 0 || seg >= numSegments) continue;
    const s = r * dim;
    const d = seg * dim;
    for (let j = 0; j < dim; j++) dst[d + j] += src[s + j];
  }
  return out;
};

export const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};
