// The few ONNX protobuf messages peft-ts writes (ModelProto and what a graph of plain nodes needs), encoded by
// hand: the graphs are tiny, built in code, and this is the engine's core, so no schema compiler or runtime.
// Field numbers are those of onnx/onnx.proto (IR version 8). Repeated scalars are written unpacked, as that
// proto2 file declares them (parsers accept both).

/** ONNX TensorProto.DataType values used here. */
export const OnnxDataType = { float: 1, uint8: 2, int32: 6, int64: 7, bool: 9 } as const;
export type OnnxElemType = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** One dimension of a graph input/output: a fixed size, or a name for a size given at run time. */
export type OnnxDim = number | string;

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxElemType;
  /** Undefined: rank unknown. */
  shape?: readonly OnnxDim[];
}

export type OnnxAttribute = number | string | readonly number[] | { floats: readonly number[] } | { float: number } | OnnxTensor;

export interface OnnxTensor {
  kind: 'tensor';
  name?: string;
  elemType: OnnxElemType;
  dims: readonly number[];
  /** Little-endian raw bytes of the values. */
  raw: Uint8Array;
}

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Integers (or integer lists) are INT/INTS; `{ float }` / `{ floats }` FLOAT/FLOATS; strings STRING. */
  attributes?: Readonly<Record<string, OnnxAttribute>>;
  domain?: string;
  name?: string;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers?: readonly OnnxTensor[];
}

export interface OnnxModelOptions {
  /** Opset of the default domain. */
  opset?: number;
  /** Extra domains, e.g. `{ 'com.microsoft': 1 }` for ONNX Runtime's contrib operators. */
  domains?: Readonly<Record<string, number>>;
}

export const defaultOpset = 17;
const irVersion = 8;

const utf8 = new TextEncoder();

/** A growable protobuf writer. */
class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(value: number | bigint): void {
    // Negative int64 values are ten bytes of two's complement.
    let v = BigInt.asUintN(64, BigInt(value));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  private tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    this.reserve(4);
    new DataView(this.buf.buffer, this.len, 4).setFloat32(0, value, true);
    this.len += 4;
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
  }

  string(field: number, value: string): void {
    this.bytes(field, utf8.encode(value));
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function writeTensor(w: Writer, t: OnnxTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.elemType);
  if (t.name !== undefined) w.string(8, t.name);
  w.bytes(9, t.raw);
}

function isNumberList(value: OnnxAttribute): value is readonly number[] {
  return Array.isArray(value);
}

function writeAttribute(w: Writer, name: string, value: OnnxAttribute): void {
  w.string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError(`ONNX attribute ${name}: ${value} is not an integer; use { float }`);
    w.int(3, value);
    w.int(20, AttributeType.INT);
  } else if (typeof value === 'string') {
    w.string(4, value);
    w.int(20, AttributeType.STRING);
  } else if (isNumberList(value)) {
    for (const v of value) w.int(8, v);
    w.int(20, AttributeType.INTS);
  } else if ('float' in value) {
    w.float(2, value.float);
    w.int(20, AttributeType.FLOAT);
  } else if ('floats' in value) {
    for (const v of value.floats) w.float(7, v);
    w.int(20, AttributeType.FLOATS);
  } else {
    w.message(5, (m) => writeTensor(m, value));
    w.int(20, AttributeType.TENSOR);
  }
}

function writeNode(w: Writer, node: OnnxNode, index: number): void {
  for (const i of node.inputs) w.string(1, i);
  for (const o of node.outputs) w.string(2, o);
  w.string(3, node.name ?? `${node.opType}_${index}`);
  w.string(4, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) w.message(5, (m) => writeAttribute(m, name, value));
  if (node.domain !== undefined && node.domain !== '') w.string(7, node.domain);
}

function writeValueInfo(w: Writer, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensorType) => {
      tensorType.int(1, v.elemType);
      if (v.shape === undefined) return;
      tensorType.message(2, (shape) => {
        for (const d of v.shape ?? []) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

/** Serialises a single-graph ONNX model. */
export function encodeModel(graph: OnnxGraph, options: OnnxModelOptions = {}): Uint8Array {
  const w = new Writer();
  w.int(1, irVersion);
  w.string(2, 'peft-ts');
  w.message(7, (g) => {
    graph.nodes.forEach((node, i) => g.message(1, (n) => writeNode(n, node, i)));
    g.string(2, graph.name);
    for (const t of graph.initializers ?? []) g.message(5, (m) => writeTensor(m, t));
    for (const v of graph.inputs) g.message(11, (m) => writeValueInfo(m, v));
    for (const v of graph.outputs) g.message(12, (m) => writeValueInfo(m, v));
  });
  w.message(8, (m) => m.int(2, options.opset ?? defaultOpset));
  for (const [domain, version] of Object.entries(options.domains ?? {})) {
    w.message(8, (m) => {
      m.string(1, domain);
      m.int(2, version);
    });
  }
  return w.finish();
}

/** An int64 tensor constant (shapes, axes). */
export function int64Tensor(values: readonly number[], dims: readonly number[] = [values.length]): OnnxTensor {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { kind: 'tensor', elemType: OnnxDataType.int64, dims, raw };
}

/** A float32 tensor constant. */
export function floatTensor(values: readonly number[], dims: readonly number[] = [values.length]): OnnxTensor {
  const raw = new Uint8Array(Float32Array.from(values).buffer);
  return { kind: 'tensor', elemType: OnnxDataType.float, dims, raw };
}
