/**
 * The safetensors header: parsing + validation shared by the file and buffer readers, and the writer's header.
 * Validation follows the reference Rust reader (safetensors/src/tensor.rs): everything is checked against the
 * real data-section length before any typed array is allocated, so a malformed file can only raise a
 * `SafetensorsError`, never a RangeError.
 */
import { SafetensorsError } from '../errors.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  BF16: 2,
  F16: 2,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

// Order the Rust writer uses (dtype enum descending, then name): matching it makes our files byte-identical.
const WRITE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  I64: 0,
  F64: 1,
  F32: 2,
  I32: 3,
  BF16: 4,
  F16: 5,
  I16: 6,
  I8: 7,
  U8: 8,
  BOOL: 9,
};

/** Other dtypes of the format that peft-ts does not read, named in errors so the message is precise. */
const KNOWN_UNSUPPORTED = ['U16', 'U32', 'U64', 'C64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'F4', 'F6_E2M3', 'F6_E3M2'];

export const MAX_HEADER_SIZE = 100_000_000;

export function isSafetensorsDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
  /** [begin, end) absolute byte positions in the file / buffer. */
  readonly byteRange: readonly [number, number];
}

export interface ParsedHeader {
  /** 8 + header length: where the data section starts. */
  readonly dataStart: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
}

/** Reads the 8-byte little-endian header length and checks it against the file size. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, path?: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError('truncated', `file is ${fileSize} bytes, shorter than the 8-byte header length`, { byteOffset: 0, path });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError('header_too_large', `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit (not a safetensors file?)`, { byteOffset: 0, path });
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError('truncated', `header length ${len} runs past the end of the ${fileSize}-byte file`, { byteOffset: 0, path });
  }
  return len;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

/**
 * Parses and validates the header JSON (`headerBytes` = the N bytes after the length prefix) against a file of
 * `fileSize` bytes.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, path?: string): ParsedHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  const fail = (reason: ConstructorParameters<typeof SafetensorsError>[0], message: string, byteOffset = 8) =>
    new SafetensorsError(reason, message, { byteOffset, path });

  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (cause) {
    throw new SafetensorsError('header_invalid', `header is not valid UTF-8 JSON (${(cause as Error).message})`, { byteOffset: 8, path, cause });
  }
  if (!isPlainObject(json)) throw fail('header_invalid', 'header JSON must be an object');

  let metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (raw === null) continue;
      if (!isPlainObject(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
        throw fail('header_invalid', '__metadata__ must be a flat string-to-string map');
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    if (!isPlainObject(raw)) throw fail('header_invalid', `entry "${name}" must be an object`);
    const { dtype, shape, data_offsets: offsets } = raw;
    if (typeof dtype !== 'string') throw fail('header_invalid', `entry "${name}" has no string "dtype"`);
    if (!isSafetensorsDtype(dtype)) {
      const why = KNOWN_UNSUPPORTED.includes(dtype) ? 'is a safetensors dtype that peft-ts does not support' : 'is not a safetensors dtype';
      throw fail('unknown_dtype', `tensor "${name}": dtype "${dtype}" ${why} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw fail('header_invalid', `tensor "${name}": "shape" must be an array of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
      throw fail('header_invalid', `tensor "${name}": "data_offsets" must be [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (!Number.isSafeInteger(end) || begin > end) {
      throw fail('offsets_out_of_range', `tensor "${name}": data_offsets [${begin}, ${end}] is not a valid byte range`);
    }
    // BigInt so a huge shape cannot round to a false match
    const numel = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n);
    if (numel * BigInt(DTYPE_SIZE[dtype]) !== BigInt(end - begin)) {
      throw fail(
        'shape_mismatch',
        `tensor "${name}": shape [${shape.join(', ')}] of ${dtype} needs ${numel * BigInt(DTYPE_SIZE[dtype])} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    const info: TensorInfo = {
      dtype,
      shape: [...(shape as number[])],
      dataOffsets: [begin, end],
      byteRange: [dataStart + begin, dataStart + end],
    };
    entries.push([name, info]);
  }

  checkTiling(entries, dataLength, dataStart, fail);
  return { dataStart, metadata: { ...metadata }, tensors: new Map(entries) };
}

/**
 * Sorted by begin, the tensors must cover [0, dataLength) exactly. A self-consistent layout that needs more bytes
 * than the file has is a truncated file; an inconsistent layout pointing past the data is a bad offset.
 */
function checkTiling(
  entries: readonly [string, TensorInfo][],
  dataLength: number,
  dataStart: number,
  fail: (reason: 'truncated' | 'offsets_out_of_range' | 'offsets_overlap' | 'offsets_gap', message: string, byteOffset?: number) => Error,
): void {
  // Empty tensors (begin == end) sort before the tensor starting at the same byte, so they never look like overlap.
  const sorted = [...entries].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expected = 0;
  let problem: Error | undefined;
  for (const [name, info] of sorted) {
    const [begin, end] = info.dataOffsets;
    if (begin < expected) {
      problem = fail('offsets_overlap', `tensor "${name}" at [${begin}, ${end}] overlaps the previous tensor, which ends at ${expected}`, dataStart + begin);
    } else if (begin > expected) {
      problem = fail('offsets_gap', `${begin - expected} unused byte(s) in the data section before tensor "${name}" at [${begin}, ${end}]`, dataStart + expected);
    }
    if (problem) break;
    expected = end;
  }
  if (problem) {
    const outside = entries.find(([, info]) => info.dataOffsets[1] > dataLength);
    if (outside) {
      const [name, info] = outside;
      throw fail('offsets_out_of_range', `tensor "${name}" at [${info.dataOffsets.join(', ')}] lies beyond the ${dataLength}-byte data section`, dataStart + info.dataOffsets[0]);
    }
    throw problem;
  }
  if (expected > dataLength) {
    throw fail('truncated', `the header describes ${expected} bytes of tensor data but the file holds only ${dataLength} (incomplete download?)`, dataStart + dataLength);
  }
  if (expected < dataLength) {
    throw fail('offsets_gap', `${dataLength - expected} trailing byte(s) after the last tensor`, dataStart + expected);
  }
}

export interface HeaderEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** Compares strings by UTF-8 bytes (code points), the order Rust's `String` sort gives. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Writer order: dtype (as the Rust writer ranks them), then name. */
export function sortForWriting<T extends { readonly name: string; readonly dtype: SafetensorsDtype }>(entries: readonly T[]): T[] {
  return [...entries].sort((a, b) => WRITE_RANK[a.dtype] - WRITE_RANK[b.dtype] || compareUtf8(a.name, b.name));
}

/**
 * Builds `length prefix + header` for entries already in write order, exactly as the Rust writer does: compact
 * JSON, `__metadata__` first, offsets consecutive, padded with spaces to a multiple of 8.
 */
export function buildHeader(entries: readonly HeaderEntry[], metadata?: Readonly<Record<string, string>>): { prefix: Uint8Array; dataLength: number } {
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError('header_invalid', `metadata value for "${k}" must be a string`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const e of entries) {
    if (e.name === '__metadata__') throw new SafetensorsError('header_invalid', 'a tensor cannot be named "__metadata__"');
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${offset},${offset + e.byteLength}]}`);
    offset += e.byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return { prefix, dataLength: offset };
}
