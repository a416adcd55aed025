import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tf } from '../../src/engine/tf.js';
import { NpyError } from '../../src/errors.js';
import { loadNpy, npyToTensor, readNpy, saveNpy, tensorToNpy, writeNpy, type NpyArray } from '../../src/io/index.js';
import { assertNoLeak } from '../helpers/assert.js';
import { hex, withTempDir } from './_util.js';

// np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) with numpy 2.4.6
const ARANGE_2x3 = hex(
  '934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040000080400000a040',
);
// The same numpy: np.save of np.float32(2.5), np.arange(3, dtype='<i8'), np.array([True, False, True]),
// np.zeros((0, 3), '<f4'), np.arange(4, dtype='<i4').reshape(1, 2, 2)
const HEADER = (dict: string) => {
  const prefix = '934e554d505901007600';
  const body = Buffer.from(dict).toString('hex');
  return prefix + body + '20'.repeat(118 - 1 - dict.length) + '0a';
};
const NUMPY_REFS: [NpyArray, string][] = [
  [{ dtype: 'float32', shape: [], data: Float32Array.of(2.5) }, HEADER("{'descr': '<f4', 'fortran_order': False, 'shape': (), }") + '00002040'],
  [{ dtype: 'int64', shape: [3], data: BigInt64Array.of(0n, 1n, 2n) }, HEADER("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }") + '000000000000000001000000000000000200000000000000'],
  [{ dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) }, HEADER("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }") + '010001'],
  [{ dtype: 'float32', shape: [0, 3], data: new Float32Array(0) }, HEADER("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }")],
  [{ dtype: 'int32', shape: [1, 2, 2], data: Int32Array.of(0, 1, 2, 3) }, HEADER("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 2), }") + '00000000010000000200000003000000'],
];

/** A .npy file with an arbitrary header dict, version and data. */
function npyBytes(dict: string, data: Uint8Array, major = 1): Uint8Array {
  const lenSize = major === 1 ? 2 : 4;
  const text = Buffer.from(dict + '\n', major === 3 ? 'utf8' : 'latin1');
  const out = Buffer.alloc(8 + lenSize + text.length + data.length);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]).copy(out);
  if (major === 1) out.writeUInt16LE(text.length, 8);
  else out.writeUInt32LE(text.length, 8);
  text.copy(out, 8 + lenSize);
  Buffer.from(data).copy(out, 8 + lenSize + text.length);
  return Uint8Array.from(out);
}

const f32bytes = (...v: number[]) => new Uint8Array(Float32Array.of(...v).buffer);

describe('.npy', () => {
  it('reads the bytes np.save writes for arange(6).reshape(2, 3), and writes the same bytes', () => {
    const a = readNpy(ARANGE_2x3);
    assert.deepEqual(a, { dtype: 'float32', shape: [2, 3], data: Float32Array.of(0, 1, 2, 3, 4, 5) });
    assert.deepEqual(writeNpy(a), ARANGE_2x3);
  });

  it('is byte-identical to np.save for scalars, 1-d, empty, int64, bool and 3-d arrays', () => {
    for (const [array, bytesHex] of NUMPY_REFS) {
      assert.equal(Buffer.from(writeNpy(array)).toString('hex'), bytesHex, `${array.dtype} (${array.shape})`);
      assert.deepEqual(readNpy(hex(bytesHex)), array);
    }
  });

  it('round-trips every dtype', () => {
    const arrays: NpyArray[] = [
      { dtype: 'float32', shape: [2], data: Float32Array.of(-0, NaN) },
      { dtype: 'float64', shape: [1, 1], data: Float64Array.of(1e-310) },
      { dtype: 'float16', shape: [2], data: Uint16Array.of(0x3c00, 0x7bff) },
      { dtype: 'int32', shape: [2], data: Int32Array.of(-1, 2147483647) },
      { dtype: 'int64', shape: [1], data: BigInt64Array.of(-(2n ** 63n)) },
      { dtype: 'uint8', shape: [2], data: Uint8Array.of(0, 255) },
      { dtype: 'bool', shape: [2, 1], data: Uint8Array.of(1, 0) },
    ];
    for (const a of arrays) {
      const bytes = writeNpy(a);
      assert.equal((bytes.length - a.data.byteLength) % 64, 0, 'header aligned to 64');
      assert.deepEqual(readNpy(bytes), a, a.dtype);
    }
  });

  it('reads format 2.0 and 3.0 headers, python-2 long shapes, and unaligned input', () => {
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    for (const major of [2, 3]) assert.deepEqual(readNpy(npyBytes(dict, f32bytes(1, 2), major)).data, Float32Array.of(1, 2));
    assert.deepEqual(readNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", f32bytes(1, 2))).shape, [1, 2]);
    const shifted = new Uint8Array(ARANGE_2x3.length + 1);
    shifted.set(ARANGE_2x3, 1);
    assert.deepEqual(readNpy(shifted.subarray(1)).data, Float32Array.of(0, 1, 2, 3, 4, 5));
    const buffer = Buffer.concat([Buffer.alloc(1), ARANGE_2x3]).subarray(1); // Buffer#slice aliases
    const a = readNpy(buffer);
    buffer.fill(0);
    assert.deepEqual(a.data, Float32Array.of(0, 1, 2, 3, 4, 5));
  });

  const bad: [string, Uint8Array][] = [
    ['not npy', Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)],
    ['version 4', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32bytes(1), 4)],
    ['fortran order', npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f32bytes(1, 2, 3, 4))],
    ['big-endian', npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", f32bytes(1))],
    ['structured dtype', npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", f32bytes(1))],
    ['object dtype', npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", f32bytes(1))],
    ['truncated data', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32bytes(1, 2))],
    ['header past the end', ARANGE_2x3.subarray(0, 50)],
    ['garbage header', npyBytes("{'descr': '<f4', 'shape': (1,) 'x'}", f32bytes(1))],
    ['negative shape', npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f32bytes(1))],
    ['no shape', npyBytes("{'descr': '<f4', 'fortran_order': False}", f32bytes(1))],
  ];
  for (const [what, bytes] of bad) {
    it(`rejects ${what} with NpyError`, () => {
      assert.throws(() => readNpy(bytes), (e: unknown) => e instanceof NpyError && e.code === 'npy');
    });
  }

  it('writeNpy refuses data that does not fill the shape', () => {
    assert.throws(() => writeNpy({ dtype: 'float32', shape: [2, 2], data: Float32Array.of(1) }), NpyError);
  });
});

describe('.npy and tensors', () => {
  it('tensorToNpy / npyToTensor round trip without leaks (X-LoRA scalings shape)', async () => {
    await assertNoLeak(() => {
      const t = tf.randomUniform([2, 3, 4, 5]); // [batch, seq, layers, experts]
      const a = tensorToNpy(t);
      assert.equal(a.dtype, 'float32');
      const back = npyToTensor(readNpy(writeNpy(a)));
      assert.deepEqual(back.shape, [2, 3, 4, 5]);
      assert.deepEqual(back.dataSync(), t.dataSync());
      tf.dispose([t, back]);
    });
  });

  it('int and bool tensors, int64 on request, and the int64 range check', async () => {
    await assertNoLeak(() => {
      const i = tf.tensor([1, -2], [2], 'int32');
      assert.equal(tensorToNpy(i).dtype, 'int32');
      const wide = tensorToNpy(i, { intDtype: 'int64' });
      assert.deepEqual(wide.data, BigInt64Array.of(1n, -2n));
      const i2 = npyToTensor(wide);
      assert.equal(i2.dtype, 'int32');
      assert.deepEqual([...i2.dataSync()], [1, -2]);
      const b = tf.tensor([true, false], [2], 'bool');
      const b2 = npyToTensor(tensorToNpy(b));
      assert.equal(b2.dtype, 'bool');
      assert.deepEqual([...b2.dataSync()], [1, 0]);
      const h = npyToTensor({ dtype: 'float16', shape: [1], data: Uint16Array.of(0x3555) });
      assert.deepEqual([...h.dataSync()], [0.333251953125]);
      assert.throws(() => npyToTensor({ dtype: 'int64', shape: [1], data: BigInt64Array.of(2n ** 31n) }), NpyError);
      tf.dispose([i, i2, b, b2, h]);
    });
  });

  it('saveNpy writes atomically and loadNpy reads it back', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'scalings.npy');
      const t = tf.tensor([[1, 2, 3], [4, 5, 6]]);
      await saveNpy(path, t);
      t.dispose();
      assert.deepEqual(await readdir(dir), ['scalings.npy']);
      assert.deepEqual(await loadNpy(path), { dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
      await saveNpy(path, { dtype: 'float32', shape: [2, 3], data: Float32Array.of(0, 1, 2, 3, 4, 5) });
      assert.deepEqual(new Uint8Array(await readFile(path)), ARANGE_2x3);
    });
  });
});
