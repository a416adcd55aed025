// Reuse of float32 output arrays between kernels. A fresh large typed array costs page faults and zero-filling
// (~2 GB/s here), more than the ONNX Runtime kernel that then writes it: a training step allocated ~40 GB
// that way. Buffers are recycled when the last tensor holding them (or a view of them, which cpu kernels make for
// contiguous slices) is disposed. Sizes are rounded up to one of eight steps per power of two, so tensors that
// grow by a row at a time (a KV cache during generation) reuse buffers instead of filling the pool with sizes
// that never come back; small arrays are not pooled at all.

/** `length` rounded up to a multiple of 1/8 of its power of two. */
export function bucketOf(length: number): number {
  if (length < 8) return length;
  const step = 2 ** Math.floor(Math.log2(length)) / 8;
  return Math.ceil(length / step) * step;
}

interface Owner {
  array: Float32Array;
  /** Tensors (data ids) whose values are this array or a view of its buffer. */
  users: number;
}

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owners = new WeakMap<ArrayBufferLike, Owner>();
  private freeBytes = 0;

  /** Arrays smaller than this many floats are plain allocations (cheap, and rarely the same size twice). */
  minPooled = 4096;

  constructor(private readonly maxFreeBytes: number) {}

  /** An array of `length` floats with arbitrary contents (callers overwrite all of it). */
  take(length: number): Float32Array {
    if (length < this.minPooled) return new Float32Array(length);
    const bucket = bucketOf(length);
    const reused = this.free.get(bucket)?.pop();
    if (reused !== undefined) this.freeBytes -= reused.byteLength;
    const whole = reused ?? new Float32Array(bucket);
    const array = length === bucket ? whole : whole.subarray(0, length);
    this.owners.set(whole.buffer, { array: whole, users: 0 });
    return array;
  }

  /** Whether `values` lives in a pooled buffer (so it may be overwritten once released). */
  owns(values: unknown): values is Float32Array | Int32Array | Uint8Array {
    return ArrayBuffer.isView(values) && this.owners.has(values.buffer);
  }

  /** A tensor now holds `values`. */
  retain(values: unknown): void {
    if (!ArrayBuffer.isView(values)) return;
    const owner = this.owners.get(values.buffer);
    if (owner !== undefined) owner.users++;
  }

  /** A tensor holding `values` is gone; the buffer returns to the pool when no tensor holds it. */
  release(values: unknown): void {
    if (!ArrayBuffer.isView(values)) return;
    const owner = this.owners.get(values.buffer);
    if (owner === undefined || --owner.users > 0) return;
    this.owners.delete(values.buffer);
    const { array } = owner;
    if (this.freeBytes + array.byteLength > this.maxFreeBytes) return;
    const list = this.free.get(array.length) ?? [];
    list.push(array);
    this.free.set(array.length, list);
    this.freeBytes += array.byteLength;
  }

  get pooledBytes(): number {
    return this.freeBytes;
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }
}
