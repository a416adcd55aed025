// Reuse of float32 output arrays between kernels. A fresh large typed array costs page faults and zero-filling
// (~2 GB/s here), more than the ONNX Runtime kernel that then writes it: a training step allocated ~40 GB
// that way. Arrays are keyed by length (shapes repeat from step to step) and recycled when the last tensor
// holding them (or a view of them, which cpu kernels make for contiguous slices) is disposed.

interface Owner {
  array: Float32Array;
  /** Tensors (data ids) whose values are this array or a view of its buffer. */
  users: number;
}

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owners = new WeakMap<ArrayBufferLike, Owner>();
  private freeBytes = 0;

  constructor(private readonly maxFreeBytes: number) {}

  /** An array of `length` floats with arbitrary contents (callers overwrite all of it). */
  take(length: number): Float32Array {
    const list = this.free.get(length);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.freeBytes -= reused.byteLength;
      this.owners.set(reused.buffer, { array: reused, users: 0 });
      return reused;
    }
    const array = new Float32Array(length);
    this.owners.set(array.buffer, { array, users: 0 });
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
