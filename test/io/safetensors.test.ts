import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tf } from '../../src/engine/tf.js';
import { SafetensorsError } from '../../src/errors.js';
import {
  loadSafetensors,
  parseSafetensors,
  saveSafetensors,
  SafetensorsFile,
  serializeRawSafetensors,
  serializeSafetensors,
} from '../../src/io/index.js';
import { assertNoLeak } from '../helpers/assert.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';
import { handSafetensors, hex, le, patchFileHandle, withTempDir } from './_util.js';

// Made with safetensors 0.8.0 + numpy 2.4.6:
//   save({'w': np.array([[1,2],[3,4]], np.float32), 'b': np.array([-1.5], np.float32),
//         'ids': np.array([1,-2,3], np.int32), 'mask': np.array([True,False])}, metadata={'format':'pt'}).hex()
const PY_MIXED = hex(
  '08010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c2262223a7b226474797065223a22463332222c227368617065223a5b315d2c22646174615f6f666673657473223a5b302c345d7d2c2277223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b342c32305d7d2c22696473223a7b226474797065223a22493332222c227368617065223a5b335d2c22646174615f6f666673657473223a5b32302c33325d7d2c226d61736b223a7b226474797065223a22424f4f4c222c227368617065223a5b325d2c22646174615f6f666673657473223a5b33322c33345d7d7d202020202020200000c0bf0000803f00000040000040400000804001000000feffffff030000000100',
);
//   save({'h': np.array([1, 65504, 1/3, -0.0, np.inf], np.float16), 'e': np.zeros((0,2), np.float16),
//         's': np.array(0.5, np.float16)}).hex()
const PY_F16 = hex(
  'a8000000000000007b2265223a7b226474797065223a22463136222c227368617065223a5b302c325d2c22646174615f6f666673657473223a5b302c305d7d2c2268223a7b226474797065223a22463136222c227368617065223a5b355d2c22646174615f6f666673657473223a5b302c31305d7d2c2273223a7b226474797065223a22463136222c227368617065223a5b5d2c22646174615f6f666673657473223a5b31302c31325d7d7d20202020003cff7b55350080007c0038',
);

function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

describe('safetensors writer', () => {
  it('is byte-identical to the Python writer (F32, I32, BOOL, metadata; sorted by dtype then name)', () => {
    const tensors = {
      w: tf.tensor([[1, 2], [3, 4]]),
      b: tf.tensor([-1.5]),
      ids: tf.tensor([1, -2, 3], [3], 'int32'),
      mask: tf.tensor([true, false], [2], 'bool'),
    };
    assert.deepEqual(serializeSafetensors(tensors, { metadata: { format: 'pt' } }), PY_MIXED);
    Object.values(tensors).forEach((t) => t.dispose());
  });

  it('is byte-identical to the Python writer for F16, including an empty and a scalar tensor', () => {
    const m = new Map([
      ['s', tf.scalar(0.5)],
      ['h', tf.tensor([1, 65504, 1 / 3, -0, Infinity])],
      ['e', tf.zeros([0, 2])],
    ]);
    assert.deepEqual(serializeSafetensors(m, { dtype: 'F16' }), PY_F16);
    disposeAll(m);
  });

  it('pads the header to a multiple of 8 with spaces', () => {
    const bytes = serializeSafetensors({ a: tf.tensor([1, 2]) }, { metadata: { format: 'pt' } });
    const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
    assert.equal(n, 88); // 85-byte JSON, the spec's worked example
    assert.equal(Buffer.from(bytes.subarray(8 + 85, 8 + 88)).toString(), '   ');
    assert.equal(bytes.length, 8 + 88 + 8);
  });

  it('refuses tensors it cannot represent', () => {
    const c = tf.complex([1], [2]);
    assert.throws(() => serializeSafetensors({ c }), (e: unknown) => e instanceof SafetensorsError && e.reason === 'unknown_dtype');
    c.dispose();
  });
});

describe('safetensors round trips', () => {
  it('F32 / I32 / BOOL through write -> parse and write -> file', async () => {
    const src = {
      f: tf.tensor([[0.1, -2.5, 3e38], [-0, 1e-40, 7]]),
      scalar: tf.scalar(42.5),
      empty: tf.zeros([0, 3]),
      i: tf.tensor([2147483647, -2147483648, 0], [3], 'int32'),
      b: tf.tensor([true, false, true], [3], 'bool'),
    };
    await withTempDir(async (dir) => {
      const path = join(dir, 'x.safetensors');
      await saveSafetensors(path, src, { metadata: { format: 'pt', note: 'ünïcode' } });
      const fromBuffer = parseSafetensors(await readFile(path)).readAll();
      const fromFile = await loadSafetensors(path);
      for (const loaded of [fromBuffer, fromFile]) {
        for (const [k, t] of Object.entries(src)) {
          const got = loaded.get(k)!;
          assert.equal(got.dtype, t.dtype, k);
          assert.deepEqual(got.shape, t.shape, k);
          assert.deepEqual([...got.dataSync()], [...t.dataSync()], k);
        }
        assert.ok(Object.is(loaded.get('f')!.dataSync()[3], -0));
        disposeAll(loaded);
      }
      const file = await SafetensorsFile.open(path);
      assert.deepEqual(file.metadata, { format: 'pt', note: 'ünïcode' });
      // F32 first (empty, f, scalar by name: 0 + 24 + 4 bytes), then I32
      const dataStart = 8 + Number((await readFile(path)).readBigUInt64LE(0));
      assert.deepEqual(file.info('i'), { dtype: 'I32', shape: [3], dataOffsets: [28, 40], byteRange: [dataStart + 28, dataStart + 40] });
      await file.close();
    });
    Object.values(src).forEach((t) => t.dispose());
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    it(`float32 written as ${dtype} reads back as float32 (exact for representable values, rounded otherwise)`, () => {
      const t = tf.tensor([1, -2, 0.5, 1 / 3, -0, Infinity, NaN]);
      const buf = parseSafetensors(serializeSafetensors({ t }, { dtype }));
      assert.equal(buf.info('t').dtype, dtype);
      const raw = buf.readRaw('t');
      assert.ok(raw.data instanceof Uint16Array);
      const back = buf.readTensor('t');
      assert.equal(back.dtype, 'float32');
      const v = back.dataSync();
      assert.deepEqual([...v.slice(0, 3)], [1, -2, 0.5]);
      assert.equal(v[3], dtype === 'F16' ? 0.333251953125 : 0.333984375);
      assert.ok(Object.is(v[4], -0) && v[5] === Infinity && Number.isNaN(v[6]!));
      t.dispose();
      back.dispose();
    });
  }

  it('reads the read-only dtypes from hand-built bytes (F64, I64, I16, I8, U8, F16/BF16 bits)', () => {
    const bytes = handSafetensors({
      f64: { dtype: 'F64', shape: [2], bytes: le(Float64Array.of(1.5, -1e300)) },
      i64: { dtype: 'I64', shape: [3], bytes: le(BigInt64Array.of(-2147483648n, 0n, 2147483647n)) },
      i16: { dtype: 'I16', shape: [2], bytes: le(Int16Array.of(-32768, 32767)) },
      i8: { dtype: 'I8', shape: [2], bytes: le(Int8Array.of(-128, 127)) },
      u8: { dtype: 'U8', shape: [1, 2], bytes: Uint8Array.of(0, 255) },
      h: { dtype: 'F16', shape: [1], bytes: le(Uint16Array.of(0x3c00)) },
      bf: { dtype: 'BF16', shape: [1], bytes: le(Uint16Array.of(0xc000)) },
    });
    const buf = parseSafetensors(bytes);
    const raw = (k: string) => buf.readRaw(k).data;
    assert.deepEqual(raw('f64'), Float64Array.of(1.5, -1e300));
    assert.deepEqual(raw('i64'), BigInt64Array.of(-2147483648n, 0n, 2147483647n));
    assert.deepEqual(raw('i16'), Int16Array.of(-32768, 32767));
    assert.deepEqual(raw('i8'), Int8Array.of(-128, 127));
    assert.deepEqual(raw('u8'), Uint8Array.of(0, 255));
    assert.deepEqual(raw('h'), Uint16Array.of(0x3c00));
    const expect: Record<string, [string, number[], number[]]> = {
      f64: ['float32', [2], [1.5, -Infinity]],
      i64: ['int32', [3], [-2147483648, 0, 2147483647]],
      i16: ['int32', [2], [-32768, 32767]],
      i8: ['int32', [2], [-128, 127]],
      u8: ['int32', [1, 2], [0, 255]],
      h: ['float32', [1], [1]],
      bf: ['float32', [1], [-2]],
    };
    for (const [k, [dtype, shape, values]] of Object.entries(expect)) {
      const t = buf.readTensor(k);
      assert.equal(t.dtype, dtype, k);
      assert.deepEqual(t.shape, shape, k);
      assert.deepEqual([...t.dataSync()], values, k);
      t.dispose();
    }
  });

  it('raw round trip through serializeRawSafetensors for every dtype', () => {
    const raws = {
      a: { dtype: 'I64', shape: [2], data: BigInt64Array.of(-(2n ** 62n), 5n) },
      b: { dtype: 'F64', shape: [], data: Float64Array.of(Math.PI) },
      c: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
      d: { dtype: 'BOOL', shape: [1], data: Uint8Array.of(1) },
    } as const;
    const buf = parseSafetensors(serializeRawSafetensors(raws));
    for (const [k, r] of Object.entries(raws)) assert.deepEqual(buf.readRaw(k), { dtype: r.dtype, shape: r.shape, data: r.data }, k);
  });

  it('an I64 value outside int32 cannot become a tensor', () => {
    const bytes = handSafetensors({ ok: { dtype: 'F32', shape: [1], bytes: le(Float32Array.of(1)) }, big: { dtype: 'I64', shape: [1], bytes: le(BigInt64Array.of(2n ** 40n)) } });
    const buf = parseSafetensors(bytes);
    assert.deepEqual(buf.readRaw('big').data, BigInt64Array.of(2n ** 40n));
    assert.throws(() => buf.readTensor('big'), (e: unknown) => e instanceof SafetensorsError && e.reason === 'value_out_of_range');
  });

  it('a missing key is missing_tensor', async () => {
    const bytes = serializeSafetensors({});
    assert.throws(() => parseSafetensors(bytes).readRaw('nope'), (e: unknown) => e instanceof SafetensorsError && e.reason === 'missing_tensor');
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'e.safetensors'), bytes);
      const f = await SafetensorsFile.open(join(dir, 'e.safetensors'));
      await assert.rejects(f.readTensor('nope'), (e: unknown) => e instanceof SafetensorsError && e.reason === 'missing_tensor' && e.code === 'safetensors');
      await f.close();
    });
  });
});

describe('SafetensorsFile reads only what it needs', () => {
  it('open reads just the header; readRaw reads just that tensor', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'x.safetensors');
      const a = tf.ones([1000]);
      const b = tf.tensor([1, 2, 3]);
      await saveSafetensors(path, { a, b });
      a.dispose();
      b.dispose();
      const reads: [length: number, position: number][] = [];
      const record = (orig: (...a: unknown[]) => Promise<unknown>, _self: unknown, args: unknown[]) => {
        reads.push([args[2] as number, args[3] as number]);
        return orig(...args);
      };
      await patchFileHandle('read', record, async () => {
        const f = await SafetensorsFile.open(path);
        const headerLen = Number((await readFile(path)).readBigUInt64LE(0));
        assert.equal(reads.reduce((s, [n]) => s + n, 0), 8 + headerLen, 'open reads 8 + N bytes');
        reads.length = 0;
        const raw = await f.readRaw('b');
        assert.deepEqual([...raw.data], [1, 2, 3]);
        assert.deepEqual(reads, [[12, f.info('b').byteRange[0]]], 'one 12-byte read at b');
        await f.close();
      });
    });
  });

  it('reading after close is an error, close twice is fine', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'x.safetensors');
      const t = tf.ones([2]);
      await saveSafetensors(path, { t });
      t.dispose();
      const f = await SafetensorsFile.open(path);
      await f.close();
      await f.close();
      await assert.rejects(f.readRaw('t'), (e: unknown) => e instanceof Error && 'code' in e && e.code === 'safetensors');
    });
  });
});

describe('safetensors readers do not leak tensors', () => {
  it('readAll + dispose, and a readAll that fails midway', async () => {
    const src = new Map([['a', tf.tensor([1])], ['b', tf.tensor([2, 3])]]);
    const good = serializeSafetensors(src);
    disposeAll(src);
    const bad = handSafetensors({
      a: { dtype: 'F32', shape: [1], bytes: le(Float32Array.of(1)) },
      z: { dtype: 'I64', shape: [1], bytes: le(BigInt64Array.of(2n ** 40n)) },
    });
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'good.safetensors'), good);
      await writeFile(join(dir, 'bad.safetensors'), bad);
      await assertNoLeak(async () => disposeAll(await loadSafetensors(join(dir, 'good.safetensors'))), 'file readAll');
      await assertNoLeak(() => disposeAll(parseSafetensors(good).readAll()), 'buffer readAll');
      await assertNoLeak(() => assert.rejects(loadSafetensors(join(dir, 'bad.safetensors'))), 'failed file readAll');
      await assertNoLeak(() => assert.throws(() => parseSafetensors(bad).readAll()), 'failed buffer readAll');
    });
  });
});

describe('real checkpoint: tiny-random-gpt2', () => {
  const skip = skipReason('tiny-random-gpt2', 'model.safetensors');
  it('parses, with the expected keys and shapes', { skip }, async () => {
    const path = realdataPath('tiny-random-gpt2', 'model.safetensors')!;
    const f = await SafetensorsFile.open(path);
    try {
      assert.equal(f.keys().length, 64);
      assert.deepEqual(f.metadata, { format: 'pt' });
      assert.deepEqual(f.info('transformer.wte.weight'), { dtype: 'F32', shape: [1000, 32], dataOffsets: [319872, 447872], byteRange: [8 + 5984 + 319872, 8 + 5984 + 447872] });
      assert.deepEqual(f.info('transformer.wpe.weight').shape, [512, 32]);
      assert.deepEqual(f.info('transformer.h.0.attn.c_attn.weight').shape, [32, 96]);
      const wte = await assertNoLeak(async () => {
        const t = await f.readTensor('transformer.wte.weight');
        const v = t.dataSync().slice();
        t.dispose();
        return v;
      }, 'readTensor');
      // the same bytes straight from the file
      const bytes = await readFile(path);
      const expected = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + 5984 + 319872, bytes.byteOffset + 8 + 5984 + 447872));
      assert.deepEqual(wte, expected);
      const viaBuffer = parseSafetensors(bytes).readRaw('transformer.wte.weight');
      assert.deepEqual(viaBuffer.data, expected);
    } finally {
      await f.close();
    }
  });
});
