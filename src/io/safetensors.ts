/**
 * safetensors reading (from a file, header first then one tensor at a time, or from a buffer) and writing
 * (byte-identical to the Rust/Python writer for the same tensors and metadata).
 * Data is little-endian; like every Node platform in use, we assume a little-endian host.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { tf } from '../engine/tf.js';
import { PeftTsError, SafetensorsError, ShapeError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { bf16BitsToFloat32, f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from './float16.js';
import {
  buildHeader,
  DTYPE_SIZE,
  parseHeader,
  parseHeaderLength,
  sortForWriting,
  type ParsedHeader,
  type SafetensorsDtype,
  type TensorInfo,
} from './safetensors-header.js';

export type { SafetensorsDtype, TensorInfo } from './safetensors-header.js';

/** The natural typed array per dtype: F16/BF16 come as raw bits, BOOL as 0/1 bytes. */
export interface SafetensorsTypedArrays {
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  F64: Float64Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}
export type SafetensorsTypedArray = SafetensorsTypedArrays[SafetensorsDtype];

export type RawTensor = {
  [D in SafetensorsDtype]: { readonly dtype: D; readonly shape: readonly number[]; readonly data: SafetensorsTypedArrays[D] };
}[SafetensorsDtype];

/** Float dtypes `serializeSafetensors` can write float32 tensors as. */
export type SafetensorsFloatDtype = 'F32' | 'F16' | 'BF16';

export interface SerializeOptions {
  /** Written as `__metadata__` (PEFT and transformers write `{ format: 'pt' }`). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Dtype for float tensors (default F32). */
  readonly dtype?: SafetensorsFloatDtype;
}

export type TensorCollection = ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>;

/** Wraps exactly-sized, freshly allocated bytes (so the view is always aligned and in range). */
function viewAs(dtype: SafetensorsDtype, shape: readonly number[], bytes: Uint8Array): RawTensor {
  const { buffer, byteOffset, byteLength } = bytes;
  const n = byteLength / DTYPE_SIZE[dtype];
  const s = [...shape];
  switch (dtype) {
    case 'F32': return { dtype, shape: s, data: new Float32Array(buffer, byteOffset, n) };
    case 'F16': return { dtype, shape: s, data: new Uint16Array(buffer, byteOffset, n) };
    case 'BF16': return { dtype, shape: s, data: new Uint16Array(buffer, byteOffset, n) };
    case 'F64': return { dtype, shape: s, data: new Float64Array(buffer, byteOffset, n) };
    case 'I64': return { dtype, shape: s, data: new BigInt64Array(buffer, byteOffset, n) };
    case 'I32': return { dtype, shape: s, data: new Int32Array(buffer, byteOffset, n) };
    case 'I16': return { dtype, shape: s, data: new Int16Array(buffer, byteOffset, n) };
    case 'I8': return { dtype, shape: s, data: new Int8Array(buffer, byteOffset, n) };
    case 'U8': return { dtype, shape: s, data: new Uint8Array(buffer, byteOffset, n) };
    case 'BOOL': return { dtype, shape: s, data: new Uint8Array(buffer, byteOffset, n) };
  }
}

/**
 * Converts to a tf.Tensor: float dtypes -> float32, integer dtypes -> int32 (I64 must fit), BOOL -> bool.
 * F64 values beyond the float32 range become ±Inf, as `torch.float64 -> float32` does.
 */
export function rawToTensor(raw: RawTensor, name = '<tensor>', path?: string): tf.Tensor {
  const shape = [...raw.shape];
  switch (raw.dtype) {
    case 'F32': return tf.tensor(raw.data, shape, 'float32');
    case 'F16': return tf.tensor(f16BitsToFloat32(raw.data), shape, 'float32');
    case 'BF16': return tf.tensor(bf16BitsToFloat32(raw.data), shape, 'float32');
    case 'F64': return tf.tensor(Float32Array.from(raw.data), shape, 'float32');
    case 'I64': {
      const out = new Int32Array(raw.data.length);
      for (let i = 0; i < raw.data.length; i++) {
        const v = raw.data[i]!;
        if (v < -2147483648n || v > 2147483647n) {
          throw new SafetensorsError('value_out_of_range', `tensor "${name}": I64 value ${v} at index ${i} does not fit int32, the widest integer dtype of TensorFlow.js`, { path });
        }
        out[i] = Number(v);
      }
      return tf.tensor(out, shape, 'int32');
    }
    case 'I32': return tf.tensor(raw.data, shape, 'int32');
    case 'I16':
    case 'I8':
    case 'U8': return tf.tensor(Int32Array.from(raw.data), shape, 'int32');
    case 'BOOL': return tf.tensor(raw.data.map((v) => (v ? 1 : 0)), shape, 'bool');
  }
}

/** What the file and the buffer readers share: the validated header. */
abstract class SafetensorsHeaderView {
  protected constructor(
    protected readonly header: ParsedHeader,
    readonly path: string | undefined,
  ) {}

  /** `__metadata__` of the file (empty when absent). */
  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(key: string): boolean {
    return this.header.tensors.has(key);
  }

  /** dtype, shape and byte range of one tensor, without reading it. */
  info(key: string): TensorInfo {
    const info = this.header.tensors.get(key);
    if (!info) {
      const known = this.keys();
      const list = known.slice(0, 5).join(', ') + (known.length > 5 ? `, ... (${known.length} in all)` : '');
      throw new SafetensorsError('missing_tensor', `no tensor named "${key}" (tensors: ${list || 'none'})`, { path: this.path });
    }
    return info;
  }
}

const MAX_READ_CHUNK = 1 << 30; // positional reads are int32-sized in libuv

async function readExactly(fh: FileHandle, position: number, length: number, path: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(out, done, Math.min(length - done, MAX_READ_CHUNK), position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError('truncated', `unexpected end of file at byte ${position + done} (was the file changed while open?)`, { byteOffset: position + done, path });
    }
    done += bytesRead;
  }
  return out;
}

/** A safetensors file on disk: `open` reads and validates only the header; tensors are read one at a time. */
export class SafetensorsFile extends SafetensorsHeaderView {
  private fh: FileHandle | undefined;

  private constructor(fh: FileHandle, header: ParsedHeader, path: string) {
    super(header, path);
    this.fh = fh;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const prefix = await readExactly(fh, 0, Math.min(8, size), path);
      const n = parseHeaderLength(prefix, size, path);
      const header = parseHeader(await readExactly(fh, 8, n, path), size, path);
      return new SafetensorsFile(fh, header, path);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Reads one tensor's bytes (and only those) into its natural typed array. */
  async readRaw(key: string): Promise<RawTensor> {
    const info = this.info(key);
    if (!this.fh) throw new PeftTsError('safetensors', `${this.path}: file is closed`);
    const [begin, end] = info.byteRange;
    return viewAs(info.dtype, info.shape, await readExactly(this.fh, begin, end - begin, this.path!));
  }

  async readTensor(key: string): Promise<tf.Tensor> {
    return rawToTensor(await this.readRaw(key), key, this.path);
  }

  /** Every tensor, read one by one so peak memory stays near the file size (not twice it). */
  async readAll(): Promise<Map<string, tf.Tensor>> {
    const out = new Map<string, tf.Tensor>();
    try {
      for (const key of this.keys()) out.set(key, await this.readTensor(key));
    } catch (e) {
      for (const t of out.values()) t.dispose();
      throw e;
    }
    return out;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/** A safetensors file already in memory. Reads copy the tensor's bytes, so the result never aliases `bytes`. */
export class SafetensorsBuffer extends SafetensorsHeaderView {
  private constructor(
    private readonly bytes: Uint8Array,
    header: ParsedHeader,
    path: string | undefined,
  ) {
    super(header, path);
  }

  static parse(bytes: Uint8Array, path?: string): SafetensorsBuffer {
    const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length, path);
    return new SafetensorsBuffer(bytes, parseHeader(bytes.subarray(8, 8 + n), bytes.length, path), path);
  }

  readRaw(key: string): RawTensor {
    const info = this.info(key);
    // explicit copy: Buffer#slice would alias (and possibly misalign) instead of copying
    const copy = new Uint8Array(info.byteRange[1] - info.byteRange[0]);
    copy.set(this.bytes.subarray(info.byteRange[0], info.byteRange[1]));
    return viewAs(info.dtype, info.shape, copy);
  }

  readTensor(key: string): tf.Tensor {
    return rawToTensor(this.readRaw(key), key, this.path);
  }

  readAll(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    try {
      for (const key of this.keys()) out.set(key, this.readTensor(key));
    } catch (e) {
      for (const t of out.values()) t.dispose();
      throw e;
    }
    return out;
  }
}

/** Parses an in-memory safetensors file (same validation as `SafetensorsFile.open`). */
export function parseSafetensors(bytes: Uint8Array, path?: string): SafetensorsBuffer {
  return SafetensorsBuffer.parse(bytes, path);
}

/** Opens, reads every tensor, closes. */
export async function loadSafetensors(path: string): Promise<Map<string, tf.Tensor>> {
  const file = await SafetensorsFile.open(path);
  try {
    return await file.readAll();
  } finally {
    await file.close();
  }
}

// ---------------------------------------------------------------------------------------------- writing

interface WriteEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Produced only when copied into the output, so at most one converted tensor exists at a time. */
  readonly bytes: () => Uint8Array;
}

function entriesOf<T>(tensors: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return tensors instanceof Map ? [...(tensors as ReadonlyMap<string, T>).entries()] : Object.entries(tensors as Record<string, T>);
}

function asBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function serializeEntries(entries: readonly WriteEntry[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const sorted = sortForWriting(entries);
  const { prefix, dataLength } = buildHeader(sorted, metadata);
  const out = new Uint8Array(prefix.length + dataLength);
  out.set(prefix);
  let offset = prefix.length;
  for (const e of sorted) {
    out.set(e.bytes(), offset);
    offset += e.byteLength;
  }
  return out;
}

/** The safetensors dtype a tf.Tensor is written as. */
export function safetensorsDtypeFor(t: tf.Tensor, floatDtype: SafetensorsFloatDtype = 'F32'): SafetensorsDtype {
  switch (t.dtype) {
    case 'float32': return floatDtype;
    case 'int32': return 'I32';
    case 'bool': return 'BOOL';
    default:
      throw new SafetensorsError('unknown_dtype', `cannot write a ${t.dtype} tensor to safetensors (float32, int32 and bool are supported)`);
  }
}

/** Bytes `t` takes when written with `serializeSafetensors` (used to plan shards). */
export function safetensorsByteLength(t: tf.Tensor, floatDtype: SafetensorsFloatDtype = 'F32'): number {
  return t.size * DTYPE_SIZE[safetensorsDtypeFor(t, floatDtype)];
}

function tensorBytes(t: tf.Tensor, dtype: SafetensorsDtype): Uint8Array {
  const values = t.dataSync();
  switch (dtype) {
    case 'F16': return asBytes(float32ToF16Bits(values as Float32Array));
    case 'BF16': return asBytes(float32ToBf16Bits(values as Float32Array));
    case 'BOOL': return Uint8Array.from(values as Uint8Array, (v) => (v ? 1 : 0));
    default: return asBytes(values as Float32Array | Int32Array); // F32 / I32: already the on-disk layout
  }
}

/**
 * Serializes tensors to safetensors bytes: float32 as `options.dtype` (default F32), int32 as I32, bool as BOOL.
 * Ordering, offsets, JSON and padding match the Python `safetensors` writer.
 */
export function serializeSafetensors(tensors: TensorCollection, options: SerializeOptions = {}): Uint8Array {
  const entries = entriesOf(tensors).map(([name, t]): WriteEntry => {
    const dtype = safetensorsDtypeFor(t, options.dtype);
    return { name, dtype, shape: t.shape, byteLength: t.size * DTYPE_SIZE[dtype], bytes: () => tensorBytes(t, dtype) };
  });
  return serializeEntries(entries, options.metadata);
}

const TYPED_ARRAY_OF: Readonly<Record<SafetensorsDtype, abstract new (...args: never[]) => ArrayBufferView>> = {
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F64: Float64Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** Serializes raw typed arrays in any supported dtype (the inverse of `readRaw`). */
export function serializeRawSafetensors(
  tensors: ReadonlyMap<string, RawTensor> | Readonly<Record<string, RawTensor>>,
  options: { readonly metadata?: Readonly<Record<string, string>> } = {},
): Uint8Array {
  const entries = entriesOf(tensors).map(([name, raw]): WriteEntry => {
    const numel = raw.shape.reduce((a, d) => a * d, 1);
    if (!(raw.data instanceof TYPED_ARRAY_OF[raw.dtype])) {
      throw new SafetensorsError('unknown_dtype', `tensor "${name}": ${raw.dtype} data must be a ${TYPED_ARRAY_OF[raw.dtype].name}`);
    }
    if (raw.data.length !== numel) {
      throw new ShapeError(`tensor "${name}": shape [${raw.shape.join(', ')}] needs ${numel} elements but data has ${raw.data.length}`);
    }
    return { name, dtype: raw.dtype, shape: raw.shape, byteLength: raw.data.byteLength, bytes: () => asBytes(raw.data) };
  });
  return serializeEntries(entries, options.metadata);
}

/** Serializes and writes atomically (a crash never leaves a half-written file at `path`). */
export async function saveSafetensors(path: string, tensors: TensorCollection, options: SerializeOptions = {}): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, options));
}
