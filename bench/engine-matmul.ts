// Matmul micro-benchmark for the engine's routing of wasm BatchMatMul / _FusedMatMul (src/engine/kernels/
// matmul.ts): GFLOPS of each transpose form and batching with TF.js's own kernel ("before", routing off) and
// with peft-ts's routing ("after"), then forward vs forward+backward time of a stack of Linear layers.
// Usage: npx tsx bench/engine-matmul.ts [--backend wasm|cpu] [--threads N] [--quick]
import { parseArgs } from 'node:util';
import { setBackend, tf } from '../src/engine/index.js';
import type { BackendName } from '../src/engine/index.js';
import { setMatMulRouting } from '../src/engine/kernels/matmul.js';
import { asWasmBackend, transposeLastTwo } from '../src/engine/kernels/wasm-backend.js';
import type { MatMulRouting } from '../src/engine/kernels/matmul.js';
import { configureWasm, wasmThreads } from '../src/engine/wasm.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    threads: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const backend = values.backend as BackendName;
process.env['PEFT_TS_QUIET'] = '1';
if (backend === 'wasm' && values.threads !== undefined) await configureWasm({ threads: Number(values.threads) });
await setBackend(backend);
const slowBackend = backend === 'cpu';
const budgetMs = values.quick ? 300 : 1000;

/**
 * Fastest of repeated runs of `fn`, in ms, within the time budget (after a warm-up run, which counts when it
 * alone exceeds the budget). The minimum is the figure least disturbed by other load on the machine.
 */
function time(fn: () => tf.Tensor | tf.Tensor[]): number {
  const run = (): number => {
    const start = performance.now();
    const out = fn();
    for (const t of Array.isArray(out) ? out : [out]) {
      t.dataSync();
      t.dispose();
    }
    return performance.now() - start;
  };
  const first = run();
  if (first > budgetMs) return Math.min(first, run());
  let best = Infinity;
  const until = performance.now() + budgetMs;
  let n = 0;
  do {
    best = Math.min(best, run());
    n++;
  } while (performance.now() < until && n < 30);
  return best;
}

function withRouting<T>(mode: MatMulRouting, fn: () => T): T {
  const previous = setMatMulRouting(mode);
  try {
    return fn();
  } finally {
    setMatMulRouting(previous);
  }
}

interface Case {
  name: string;
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
  fused?: boolean;
}

function shapeOf(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return transposed ? [...batch, cols, rows] : [...batch, rows, cols];
}

const scale = slowBackend ? 4 : 1;
const [M, K, N] = [1024 / scale, 768 / scale, 3072 / scale];
const cases: Case[] = [];
for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
  const form = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
  cases.push({ name: `2D ${form} ${M}x${K}x${N}`, a: shapeOf([], M, K, ta), b: shapeOf([], K, N, tb), ta, tb });
}
cases.push({ name: `2D NT 1x${K}x${N} (one token)`, a: [1, K], b: [N, K], ta: false, tb: true });
cases.push({ name: `2D NT 16x${K}x${N}`, a: [16, K], b: [N, K], ta: false, tb: true });
cases.push({ name: `fused NT+bias+relu ${M}x${K}x${N}`, a: [1, M, K], b: [1, N, K], ta: false, tb: true, fused: true });
const [B, S, H, D] = [4, 256 / scale, 768 / scale, 64];
cases.push({ name: `[${B},${S},${H}] @ [${H},${N}] NN`, a: [B, S, H], b: [H, N], ta: false, tb: false });
cases.push({ name: `[${B},${S},${H}]^T @ [${B},${S},${N}] TN (dW)`, a: [B, S, H], b: [B, S, N], ta: true, tb: false });
cases.push({ name: `[${B * 12},${S},${D}] @ [${B * 12},${S},${D}]^T NT (scores)`, a: [B * 12, S, D], b: [B * 12, S, D], ta: false, tb: true });
cases.push({ name: `[${B * 12},${S},${S}] @ [${B * 12},${S},${D}] NN (context)`, a: [B * 12, S, S], b: [B * 12, S, D], ta: false, tb: false });
cases.push({ name: `[${S},${H}] @ [${B},${H},${N}] NN (shared a)`, a: [S, H], b: [B, H, N], ta: false, tb: false });

console.log(`backend ${backend}${backend === 'wasm' ? `, ${wasmThreads() ?? 1} thread(s)` : ''}\n`);
console.log('| matmul | before GFLOPS | after GFLOPS | speed-up |');
console.log('|---|---:|---:|---:|');
for (const c of cases) {
  const a = tf.randomNormal(c.a);
  const b = tf.randomNormal(c.b);
  const n = c.tb ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
  const bias = tf.randomNormal([n]);
  const m = c.ta ? c.a[c.a.length - 1]! : c.a[c.a.length - 2]!;
  const k = c.ta ? c.a[c.a.length - 2]! : c.a[c.a.length - 1]!;
  const batch = Math.max(c.a.slice(0, -2).reduce((x, y) => x * y, 1), c.b.slice(0, -2).reduce((x, y) => x * y, 1));
  const flops = 2 * batch * m * k * n;
  const run = (): tf.Tensor =>
    c.fused
      ? tf.fused.matMul({ a, b, transposeA: c.ta, transposeB: c.tb, bias, activation: 'relu' })
      : tf.matMul(a, b, c.ta, c.tb);
  const before = withRouting('never', () => time(run));
  const after = withRouting('auto', () => time(run));
  const g = (ms: number): string => (flops / ms / 1e6).toFixed(1);
  console.log(`| ${c.name} | ${g(before)} | ${g(after)} | ${(before / after).toFixed(1)}x |`);
  tf.dispose([a, b, bias]);
}

if (backend === 'wasm') {
  console.log('\n| transpose (swap last two dims) | Transpose kernel ns/element | peft-ts transposeLastTwo ns/element |');
  console.log('|---|---:|---:|');
  for (const shape of [[768, 3072], [3072, 768], [1024, 768], [48, 256, 64]]) {
    const x = tf.randomNormal(shape);
    const perm = shape.map((_, i) => i);
    [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1]!, perm[perm.length - 2]!];
    const wasm = asWasmBackend(tf.backend());
    // Both are synchronous on wasm; neither result is read back, so only the transposes are timed.
    const best = (fn: () => void): number => {
      fn();
      let ms = Infinity;
      for (let i = 0; i < 10; i++) {
        const start = performance.now();
        fn();
        ms = Math.min(ms, performance.now() - start);
      }
      return ms;
    };
    const kernel = best(() => (tf.engine().runKernel('Transpose', { x }, { perm }) as tf.Tensor).dispose());
    const ours = best(() => wasm.disposeData(transposeLastTwo(wasm, x).dataId));
    const per = (ms: number): string => ((ms * 1e6) / x.size).toFixed(1);
    console.log(`| [${shape}] | ${per(kernel)} | ${per(ours)} |`);
    x.dispose();
  }
}

// A stack of 4 Linear layers (768 -> 3072 -> 768 -> 3072 -> 768) on x [1024, 768], loss = sum(y * y).
// Weights both in TF layout [in, out] (forward is NN) and in PyTorch layout [out, in] (forward is x @ W^T, as
// src/nn/linear.ts does); the backward pass takes gradients with respect to the weights and x.
const widths = [768, 3072, 768, 3072, 768].map((w) => w / scale);
const x = tf.randomNormal([1024 / scale, widths[0]!]);
for (const layout of ['[in,out]', '[out,in]'] as const) {
  const torch = layout === '[out,in]';
  const ws = widths.slice(1).map((out, i) => tf.randomNormal(torch ? [out, widths[i]!] : [widths[i]!, out], 0, 0.02));
  const forward = (input: tf.Tensor, weights: tf.Tensor[]): tf.Tensor => {
    let h = input;
    for (const w of weights) h = tf.matMul(h, w, false, torch);
    return h;
  };
  const fwd = (): tf.Tensor => tf.tidy(() => tf.sum(tf.square(forward(x, ws))));
  const lossAndGrads = tf.valueAndGrads((input: tf.Tensor, ...weights: tf.Tensor[]) => tf.sum(tf.square(forward(input, weights))));
  const step = (): tf.Tensor[] => tf.tidy(() => {
    const { value, grads } = lossAndGrads([x, ...ws]);
    return [value, ...grads];
  });
  console.log(`\nLinear stack ${widths.join('->')} on [${x.shape}], weights ${layout}:`);
  console.log('| routing | forward ms | forward+backward ms | ratio |');
  console.log('|---|---:|---:|---:|');
  for (const mode of ['never', 'auto'] as const) {
    const f = withRouting(mode, () => time(fwd));
    const fb = withRouting(mode, () => time(step));
    console.log(`| ${mode === 'never' ? 'before (TF.js kernels)' : 'after (routed)'} | ${f.toFixed(0)} | ${fb.toFixed(0)} | ${(fb / f).toFixed(2)}x |`);
  }
  tf.dispose(ws);
}
