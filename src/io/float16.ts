/**
 * float32 <-> bfloat16 / IEEE binary16 conversions on whole arrays, bit-exact with
 * `torch.Tensor.to(torch.bfloat16 | torch.float16)`: round to nearest, ties to even; NaN stays NaN.
 * 16-bit values travel as raw bits in a Uint16Array because JS has no 16-bit float array we can rely on.
 */

function u32View(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function asFloat32(src: ArrayLike<number>): Float32Array {
  return src instanceof Float32Array ? src : Float32Array.from(src);
}

/** float32 -> bfloat16 bits (round to nearest even; every NaN becomes the canonical quiet NaN 0x7FC0, like torch). */
export function float32ToBf16Bits(src: Float32Array | ArrayLike<number>): Uint16Array {
  const bits = u32View(asFloat32(src));
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!;
    if ((u & 0x7fffffff) > 0x7f800000) {
      out[i] = 0x7fc0;
      continue;
    }
    // Adding 0x7FFF plus the lowest kept bit rounds ties to even; the carry may run into the exponent (-> Inf), which
    // is the correctly rounded result. u + bias < 2^32 for every non-NaN u, so no wrap-around.
    out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bfloat16 bits -> float32 (exact: bf16 is the top half of a float32). */
export function bf16BitsToFloat32(src: Uint16Array | ArrayLike<number>): Float32Array {
  const out = new Float32Array(src.length);
  const bits = u32View(out);
  for (let i = 0; i < src.length; i++) bits[i] = (src[i]! & 0xffff) << 16;
  return out;
}

/** float32 -> IEEE binary16 bits (round to nearest even; >= 65520 in magnitude -> Inf; NaN -> 0x7E00 with sign). */
export function float32ToF16Bits(src: Float32Array | ArrayLike<number>): Uint16Array {
  const bits = u32View(asFloat32(src));
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!;
    const sign = (u >>> 16) & 0x8000;
    const abs = u & 0x7fffffff;
    let h: number;
    if (abs > 0x7f800000) {
      h = 0x7e00; // NaN
    } else if (abs >= 0x477ff000) {
      h = 0x7c00; // 65520 is the tie between 65504 (odd mantissa) and 2^16, so it and everything above round to Inf
    } else if (abs >= 0x38800000) {
      // normal f16: re-bias the exponent (127 -> 15), keep 10 mantissa bits, round on the 13 dropped ones
      const e = abs >>> 23;
      const mant = abs & 0x7fffff;
      h = ((e - 112) << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // carry into the exponent is correct rounding
    } else {
      // subnormal f16 (or zero): value / 2^-24, rounded. value = m * 2^(e-150) with the implicit bit in m.
      const e = abs >>> 23;
      const shift = 126 - e; // >= 14 here
      if (shift > 24) {
        h = 0; // below 2^-25 (half the smallest subnormal): rounds to zero
      } else {
        const m = (abs & 0x7fffff) | (e === 0 ? 0 : 0x800000);
        h = m >>> shift;
        const rem = m & ((1 << shift) - 1);
        const half = 1 << (shift - 1);
        if (rem > half || (rem === half && (h & 1) === 1)) h++; // may reach 0x0400, the smallest normal: correct
      }
    }
    out[i] = sign | h;
  }
  return out;
}

/** IEEE binary16 bits -> float32 (exact; NaN payloads are kept). */
export function f16BitsToFloat32(src: Uint16Array | ArrayLike<number>): Float32Array {
  const out = new Float32Array(src.length);
  const bits = u32View(out);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]! & 0xffff;
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[i] = sign | 0x7f800000 | (mant << 13);
    } else if (exp !== 0) {
      bits[i] = sign | ((exp + 112) << 23) | (mant << 13);
    } else {
      // zero or subnormal: mant * 2^-24 is exact in float32
      out[i] = (sign ? -1 : 1) * mant * 2 ** -24;
    }
  }
  return out;
}
