// BatchMatMul / _FusedMatMul for the wasm backend, routed onto the one fast path tfjs-backend-wasm 4.22 has.
//
// Its C++ kernel calls XNNPACK only for `a @ b` with no transpose flag and a batch of 1 on both sides; every
// other case (transposeA, transposeB, or a batch > 1 even when b is shared) runs a naive blocked loop at
// 1-3 GFLOPS instead of 25-40. TF.js's matmul gradient uses exactly those forms (dA = dy @ b^T,
// dB = a^T @ dy), so a training step cost 9x-60x its forward. This wrapper, registered in place of the
// backend's kernels, rewrites each call onto the fast path with kernel-level transposes, copies, reshapes:
//   - transpose flags become an explicit transpose of that operand (when the matmul is big enough to repay it);
//   - a batch against an unbatched b is folded into the rows: [B, M, K] @ [K, N] = ([B*M, K] @ [K, N]);
//   - an unbatched a against a batched b becomes one wide product: a @ [K, B*N], then rows are regrouped;
//   - a true batch on both sides runs one fast product per batch entry, copied into the output.
// Small products stay on the original kernel, which wins when there is too little work to repay the copies.
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import type { WasmBackend } from './wasm-backend.js';
import { asWasmBackend, copyElements, release, reshapeInfo, transposeInfo, transposeLastTwo } from './wasm-backend.js';

/**
 * Cost model, in nanoseconds per multiply-add or per element on one wasm thread, measured with
 * tfjs-backend-wasm 4.22 SIMD on x86-64 (Node 20): the naive loop runs ~0.9 ns/MAC (NN batched), ~0.7 with
 * transposeB and ~1.7 with transposeA; XNNPACK ~0.05; swapping the last two dimensions (transposeLastTwo)
 * ~2.5 ns per element, the Transpose kernel ~8 for other permutations; a new XNNPACK operator packs b at
 * ~1 ns per element; each extra kernel dispatch (allocation, operator set-up) ~5 us.
 */
const NS_SLOW_NN = 0.9;
const NS_SLOW_NT = 0.7;
const NS_SLOW_TN = 1.7;
const NS_FAST = 0.05;
const NS_SWAP = 2.5;
const NS_TRANSPOSE = 8;
const NS_COPY = 0.5;
const NS_PACK = 1;
const NS_CALL = 5_000;

function prod(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function broadcastBatch(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** 'auto': route when the cost model says it pays; 'always' / 'never': for tests and benchmarks. */
export type MatMulRouting = 'auto' | 'always' | 'never';
let routing: MatMulRouting = 'auto';

/** Sets how wasm matmuls are routed (default 'auto'); returns the previous setting. */
export function setMatMulRouting(mode: MatMulRouting): MatMulRouting {
  const previous = routing;
  routing = mode;
  return previous;
}

interface Plan {
  /** Transpose a / b explicitly before the product. */
  ta: boolean;
  tb: boolean;
  strategy: 'original' | 'fold' | 'wide' | 'loop';
}

function plan(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, fused?: { bias: boolean }): Plan {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchA = prod(a.shape.slice(0, -2));
  const batchB = prod(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const original: Plan = { ta: false, tb: false, strategy: 'original' };
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return original;
  const fastPathAlready = !transposeA && !transposeB && batch === 1;
  if (routing === 'never' || fastPathAlready) return original;

  let strategy: Plan['strategy'];
  let extraNs = 0;
  if (batchB === 1) {
    strategy = 'fold';
  } else if (batchA === 1 && fused === undefined) {
    strategy = 'wide';
    extraNs = (batchB * k * n + batchB * m * n) * NS_TRANSPOSE;
  } else {
    strategy = 'loop';
    extraNs = batch * (NS_CALL * 3 + (m * k + k * n + m * n) * NS_COPY);
  }
  // Off its XNNPACK path, TF.js's fused kernel adds the wrong bias entries (see fusedMatMul): always route.
  const mustRoute = fused?.bias === true;
  const macs = batch * m * k * n;
  const slowNs = macs * (transposeA ? NS_SLOW_TN : transposeB ? NS_SLOW_NT : NS_SLOW_NN);
  const transposeNs = ((transposeA ? batchA * m * k : 0) + (transposeB ? batchB * k * n : 0)) * NS_SWAP;
  const packNs = (transposeB || strategy !== 'fold' ? batchB * k * n * NS_PACK : 0) + NS_CALL * 2;
  const fastNs = macs * NS_FAST + transposeNs + packNs + extraNs;
  if (routing === 'auto' && !mustRoute && fastNs >= slowNs) return original;
  return { ta: transposeA, tb: transposeB, strategy };
}

type Extra = Omit<NamedTensorInfoMap, 'a' | 'b'>;

/** Runs the backend's original kernel with no transposes on a and b of rank >= 2. */
type Plain = (a: TensorInfo, b: TensorInfo) => TensorInfo;

function routed(backend: WasmBackend, a0: TensorInfo, b0: TensorInfo, p: Plan, plain: Plain): TensorInfo {
  const temps: TensorInfo[] = [];
  const a = p.ta ? transposeLastTwo(backend, a0) : a0;
  const b = p.tb ? transposeLastTwo(backend, b0) : b0;
  if (p.ta) temps.push(a);
  if (p.tb) temps.push(b);
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [m, k] = [a.shape[ra - 2], a.shape[ra - 1]];
  const n = b.shape[rb - 1];
  const batchA = prod(a.shape.slice(0, -2));
  const batchB = prod(b.shape.slice(0, -2));
  const outShape = [...broadcastBatch(a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n];
  let out: TensorInfo;
  try {
    if (p.strategy === 'fold') {
      const a2 = reshapeInfo(backend, a, [1, batchA * m, k]);
      const b2 = reshapeInfo(backend, b, [1, k, n]);
      temps.push(a2, b2);
      const r = plain(a2, b2);
      temps.push(r);
      out = reshapeInfo(backend, r, outShape);
    } else if (p.strategy === 'wide') {
      // a [M, K] @ b [B, K, N]: lay b out as [K, B*N], one product, then regroup [M, B, N] -> [B, M, N].
      const b3 = reshapeInfo(backend, b, [batchB, k, n]);
      temps.push(b3);
      const bw = transposeInfo(backend, b3, [1, 0, 2]);
      temps.push(bw);
      const bw2 = reshapeInfo(backend, bw, [1, k, batchB * n]);
      const a2 = reshapeInfo(backend, a, [1, m, k]);
      temps.push(bw2, a2);
      const r = plain(a2, bw2);
      temps.push(r);
      const r3 = reshapeInfo(backend, r, [m, batchB, n]);
      temps.push(r3);
      const t = transposeInfo(backend, r3, [1, 0, 2]);
      temps.push(t);
      out = reshapeInfo(backend, t, outShape);
    } else {
      // One XNNPACK product per batch entry on copies of the operands' slices (a shared a is reused).
      out = backend.makeOutput(outShape, 'float32');
      const batch = Math.max(batchA, batchB);
      const shared = batchA === 1 ? reshapeInfo(backend, a, [1, m, k]) : undefined;
      if (shared !== undefined) temps.push(shared);
      for (let i = 0; i < batch; i++) {
        let ai = shared;
        if (ai === undefined) {
          ai = backend.makeOutput([1, m, k], 'float32');
          copyElements(backend, a, i * m * k, ai, 0, m * k);
        }
        const bi = backend.makeOutput([1, k, n], 'float32');
        copyElements(backend, b, i * k * n, bi, 0, k * n);
        const ri = plain(ai, bi);
        copyElements(backend, ri, 0, out, i * m * n, m * n);
        release(backend, bi, ri);
        if (ai !== shared) release(backend, ai);
      }
    }
  } finally {
    release(backend, ...temps);
  }
  return out;
}

let originalBatchMatMul: KernelFunc | undefined;
let originalFusedMatMul: KernelFunc | undefined;

const batchMatMul: KernelFunc = (args) => {
  const original = originalBatchMatMul!;
  const backend = asWasmBackend(args.backend);
  const a = args.inputs['a'] as TensorInfo;
  const b = args.inputs['b'] as TensorInfo;
  const transposeA = args.attrs?.['transposeA'] === true;
  const transposeB = args.attrs?.['transposeB'] === true;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
  const p = plan(a, b, transposeA, transposeB);
  if (p.strategy === 'original') return original(args);
  const plain: Plain = (x, y) =>
    original({ inputs: { a: x, b: y }, backend, attrs: { transposeA: false, transposeB: false } }) as TensorInfo;
  return routed(backend, a, b, p, plain);
};

/**
 * _FusedMatMul gets a and b as rank 3 (the op reshapes them), an optional rank-1 bias and PReLU weights.
 * TF.js 4.22's kernel is wrong with a bias whenever it leaves XNNPACK (a transpose flag or a batch): its loop
 * adds bias[min(row * N + col, N - 1)], i.e. the last entry on every row after the first. Routing keeps biased
 * products on XNNPACK, which applies bias per output column. Bias and PReLU weights of one entry per output
 * column (or none) apply the same to every batch entry and to the folded rows, so they pass through as is;
 * other shapes stay on the original kernel.
 */
const fusedMatMul: KernelFunc = (args) => {
  const original = originalFusedMatMul!;
  const backend = asWasmBackend(args.backend);
  const { a, b, ...extra } = args.inputs as NamedTensorInfoMap & { a: TensorInfo; b: TensorInfo };
  const attrs = args.attrs ?? {};
  const transposeA = attrs['transposeA'] === true;
  const transposeB = attrs['transposeB'] === true;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
  const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  const perColumn = (t: TensorInfo | undefined): boolean => t === undefined || prod(t.shape) === n;
  if (!perColumn(extra['bias']) || !perColumn(extra['preluActivationWeights'])) return original(args);
  const p = plan(a, b, transposeA, transposeB, { bias: extra['bias'] !== undefined });
  if (p.strategy === 'original') return original(args);
  const rest: Extra = extra;
  const plain: Plain = (x, y) =>
    original({ inputs: { ...rest, a: x, b: y }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } }) as TensorInfo;
  return routed(backend, a, b, p, plain);
};

/**
 * Replaces the wasm backend's BatchMatMul and _FusedMatMul kernels with the routed ones, keeping the originals
 * (and their setup / dispose functions) to call. Idempotent.
 */
export function matMulConfigs(getKernel: (name: string) => KernelConfig | undefined): KernelConfig[] {
  const configs: KernelConfig[] = [];
  const bmm = getKernel('BatchMatMul');
  if (bmm !== undefined && bmm.kernelFunc !== batchMatMul) {
    originalBatchMatMul = bmm.kernelFunc;
    configs.push({ ...bmm, kernelFunc: batchMatMul });
  }
  const fused = getKernel('_FusedMatMul');
  if (fused !== undefined && fused.kernelFunc !== fusedMatMul) {
    originalFusedMatMul = fused.kernelFunc;
    configs.push({ ...fused, kernelFunc: fusedMatMul });
  }
  return configs;
}
