import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsError, type SafetensorsErrorReason } from '../../src/errors.js';
import { parseSafetensors, SafetensorsFile } from '../../src/io/index.js';
import { handSafetensors, le, withTempDir } from './_util.js';

const f32 = (...v: number[]) => le(Float32Array.of(...v));

function u64(n: bigint): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return Uint8Array.from(b);
}

function withHeader(json: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = Buffer.from(json, 'utf8');
  return Uint8Array.from(Buffer.concat([u64(BigInt(h.length)), h, data]));
}

const ok = (a: number[], bytes = f32(...a)) => ({ dtype: 'F32', shape: [a.length], bytes });

// [name, bytes, expected reason]
const cases: [string, Uint8Array, SafetensorsErrorReason][] = [
  ['empty file', new Uint8Array(0), 'truncated'],
  ['shorter than the length prefix', Uint8Array.of(1, 0, 0), 'truncated'],
  ['header length over 100 MB', Uint8Array.from([...u64(100_000_001n), ...new Uint8Array(16)]), 'header_too_large'],
  ['header length 2^64-1', Uint8Array.from([...u64(2n ** 64n - 1n), 0x7b, 0x7d]), 'header_too_large'],
  ['header longer than the file', Uint8Array.from([...u64(100n), 0x7b, 0x7d]), 'truncated'],
  ['header not JSON', withHeader('{"a": '), 'header_invalid'],
  ['header not UTF-8', Uint8Array.from([...u64(4n), 0x7b, 0xff, 0xfe, 0x7d]), 'header_invalid'],
  ['header a JSON array', withHeader('[]'), 'header_invalid'],
  ['header JSON null', withHeader('null'), 'header_invalid'],
  ['zero-length header', withHeader(''), 'header_invalid'],
  ['__metadata__ with a number', handSafetensors({}, { metadata: { n: 1 } }), 'header_invalid'],
  ['__metadata__ nested', handSafetensors({}, { metadata: { n: { x: 'y' } } }), 'header_invalid'],
  ['entry not an object', withHeader('{"a": 3}'), 'header_invalid'],
  ['negative shape', handSafetensors({ a: { dtype: 'F32', shape: [-1], bytes: f32(1) } }), 'header_invalid'],
  ['fractional offset', handSafetensors({ a: { ...ok([1]), offsets: [0, 4.5] } }), 'header_invalid'],
  ['one data offset', withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}', f32(1)), 'header_invalid'],
  ['missing dtype', withHeader('{"a":{"shape":[1],"data_offsets":[0,4]}}', f32(1)), 'header_invalid'],
  ['unknown dtype', handSafetensors({ a: { dtype: 'F33', shape: [1], bytes: f32(1) } }), 'unknown_dtype'],
  ['format dtype peft-ts does not read', handSafetensors({ a: { dtype: 'U32', shape: [1], bytes: f32(1) } }), 'unknown_dtype'],
  ['shape larger than the bytes', handSafetensors({ a: { dtype: 'F32', shape: [2], bytes: f32(1) } }), 'shape_mismatch'],
  ['bytes not a whole number of elements', handSafetensors({ a: { dtype: 'F32', shape: [1], bytes: Uint8Array.of(1, 2, 3, 4, 5) } }), 'shape_mismatch'],
  ['huge shape', handSafetensors({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], bytes: f32(1) } }), 'shape_mismatch'],
  ['begin after end', handSafetensors({ a: { dtype: 'F32', shape: [0], bytes: new Uint8Array(0), offsets: [8, 4] } }, { extraData: f32(0, 0) }), 'offsets_out_of_range'],
  ['offset past 2^53', handSafetensors({ a: { dtype: 'U8', shape: [0], bytes: new Uint8Array(0), offsets: [2 ** 60, 2 ** 60] } }), 'offsets_out_of_range'],
  [
    'tensor pointing past the data section',
    handSafetensors({ a: ok([1]), b: { ...ok([2]), offsets: [400, 404] } }, { extraData: f32(9) }),
    'offsets_out_of_range',
  ],
  ['overlapping tensors', handSafetensors({ a: ok([1, 2]), b: { ...ok([3, 4]), offsets: [4, 12] } }, { extraData: f32(0) }), 'offsets_overlap'],
  ['empty tensor inside another', handSafetensors({ a: ok([1, 2]), e: { dtype: 'F32', shape: [0], bytes: new Uint8Array(0), offsets: [4, 4] } }), 'offsets_overlap'],
  ['duplicate ranges', handSafetensors({ a: ok([1]), b: { ...ok([2]), offsets: [0, 4] } }), 'offsets_overlap'],
  ['hole between tensors', handSafetensors({ a: ok([1]), b: { ...ok([2]), offsets: [8, 12] } }, { dataOverride: f32(1, 0, 2) }), 'offsets_gap'],
  ['first tensor not at 0', handSafetensors({ a: { ...ok([1]), offsets: [4, 8] } }, { dataOverride: f32(0, 1) }), 'offsets_gap'],
  ['trailing bytes', handSafetensors({ a: ok([1]) }, { extraData: Uint8Array.of(0) }), 'offsets_gap'],
  ['no tensors but data', handSafetensors({}, { extraData: Uint8Array.of(0) }), 'offsets_gap'],
  ['data cut short', handSafetensors({ a: ok([1, 2]), b: ok([3, 4]) }, { dataOverride: f32(1, 2, 3) }), 'truncated'],
  ['data missing entirely', handSafetensors({ a: ok([1, 2]) }, { dataOverride: new Uint8Array(0) }), 'truncated'],
];

const isReason = (reason: SafetensorsErrorReason) => (e: unknown) => {
  assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
  assert.equal(e.code, 'safetensors');
  assert.equal(e.reason, reason, e.message);
  return true;
};

describe('malformed safetensors', () => {
  for (const [name, bytes, reason] of cases) {
    it(`${name} -> ${reason} (buffer and file)`, async () => {
      assert.throws(() => parseSafetensors(bytes), isReason(reason));
      await withTempDir(async (dir) => {
        const path = join(dir, 'bad.safetensors');
        await writeFile(path, bytes);
        await assert.rejects(SafetensorsFile.open(path), (e: unknown) => isReason(reason)(e) && (e as SafetensorsError).path === path);
      });
    });
  }

  it('tolerates what the reference reader tolerates: no padding, leading whitespace, null metadata, extra fields, any order', () => {
    const a = f32(1, 2);
    const b = f32(3);
    const json = ' {"b":{"data_offsets":[8,12],"shape":[],"dtype":"F32","extra":1},"__metadata__":null,"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const buf = parseSafetensors(withHeader(json, Uint8Array.from([...a, ...b])));
    assert.deepEqual(buf.keys(), ['b', 'a']);
    assert.deepEqual(buf.metadata, {});
    assert.deepEqual(buf.readRaw('a').data, Float32Array.of(1, 2));
    assert.deepEqual(buf.readRaw('b'), { dtype: 'F32', shape: [], data: Float32Array.of(3) });
  });

  it('reads from an unaligned view of a larger buffer', () => {
    const file = handSafetensors({ x: { dtype: 'F64', shape: [1], bytes: le(Float64Array.of(2.25)) } });
    const big = new Uint8Array(file.length + 3);
    big.set(file, 3);
    assert.deepEqual(parseSafetensors(big.subarray(3)).readRaw('x').data, Float64Array.of(2.25));
    // a Buffer (whose slice() aliases) at an odd offset, and the result must not alias the input
    const buffer = Buffer.concat([Buffer.alloc(3), file]).subarray(3);
    const raw = parseSafetensors(buffer).readRaw('x');
    assert.deepEqual(raw.data, Float64Array.of(2.25));
    buffer.fill(0);
    assert.deepEqual(raw.data, Float64Array.of(2.25));
  });
});
