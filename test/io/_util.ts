// Shared helpers for the src/io tests (not a test file itself: no `.test.ts` suffix).
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'peft-ts-io-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type FileHandleMethod = 'read' | 'writeFile' | 'sync';
type Proto = Record<FileHandleMethod, (this: FileHandle, ...args: unknown[]) => Promise<unknown>>;

/**
 * Replaces a `FileHandle.prototype` method for the duration of `fn`. `FileHandle` is not exported by Node, so the
 * prototype is taken from a real handle.
 */
export async function patchFileHandle<T>(
  method: FileHandleMethod,
  replacement: (original: (...args: unknown[]) => Promise<unknown>, self: FileHandle, args: unknown[]) => Promise<unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  const probe = await open(fileURLToPath(import.meta.url), 'r');
  const proto = Object.getPrototypeOf(probe) as Proto;
  await probe.close();
  const original = proto[method];
  proto[method] = function (this: FileHandle, ...args: unknown[]) {
    return replacement((...a: unknown[]) => original.apply(this, a), this, args);
  };
  try {
    return await fn();
  } finally {
    proto[method] = original;
  }
}

export interface HandEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
  /** Override the computed [begin, end). */
  readonly offsets?: readonly [number, number];
}

/**
 * Builds a safetensors file by hand (independently of the library's writer): entries in the given order,
 * data concatenated, header unpadded unless `pad`. `extraData` is appended after the data.
 */
export function handSafetensors(
  entries: Readonly<Record<string, HandEntry>>,
  options: { metadata?: unknown; pad?: boolean; extraData?: Uint8Array; dataOverride?: Uint8Array; headerOverride?: string } = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = options.metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, e] of Object.entries(entries)) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.offsets ?? [offset, offset + e.bytes.length] };
    chunks.push(e.bytes);
    offset += e.bytes.length;
  }
  let json = options.headerOverride ?? JSON.stringify(header);
  if (options.pad) json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const data = options.dataOverride ?? Buffer.concat([...chunks, options.extraData ?? new Uint8Array(0)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  return Uint8Array.from(Buffer.concat([prefix, headerBytes, data]));
}

/** Little-endian bytes of a typed array. */
export function le(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}
