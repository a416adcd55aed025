/**
 * NumPy `.npy` files (format 1.0 / 2.0 / 3.0), little-endian, C order. Written headers are byte-identical to
 * `np.save` (same dict text, growth padding and 64-byte alignment), so files diff cleanly against Python's.
 */
import { readFile } from 'node:fs/promises';
import { tf } from '../engine/tf.js';
import { NpyError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { f16BitsToFloat32 } from './float16.js';

export interface NpyTypedArrays {
  float32: Float32Array;
  float64: Float64Array;
  /** IEEE binary16 as raw bits (see `f16BitsToFloat32`). */
  float16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  /** 0/1 bytes. */
  bool: Uint8Array;
}
export type NpyDtype = keyof NpyTypedArrays;
export type NpyArray = { [D in NpyDtype]: { readonly dtype: D; readonly shape: readonly number[]; readonly data: NpyTypedArrays[D] } }[NpyDtype];

const DESCR: Readonly<Record<NpyDtype, string>> = {
  float32: '<f4',
  float64: '<f8',
  float16: '<f2',
  int32: '<i4',
  int64: '<i8',
  uint8: '|u1',
  bool: '|b1',
};
const FROM_DESCR: ReadonlyMap<string, NpyDtype> = new Map(Object.entries(DESCR).map(([d, s]) => [s, d as NpyDtype]));
const ITEMSIZE: Readonly<Record<NpyDtype, number>> = { float32: 4, float64: 8, float16: 2, int32: 4, int64: 8, uint8: 1, bool: 1 };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;

// ---------------------------------------------------------------------------- header (a Python dict literal)

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Parses the subset of Python literals `np.save` headers use: dict, tuple, list, str, int, True/False/None. */
function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new NpyError(`cannot parse the .npy header ${JSON.stringify(text.trim())}: ${what} at character ${i}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === '{' || c === '(' || c === '[') {
      const close = c === '{' ? '}' : c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      const dict = Object.create(null) as { [k: string]: PyValue }; // no prototype: keys come from the file
      for (;;) {
        ws();
        if (text[i] === close) break;
        const item = value();
        if (c === '{') {
          ws();
          if (text[i] !== ':' || typeof item !== 'string') fail('expected "key":');
          i++;
          dict[item as string] = value();
        } else {
          items.push(item);
        }
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected "," or "${close}"`);
      }
      i++;
      return c === '{' ? dict : items;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(text.slice(i));
    if (!m) return fail('unexpected token');
    i += m[0].length;
    return m[0] === 'True' ? true : m[0] === 'False' ? false : m[0] === 'None' ? null : Number.parseInt(m[0], 10);
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return v;
}

/** Decodes a `.npy` file. The returned data is a fresh copy (aligned, never aliasing `bytes`). */
export function readNpy(bytes: Uint8Array): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b)) throw new NpyError('not a .npy file (missing the \\x93NUMPY magic)');
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new NpyError(`unsupported .npy format version ${major}.${bytes[7]} (1.0, 2.0 and 3.0 are supported)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) throw new NpyError('.npy file is truncated inside its header length');
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenSize + headerLen;
  if (dataStart > bytes.length) throw new NpyError(`.npy header of ${headerLen} bytes runs past the end of the ${bytes.length}-byte file`);
  // 1.0/2.0 headers are latin1, 3.0 is utf8
  const headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(8 + lenSize, dataStart));
  const header = parsePyLiteral(headerText);
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new NpyError('.npy header is not a dict');
  const { descr, fortran_order: fortran, shape } = header;
  if (typeof descr !== 'string') throw new NpyError(`unsupported .npy dtype ${JSON.stringify(descr)} (structured dtypes are not supported)`);
  const dtype = FROM_DESCR.get(descr);
  if (!dtype) throw new NpyError(`unsupported .npy dtype '${descr}' (supported: ${[...FROM_DESCR.keys()].join(', ')}; big-endian data must be converted with .astype('<f4') etc.)`);
  if (fortran === true) throw new NpyError('Fortran-order .npy files are not supported; save np.ascontiguousarray(x) instead');
  if (fortran !== false) throw new NpyError('.npy header has no boolean fortran_order');
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new NpyError('.npy header has no valid shape tuple');
  }
  const dims = shape as number[];
  const numel = dims.reduce((a, d) => a * BigInt(d), 1n);
  const byteLength = numel * BigInt(ITEMSIZE[dtype]);
  if (byteLength > BigInt(bytes.length - dataStart)) {
    throw new NpyError(`.npy data is truncated: shape (${dims.join(', ')}) of ${descr} needs ${byteLength} bytes, the file has ${bytes.length - dataStart}`);
  }
  // like np.load, bytes after the array are ignored
  // explicit copy: Buffer#slice would alias (and possibly misalign) instead of copying
  const copy = new Uint8Array(Number(byteLength));
  copy.set(bytes.subarray(dataStart, dataStart + copy.length));
  return wrap(dtype, dims, copy.buffer);
}

function wrap(dtype: NpyDtype, shape: number[], buf: ArrayBuffer): NpyArray {
  switch (dtype) {
    case 'float32': return { dtype, shape, data: new Float32Array(buf) };
    case 'float64': return { dtype, shape, data: new Float64Array(buf) };
    case 'float16': return { dtype, shape, data: new Uint16Array(buf) };
    case 'int32': return { dtype, shape, data: new Int32Array(buf) };
    case 'int64': return { dtype, shape, data: new BigInt64Array(buf) };
    case 'uint8': return { dtype, shape, data: new Uint8Array(buf) };
    case 'bool': return { dtype, shape, data: new Uint8Array(buf) };
  }
}

/** Header bytes exactly as `np.save` writes them (version 1.0 unless the header needs 2.0). */
function npyHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  // numpy leaves room to grow the first axis in place
  if (shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const text = new TextEncoder().encode(dict); // ASCII only, so latin1 == utf8
  // padLen is 1..64 (numpy adds a full 64 when already aligned); version 2.0 only when 1.0's u16 length overflows
  const layout = (lenSize: number) => {
    const prefixLen = 8 + lenSize;
    return { prefixLen, headerLen: text.length + 1 + ARRAY_ALIGN - ((prefixLen + text.length + 1) % ARRAY_ALIGN) };
  };
  const major = layout(2).headerLen <= 0xffff ? 1 : 2;
  const { prefixLen, headerLen } = layout(major === 1 ? 2 : 4);
  const out = new Uint8Array(prefixLen + headerLen).fill(0x20);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  out.set(text, prefixLen);
  out[out.length - 1] = 0x0a;
  return out;
}

/** Encodes an array as `.npy` bytes (C order, little-endian). */
export function writeNpy(array: NpyArray): Uint8Array {
  const numel = array.shape.reduce((a, d) => a * d, 1);
  if (!array.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || array.data.length !== numel) {
    throw new NpyError(`shape (${array.shape.join(', ')}) does not match ${array.data.length} elements of data`);
  }
  const header = npyHeader(array.dtype, array.shape);
  const out = new Uint8Array(header.length + array.data.byteLength);
  out.set(header);
  out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength), header.length);
  return out;
}

export async function loadNpy(path: string): Promise<NpyArray> {
  try {
    return readNpy(await readFile(path));
  } catch (e) {
    if (e instanceof NpyError) throw new NpyError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Writes an array (or a tensor, see `tensorToNpy`) atomically. */
export async function saveNpy(path: string, array: NpyArray | tf.Tensor, options: TensorToNpyOptions = {}): Promise<void> {
  await writeFileAtomic(path, writeNpy(array instanceof tf.Tensor ? tensorToNpy(array, options) : array));
}

export interface TensorToNpyOptions {
  /** int32 tensors are written as `<i4` (default) or `<i8` (numpy's default integer on Linux). */
  readonly intDtype?: 'int32' | 'int64';
}

/** float32 -> `<f4`, int32 -> `<i4`/`<i8`, bool -> `|b1`. Reads the tensor synchronously. */
export function tensorToNpy(t: tf.Tensor, options: TensorToNpyOptions = {}): NpyArray {
  const shape = [...t.shape];
  switch (t.dtype) {
    case 'float32': return { dtype: 'float32', shape, data: Float32Array.from(t.dataSync() as Float32Array) };
    case 'int32': {
      const v = t.dataSync() as Int32Array;
      if (options.intDtype === 'int64') return { dtype: 'int64', shape, data: BigInt64Array.from(v, (x) => BigInt(x)) };
      return { dtype: 'int32', shape, data: Int32Array.from(v) };
    }
    case 'bool': return { dtype: 'bool', shape, data: Uint8Array.from(t.dataSync() as Uint8Array, (x) => (x ? 1 : 0)) };
    default: throw new NpyError(`cannot write a ${t.dtype} tensor as .npy (float32, int32 and bool are supported)`);
  }
}

/** float16/32/64 -> float32, int32/int64 (must fit)/uint8 -> int32, bool -> bool. */
export function npyToTensor(array: NpyArray): tf.Tensor {
  const shape = [...array.shape];
  switch (array.dtype) {
    case 'float32': return tf.tensor(array.data, shape, 'float32');
    case 'float64': return tf.tensor(Float32Array.from(array.data), shape, 'float32');
    case 'float16': return tf.tensor(f16BitsToFloat32(array.data), shape, 'float32');
    case 'int32': return tf.tensor(array.data, shape, 'int32');
    case 'int64': {
      const out = new Int32Array(array.data.length);
      for (let i = 0; i < out.length; i++) {
        const v = array.data[i]!;
        if (v < -2147483648n || v > 2147483647n) throw new NpyError(`int64 value ${v} at index ${i} does not fit int32, the widest integer dtype of TensorFlow.js`);
        out[i] = Number(v);
      }
      return tf.tensor(out, shape, 'int32');
    }
    case 'uint8': return tf.tensor(Int32Array.from(array.data), shape, 'int32');
    case 'bool': return tf.tensor(array.data.map((x) => (x ? 1 : 0)), shape, 'bool');
  }
}
