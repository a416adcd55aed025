// Gradients of Linear, Conv2d and Embedding: against PyTorch's autograd, between the cpu and wasm backends,
// and against central finite differences on cpu. Loss = sum(layer(x) * G) with a fixed G.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import type { BackendName } from '../../src/engine/index.js';
import { tf } from '../../src/engine/tf.js';
import { Conv2d, Embedding, Linear } from '../../src/nn/index.js';
import type { Parameter } from '../../src/nn/index.js';
import { assertAllClose } from '../helpers/assert.js';
import { convOptions, ref, toTensor } from './_reference.js';
import type { RefTensor } from './_reference.js';

process.env['PEFT_TS_QUIET'] = '1';

const TOL = { atol: 1e-4, rtol: 1e-4 };

interface GradLayer {
  forward(x: tf.Tensor): tf.Tensor;
  loadStateDict(d: Record<string, tf.Tensor>): unknown;
  dispose(): void;
  requiresGrad(value?: boolean): unknown;
  readonly weight: Parameter;
  readonly bias?: Parameter | null;
}

interface GradCase {
  name: string;
  /** Kernels the wasm backend needs for this case's backward pass. */
  wasmKernels: string[];
  make(): GradLayer;
  state: Record<string, RefTensor>;
  x: RefTensor;
  xDtype: 'float32' | 'int32';
  G: RefTensor;
  expected: { dweight: RefTensor; dbias?: RefTensor; dx?: RefTensor };
  /** Weight entries whose true derivative PyTorch deliberately zeroes (the padding row). */
  zeroGradWeight?: (index: number) => boolean;
}

const cases: GradCase[] = [
  {
    name: 'Linear',
    wasmKernels: [],
    make: () => new Linear(4, 5),
    state: { weight: ref.linear_grad.weight, bias: ref.linear_grad.bias },
    x: ref.linear_grad.x,
    xDtype: 'float32',
    G: ref.linear_grad.G,
    expected: { dweight: ref.linear_grad.dweight, dbias: ref.linear_grad.dbias, dx: ref.linear_grad.dx },
  },
  ...ref.conv2d_grad.map(
    (c): GradCase => ({
      name: `Conv2d ${c.name}`,
      wasmKernels:
        c.options.groups === c.in
          ? ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']
          : ['Conv2DBackpropFilter', 'Conv2DBackpropInput'],
      make: () => new Conv2d(c.in, c.out, c.kernel as number, convOptions(c)),
      state: { weight: c.weight, bias: c.bias },
      x: c.x,
      xDtype: 'float32',
      G: c.G,
      expected: { dweight: c.dweight, dbias: c.dbias, dx: c.dx },
    }),
  ),
  {
    name: 'Embedding (padding_idx row gets no gradient)',
    wasmKernels: ['UnsortedSegmentSum'],
    make: () => new Embedding(6, 3, { paddingIdx: ref.embedding_grad.paddingIdx }),
    state: { weight: ref.embedding_grad.weight },
    x: ref.embedding_grad.ids,
    xDtype: 'int32',
    G: ref.embedding_grad.G,
    expected: { dweight: ref.embedding_grad.dweight },
    zeroGradWeight: (i) => Math.floor(i / 3) === ref.embedding_grad.paddingIdx,
  },
];

interface Grads {
  dweight: number[];
  dbias?: number[];
  dx?: number[];
}

function buildLayer(c: GradCase): GradLayer {
  const layer = c.make();
  const state = Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, toTensor(v)]));
  layer.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  return layer;
}

async function gradsOn(backend: BackendName, c: GradCase): Promise<Grads> {
  await setBackend(backend);
  const layer = buildLayer(c);
  const G = toTensor(c.G);
  const x = c.xDtype === 'float32' ? tf.variable(toTensor(c.x), true) : toTensor(c.x, 'int32');
  const vars: tf.Variable[] = [layer.weight];
  if (layer.bias) vars.push(layer.bias);
  if (x instanceof tf.Variable) vars.push(x);
  const tensorsBefore = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(x), G)) as tf.Scalar, vars);
  const out: Grads = { dweight: [...grads[layer.weight.name]!.dataSync()] };
  if (layer.bias) out.dbias = [...grads[layer.bias.name]!.dataSync()];
  if (x instanceof tf.Variable) out.dx = [...grads[x.name]!.dataSync()];
  value.dispose();
  for (const g of Object.values(grads)) g.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore, `${c.name} backward on ${backend} leaked tensors`);
  layer.dispose();
  x.dispose();
  G.dispose();
  return out;
}

function compare(actual: Grads, expected: { dweight: RefTensor | number[]; dbias?: RefTensor | number[]; dx?: RefTensor | number[] }, what: string) {
  const data = (t: RefTensor | number[]) => (Array.isArray(t) ? t : t.data);
  assertAllClose(actual.dweight, data(expected.dweight), TOL, `${what} dweight`);
  if (expected.dbias) assertAllClose(actual.dbias!, data(expected.dbias), TOL, `${what} dbias`);
  if (expected.dx) assertAllClose(actual.dx!, data(expected.dx), TOL, `${what} dx`);
}

/** Central differences of the loss along a few coordinates of `target` (restored afterwards). */
function finiteDifferences(loss: () => number, target: tf.Variable, indices: number[], eps = 1e-2): number[] {
  const original = target.dataSync().slice();
  const at = (i: number, delta: number) => {
    const values = original.slice();
    values[i] = values[i]! + delta;
    const t = tf.tensor(values, target.shape);
    target.assign(t);
    t.dispose();
    return loss();
  };
  const out = indices.map((i) => (at(i, eps) - at(i, -eps)) / (2 * eps));
  const restore = tf.tensor(original, target.shape);
  target.assign(restore);
  restore.dispose();
  return out;
}

function sampleIndices(size: number, count: number): number[] {
  if (size <= count * 2) return Array.from({ length: size }, (_, i) => i);
  return Array.from({ length: count }, (_, k) => Math.floor(((k + 0.5) * size) / count));
}

// Which wasm kernels exist decides whether the wasm comparisons are expected to pass yet.
await setBackend('wasm');
const missingOnWasm = (kernels: string[]) => kernels.filter((k) => !tf.getKernel(k, 'wasm'));

describe('gradients', () => {
  for (const c of cases) {
    test(`${c.name}: cpu gradients match PyTorch`, async () => {
      compare(await gradsOn('cpu', c), c.expected, `${c.name} cpu`);
    });

    test(`${c.name}: cpu gradients match finite differences`, async () => {
      await setBackend('cpu');
      const layer = buildLayer(c);
      const G = toTensor(c.G);
      const x = c.xDtype === 'float32' ? tf.variable(toTensor(c.x), true) : toTensor(c.x, 'int32');
      const loss = () => tf.tidy(() => tf.sum(tf.mul(layer.forward(x), G)).dataSync()[0]!);
      const targets: Array<[string, tf.Variable, RefTensor]> = [['dweight', layer.weight, c.expected.dweight]];
      if (layer.bias && c.expected.dbias) targets.push(['dbias', layer.bias, c.expected.dbias]);
      if (x instanceof tf.Variable && c.expected.dx) targets.push(['dx', x, c.expected.dx]);
      for (const [what, target, expected] of targets) {
        const skip = what === 'dweight' ? c.zeroGradWeight : undefined;
        const indices = sampleIndices(target.size, 8).filter((i) => !skip?.(i));
        const fd = finiteDifferences(loss, target, indices);
        const analytic = (await gradsOn('cpu', c))[what as keyof Grads]!;
        assertAllClose(fd, indices.map((i) => analytic[i]!), { atol: 2e-3, rtol: 2e-3 }, `${c.name} ${what} vs finite differences`);
        assertAllClose(fd, indices.map((i) => expected.data[i]!), { atol: 2e-3, rtol: 2e-3 }, `${c.name} ${what} FD vs PyTorch`);
      }
      layer.dispose();
      x.dispose();
      G.dispose();
    });

    const missing = missingOnWasm(c.wasmKernels);
    const todo = missing.length
      ? `wasm backend lacks gradient kernel(s) ${missing.join(', ')} (being added in src/engine/kernels); passes once they are registered`
      : undefined;
    test(`${c.name}: wasm gradients match cpu and PyTorch`, { todo }, async () => {
      let wasm: Grads;
      try {
        wasm = await gradsOn('wasm', c);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        if (/not registered|gradient function not found/i.test(message)) {
          assert.fail(`missing wasm kernel (engine gap, not an nn bug): ${message}`);
        }
        throw e;
      }
      const cpu = await gradsOn('cpu', c);
      compare(wasm, { dweight: cpu.dweight, dbias: cpu.dbias, dx: cpu.dx }, `${c.name} wasm vs cpu`);
      compare(wasm, c.expected, `${c.name} wasm vs PyTorch`);
    });
  }

  // With frozen weights (the LoRA case) only the input gradient is taken: no filter-gradient kernel is needed.
  for (const c of cases.filter((k) => k.name.startsWith('Conv2d'))) {
    const inputKernel = c.wasmKernels.filter((k) => k.endsWith('BackpropInput'));
    const missing = missingOnWasm(inputKernel);
    const todo = missing.length ? `wasm backend lacks kernel(s) ${missing.join(', ')} (being added in src/engine/kernels)` : undefined;
    test(`${c.name}: frozen weights, input gradient on wasm matches PyTorch`, { todo }, async () => {
      await setBackend('wasm');
      const layer = buildLayer(c);
      layer.requiresGrad(false);
      const G = toTensor(c.G);
      const x = tf.variable(toTensor(c.x), true);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(x), G)) as tf.Scalar, [x]);
      assertAllClose(grads[x.name]!, c.expected.dx!.data, TOL, `${c.name} wasm dx`);
      value.dispose();
      for (const g of Object.values(grads)) g.dispose();
      layer.dispose();
      x.dispose();
      G.dispose();
    });
  }

  test('Embedding: the padding row gets exactly zero gradient, other rows sum their positions', async () => {
    const r = ref.embedding_grad;
    const grads = await gradsOn('cpu', cases[cases.length - 1]!);
    const dw = grads.dweight;
    assert.deepEqual(dw.slice(3, 6), [0, 0, 0]);
    // row 0 appears at positions (0,0) and (1,2): its gradient is G[0,0] + G[1,2]
    const g = r.G.data;
    assertAllClose(dw.slice(0, 3), [0, 1, 2].map((j) => g[0 * 3 + j]! + g[5 * 3 + j]!));
    // without padding_idx the padding row does get its gradient
    await setBackend('cpu');
    const plain = new Embedding(6, 3);
    const w = toTensor(r.weight);
    plain.loadStateDict({ weight: w });
    w.dispose();
    const ids = toTensor(r.ids, 'int32');
    const G = toTensor(r.G);
    const { value, grads: g2 } = tf.variableGrads(() => tf.sum(tf.mul(plain.forward(ids), G)) as tf.Scalar, [plain.weight]);
    const row1 = [...g2[plain.weight.name]!.dataSync()].slice(3, 6);
    assertAllClose(row1, [0, 1, 2].map((j) => g[1 * 3 + j]! + g[3 * 3 + j]!));
    value.dispose();
    plain.dispose();
  });
});
