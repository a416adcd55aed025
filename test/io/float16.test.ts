import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bf16BitsToFloat32, f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from '../../src/io/index.js';

/** float32 from its bit pattern. */
function f32(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}

function toHex(a: Uint16Array): string[] {
  return [...a].map((v) => '0x' + v.toString(16).toUpperCase().padStart(4, '0'));
}

describe('float32 -> bfloat16', () => {
  // [input, expected bits, why]
  const cases: [number, number, string][] = [
    [1.0, 0x3f80, '1.0'],
    [-2.0, 0xc000, '-2'],
    [f32(0x3eaaaaab), 0x3eab, '1/3: dropped half 0xAAAB > 0x8000 rounds up'],
    [f32(0x3f808000), 0x3f80, 'tie, kept half even: stays'],
    [f32(0x3f818000), 0x3f82, 'tie, kept half odd: rounds up to even'],
    [f32(0x3f808001), 0x3f81, 'just above a tie rounds up'],
    [f32(0x00010000), 0x0001, 'float32 subnormal, exact'],
    [f32(0x00008000), 0x0000, 'subnormal tie rounds to even zero'],
    [f32(0x00018000), 0x0002, 'subnormal tie rounds to even'],
    [-0, 0x8000, '-0 keeps its sign'],
    [Infinity, 0x7f80, '+Inf'],
    [-Infinity, 0xff80, '-Inf'],
    [f32(0x7f7fffff), 0x7f80, 'max float32 rounds to Inf'],
    [NaN, 0x7fc0, 'NaN -> canonical quiet NaN (torch)'],
    [f32(0x7f800001), 0x7fc0, 'signalling NaN whose payload would be truncated away stays NaN'],
  ];
  it('matches hand-computed bit patterns', () => {
    const got = float32ToBf16Bits(Float32Array.from(cases.map((c) => c[0])));
    assert.deepEqual(toHex(got), toHex(Uint16Array.from(cases.map((c) => c[1]))), cases.map((c) => c[2]).join('; '));
  });
  it('widens exactly (16-bit shift)', () => {
    const back = bf16BitsToFloat32(Uint16Array.of(0x3f80, 0x3eab, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc0));
    assert.equal(back[0], 1);
    assert.equal(back[1], f32(0x3eab0000));
    assert.equal(back[2], 2 ** -133);
    assert.ok(Object.is(back[3], -0));
    assert.equal(back[4], Infinity);
    assert.equal(back[5], -Infinity);
    assert.ok(Number.isNaN(back[6]!));
  });
  it('accepts plain number arrays', () => {
    assert.deepEqual([...float32ToBf16Bits([1, -2])], [0x3f80, 0xc000]);
  });
});

describe('float32 <-> float16', () => {
  const cases: [number, number, string][] = [
    [1.0, 0x3c00, '1.0'],
    [-2.0, 0xc000, '-2'],
    [65504, 0x7bff, 'largest finite'],
    [f32(0x477fefff), 0x7bff, 'just below 65520 rounds down to 65504'],
    [65520, 0x7c00, '65520 is the tie above 65504 (odd): overflows to Inf'],
    [1e6, 0x7c00, 'overflow -> Inf'],
    [-1e6, 0xfc00, 'overflow -> -Inf'],
    [f32(0x3eaaaaab), 0x3555, '1/3 rounds down'],
    [f32(0x3f801000), 0x3c00, '1 + 2^-11: tie, even stays'],
    [f32(0x3f803000), 0x3c02, '1 + 3*2^-11: tie, odd rounds up'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even zero'],
    [3 * 2 ** -25, 0x0002, '1.5 subnormal units: tie to even'],
    [f32(0x33000001), 0x0001, 'just above 2^-25 rounds up'],
    [2 ** -26, 0x0000, 'underflow'],
    [1023 * 2 ** -24, 0x03ff, 'largest subnormal'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [f32(0x387fe000), 0x0400, 'largest subnormal + half ulp rounds into the normals'],
    [-0, 0x8000, '-0'],
    [Infinity, 0x7c00, '+Inf'],
    [-Infinity, 0xfc00, '-Inf'],
    [NaN, 0x7e00, 'NaN'],
  ];
  it('narrows to hand-computed bit patterns', () => {
    const got = float32ToF16Bits(Float32Array.from(cases.map((c) => c[0])));
    assert.deepEqual(toHex(got), toHex(Uint16Array.from(cases.map((c) => c[1]))), cases.map((c) => c[2]).join('; '));
  });
  it('widens exactly, including subnormals, -0, Inf and NaN', () => {
    const back = f16BitsToFloat32(Uint16Array.of(0x3c00, 0x7bff, 0x3555, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x8001));
    assert.deepEqual([...back.slice(0, 6)], [1, 65504, 0.333251953125, 2 ** -24, 1023 * 2 ** -24, 2 ** -14]);
    assert.ok(Object.is(back[6], -0));
    assert.equal(back[7], Infinity);
    assert.equal(back[8], -Infinity);
    assert.ok(Number.isNaN(back[9]!) && Number.isNaN(back[10]!));
    assert.equal(back[11], -(2 ** -24));
  });
  it('round-trips every finite float16 exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToF16Bits(f16BitsToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const isNaN16 = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN16) assert.ok((back[i]! & 0x7c00) === 0x7c00 && (back[i]! & 0x3ff) !== 0, `NaN 0x${i.toString(16)} stays NaN`);
      else assert.equal(back[i], i, `0x${i.toString(16)}`);
    }
  });
});
