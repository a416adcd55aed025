// The hand-written ONNX encoder (src/engine/onnx/proto.ts) against the official Python `onnx` package: each graph
// below is built the same way by tools/parity/generate_onnx_fixtures.py (onnx 1.23.1, onnx.helper), whose
// SerializeToString bytes are in test/fixtures/onnx/<case>.onnx. encodeModel must write the same bytes, and the
// model must give, through OrtGraph, the outputs Python's onnxruntime 1.30.0 recorded in cases.json.
// onnx.helper.make_node sorts attributes by name, so the attributes here are listed in sorted order.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { OnnxGraph, OnnxModelOptions } from '../../../src/engine/onnx/proto.js';
import { OnnxDataType, encodeModel, floatTensor, int64Tensor } from '../../../src/engine/onnx/proto.js';
import type { OrtValue } from '../../../src/engine/onnx/runtime.js';
import { OrtGraph, configureOrt, loadOrt } from '../../../src/engine/onnx/runtime.js';

const fixtures = new URL('../../fixtures/onnx/', import.meta.url);

interface ArrayJson {
  dtype: 'float32' | 'int64';
  dims: number[];
  data: number[];
}
interface CaseJson {
  file: string;
  bytes: number;
  inputs: Record<string, ArrayJson>;
  outputs: Record<string, ArrayJson>;
}
const recorded = JSON.parse(readFileSync(new URL('cases.json', fixtures), 'utf8')) as {
  versions: Record<string, string>;
  cases: Record<string, CaseJson>;
};

const { float: F, int64: I64 } = OnnxDataType;

interface Case {
  graph: OnnxGraph;
  options?: OnnxModelOptions;
}

const cases: Record<string, Case> = {
  // No node name: encodeModel's default `${opType}_${index}` must give Python's explicit 'MatMul_0'.
  matmul: {
    graph: {
      name: 'matmul',
      nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      inputs: [
        { name: 'a', elemType: F, shape: ['m', 'k'] },
        { name: 'b', elemType: F, shape: ['k', 'n'] },
      ],
      outputs: [{ name: 'y', elemType: F, shape: ['m', 'n'] }],
    },
  },
  fused_matmul: {
    graph: {
      name: 'fused_matmul',
      nodes: [
        {
          opType: 'FusedMatMul',
          domain: 'com.microsoft',
          name: 'fused',
          inputs: ['a', 'b'],
          outputs: ['y'],
          attributes: { alpha: { float: 0.5 }, transA: 0, transB: 1 },
        },
      ],
      inputs: [
        { name: 'a', elemType: F, shape: ['m', 'k'] },
        { name: 'b', elemType: F, shape: ['n', 'k'] },
      ],
      outputs: [{ name: 'y', elemType: F, shape: ['m', 'n'] }],
    },
    options: { opset: 17, domains: { 'com.microsoft': 1 } },
  },
  transpose_slice_pad: {
    graph: {
      name: 'transpose_slice_pad',
      nodes: [
        { opType: 'Transpose', name: 'transpose', inputs: ['x'], outputs: ['t'], attributes: { perm: [0, 2, 1] } },
        { opType: 'Slice', name: 'slice', inputs: ['t', 'starts', 'ends', 'axes'], outputs: ['s'] },
        { opType: 'Pad', name: 'pad', inputs: ['s', 'pads'], outputs: ['y'], attributes: { mode: 'reflect' } },
      ],
      inputs: [{ name: 'x', elemType: F, shape: ['batch', 3, 4] }],
      outputs: [{ name: 'y', elemType: F, shape: ['batch', 2, 4] }],
      initializers: [
        { ...int64Tensor([1, 0]), name: 'starts' },
        { ...int64Tensor([3, -1]), name: 'ends' },
        { ...int64Tensor([1, 2]), name: 'axes' },
        { ...int64Tensor([0, 0, 1, 0, 0, 1]), name: 'pads' },
      ],
    },
  },
  constants: {
    graph: {
      name: 'constants',
      nodes: [
        { opType: 'Constant', name: 'const_floats', inputs: [], outputs: ['c'], attributes: { value_floats: { floats: [0.5, -1.25, 0.1] } } },
        { opType: 'Constant', name: 'const_tensor', inputs: [], outputs: ['d'], attributes: { value: floatTensor([1, -2], [2, 1]) } },
        { opType: 'Add', name: 'add', inputs: ['x', 'c'], outputs: ['xc'] },
        { opType: 'Mul', name: 'mul', inputs: ['xc', 'w'], outputs: ['xw'] },
        { opType: 'Add', name: 'add_d', inputs: ['xw', 'd'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', elemType: F, shape: [2, 3] }],
      outputs: [{ name: 'y', elemType: F, shape: [2, 3] }],
      initializers: [{ ...floatTensor([2, 0.3, -1]), name: 'w' }],
    },
  },
  reductions: {
    graph: {
      name: 'reductions',
      nodes: [
        { opType: 'ReduceMean', name: 'mean', inputs: ['x'], outputs: ['mean'], attributes: { axes: [-1], keepdims: 1 } },
        { opType: 'Sub', name: 'center', inputs: ['x', 'mean'], outputs: ['centered'] },
        { opType: 'Softmax', name: 'softmax', inputs: ['centered'], outputs: ['probs'], attributes: { axis: -1 } },
        { opType: 'ArgMax', name: 'argmax', inputs: ['x'], outputs: ['idx'], attributes: { axis: -1, keepdims: 0 } },
        { opType: 'ReduceMean', name: 'total', inputs: ['x'], outputs: ['total'], attributes: { keepdims: 0 } },
      ],
      inputs: [{ name: 'x', elemType: F, shape: [2, 'k'] }],
      outputs: [
        { name: 'probs', elemType: F, shape: [2, 'k'] },
        { name: 'idx', elemType: I64, shape: [2] },
        { name: 'total', elemType: F, shape: [] },
      ],
    },
  },
};

function fixtureBytes(name: string): Buffer {
  return readFileSync(new URL(recorded.cases[name]!.file, fixtures));
}

/** Where two byte strings first differ, with some hex either side, for a readable failure. */
function describeDiff(actual: Uint8Array, expected: Uint8Array): string {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  const hex = (b: Uint8Array): string => Buffer.from(b.subarray(Math.max(0, i - 16), i + 16)).toString('hex');
  return `lengths ${actual.length} vs ${expected.length}; first difference at byte ${i}: ts …${hex(actual)}… python …${hex(expected)}…`;
}

function toTyped(a: ArrayJson): Float32Array | BigInt64Array {
  return a.dtype === 'float32' ? Float32Array.from(a.data) : BigInt64Array.from(a.data.map((v) => BigInt(v)));
}

function ortMissing(): string | false {
  try {
    loadOrt();
    return false;
  } catch (e) {
    return `onnxruntime-node unavailable: ${(e as Error).message}`;
  }
}

describe('encodeModel against Python onnx', () => {
  test('every fixture case has a TypeScript graph and the other way round', () => {
    assert.deepEqual(Object.keys(cases).sort(), Object.keys(recorded.cases).sort());
  });

  for (const [name, c] of Object.entries(cases)) {
    test(`${name}: bytes identical to onnx ${recorded.versions.onnx}`, () => {
      const actual = encodeModel(c.graph, c.options);
      const expected = fixtureBytes(name);
      assert.equal(expected.length, recorded.cases[name]!.bytes);
      assert.equal(Buffer.compare(Buffer.from(actual), expected), 0, describeDiff(actual, expected));
    });
  }

  test('negative int attributes are ten-byte varints, as in Python', () => {
    const minusOne = 'ffffffffffffffffff01';
    // AttributeProto { name: 'axis' (field 1), i: -1 (field 3, tag 0x18), type: INT (field 20, tag a0 01) }.
    const axis = Buffer.from(`0a0461786973` + `18${minusOne}` + `a00102`, 'hex');
    // AttributeProto { name: 'axes', ints: [-1] (field 8, tag 0x40, unpacked), type: INTS (7) }.
    const axes = Buffer.from(`0a0461786573` + `40${minusOne}` + `a00107`, 'hex');
    const ts = Buffer.from(encodeModel(cases.reductions!.graph));
    const py = fixtureBytes('reductions');
    for (const [what, needle] of [
      ['axis=-1', axis],
      ['axes=[-1]', axes],
    ] as const) {
      assert.notEqual(py.indexOf(needle), -1, `python ${what}`);
      assert.notEqual(ts.indexOf(needle), -1, `ts ${what}`);
    }
    // A large negative value round-trips through the two's-complement varint too.
    const big = Buffer.from(encodeModel({ ...cases.reductions!.graph, nodes: [{ opType: 'X', inputs: [], outputs: [], attributes: { v: -(2 ** 40) } }] }));
    assert.notEqual(big.indexOf(Buffer.from('0a017618' + '8080808080e0ffffff01' + 'a00102', 'hex')), -1);
  });
});

describe('encoded models in onnxruntime-node', { skip: ortMissing() }, () => {
  configureOrt({ threads: 1 });

  for (const [name, c] of Object.entries(cases)) {
    test(`${name}: outputs match Python onnxruntime ${recorded.versions.onnxruntime}`, () => {
      const rec = recorded.cases[name]!;
      const g = new OrtGraph(c.graph, c.options);
      try {
        const inputs: OrtValue[] = g.inputNames.map((n) => ({ data: toTyped(rec.inputs[n]!), dims: rec.inputs[n]!.dims }));
        const expected = g.outputNames.map((n) => rec.outputs[n]!);
        const outputs: OrtValue[] = expected.map((e) => ({
          data: e.dtype === 'float32' ? new Float32Array(e.data.length) : new BigInt64Array(e.data.length),
          dims: e.dims,
        }));
        g.run(inputs, outputs);
        outputs.forEach((o, i) => {
          const e = expected[i]!;
          const what = `${name}.${g.outputNames[i]}`;
          if (e.dtype === 'int64') {
            assert.deepEqual(Array.from(o.data as BigInt64Array, Number), e.data, what);
            return;
          }
          const got = o.data as Float32Array;
          assert.equal(got.length, e.data.length, what);
          e.data.forEach((v, j) => assert.ok(Math.abs(got[j]! - v) <= 1e-6, `${what}[${j}]: ${got[j]} vs ${v}`));
        });
      } finally {
        g.dispose();
      }
    });
  }

  test('an unknown operator fails to load with an Error, and later graphs still work', () => {
    const bad: OnnxGraph = { ...cases.matmul!.graph, nodes: [{ opType: 'NoSuchOp', inputs: ['a', 'b'], outputs: ['y'] }] };
    assert.throws(
      () => new OrtGraph(bad),
      (e: unknown) => e instanceof Error && /NoSuchOp/.test(e.message),
    );
    const ok = new OrtGraph(cases.matmul!.graph);
    const y = new Float32Array(1);
    ok.run(
      [
        { data: Float32Array.of(2), dims: [1, 1] },
        { data: Float32Array.of(3), dims: [1, 1] },
      ],
      [{ data: y, dims: [1, 1] }],
    );
    ok.dispose();
    assert.equal(y[0], 6);
  });
});
