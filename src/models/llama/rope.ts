import type { ConfigReader, RawConfig } from '../config-fields.js';

/** RoPE variants implemented here (transformers' `rope_type`; `default` is the original RoPE). */
export const ropeTypes = ['default', 'linear', 'dynamic', 'llama3'] as const;
export type RopeType = (typeof ropeTypes)[number];

/**
 * transformers' standardised `rope_parameters` (camelCase). `factor` is set for `linear`, `dynamic` and `llama3`;
 * the frequency factors and `originalMaxPositionEmbeddings` for `llama3` only.
 */
export interface RopeParameters {
  readonly ropeType: RopeType;
  readonly ropeTheta: number;
  readonly factor?: number;
  readonly lowFreqFactor?: number;
  readonly highFreqFactor?: number;
  readonly originalMaxPositionEmbeddings?: number;
}

/** transformers' `RotaryEmbeddingConfigMixin.default_theta`. */
export const DEFAULT_ROPE_THETA = 10000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The RoPE settings of a config.json, standardised as transformers 5 does (`convert_rope_params_to_dict` /
 * `standardize_rope_params`): the legacy `rope_scaling` dict wins over `rope_parameters` when non-empty; a
 * top-level `rope_theta` (default 10000) fills a missing `rope_theta`; `type` is the legacy name of
 * `rope_type`; llama3's `original_max_position_embeddings` comes from a top-level field of that name if any,
 * else the dict, else `max_position_embeddings`. Problems are recorded on `r`.
 */
export function parseRopeParameters(raw: RawConfig, r: ConfigReader, maxPositionEmbeddings: number, layerTypes: readonly string[] = []): RopeParameters {
  const scaling = raw['rope_scaling'];
  const params = raw['rope_parameters'];
  for (const key of ['rope_scaling', 'rope_parameters']) {
    const v = raw[key];
    r.check(v === undefined || v === null || isObject(v), key, `must be an object or null, got ${JSON.stringify(v)}`);
  }
  const dict: Record<string, unknown> =
    isObject(scaling) && Object.keys(scaling).length > 0 ? scaling : isObject(params) ? params : {};
  const key = dict === scaling ? 'rope_scaling' : 'rope_parameters';
  const nested = Object.keys(dict).filter((k) => layerTypes.includes(k));
  r.check(nested.length === 0, key, `RoPE parameters per layer type (${nested.join(', ')}) are not supported`);

  const topTheta = raw['rope_theta'] ?? DEFAULT_ROPE_THETA;
  const ropeTheta = dict['rope_theta'] ?? topTheta;
  const ropeType = dict['rope_type'] ?? dict['type'] ?? 'default';
  const partial = dict['partial_rotary_factor'] ?? raw['partial_rotary_factor'] ?? 1;
  r.check(typeof ropeTheta === 'number' && ropeTheta > 0, 'rope_theta', `must be a positive number, got ${JSON.stringify(ropeTheta)}`);
  r.check(partial === 1, 'partial_rotary_factor', `only 1 (RoPE on the whole head) is supported by this architecture, got ${JSON.stringify(partial)}`);
  if (typeof ropeType !== 'string' || !(ropeTypes as readonly string[]).includes(ropeType)) {
    r.check(false, key, `rope_type ${JSON.stringify(ropeType)} is not supported; supported: ${ropeTypes.join(', ')}`);
    return { ropeType: 'default', ropeTheta: typeof ropeTheta === 'number' ? ropeTheta : DEFAULT_ROPE_THETA };
  }
  const base = { ropeType: ropeType as RopeType, ropeTheta: ropeTheta as number };
  if (ropeType === 'default') return base;

  const num = (name: string, value: unknown, positive = true): number => {
    const ok = typeof value === 'number' && Number.isFinite(value) && (!positive || value > 0);
    r.check(ok, key, `${name} is required for rope_type "${ropeType}" and must be a ${positive ? 'positive ' : ''}number, got ${JSON.stringify(value)}`);
    return ok ? value : 1;
  };
  const factor = num('factor', dict['factor']);
  if (ropeType !== 'llama3') return { ...base, factor };
  const lowFreqFactor = num('low_freq_factor', dict['low_freq_factor']);
  const highFreqFactor = num('high_freq_factor', dict['high_freq_factor']);
  r.check(highFreqFactor !== lowFreqFactor, key, 'high_freq_factor must differ from low_freq_factor');
  const original = num(
    'original_max_position_embeddings',
    raw['original_max_position_embeddings'] ?? dict['original_max_position_embeddings'] ?? maxPositionEmbeddings,
  );
  return { ...base, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: original };
}

const f32 = Math.fround;

/**
 * The original RoPE inverse frequencies `1 / base^(2i / dim)`, i = 0..dim/2-1, rounded step by step to float32
 * as PyTorch computes them (`torch.arange(0, dim, 2).float() / dim`, a float32 power and reciprocal).
 */
export function defaultInvFreq(base: number, dim: number): Float32Array {
  const out = new Float32Array(Math.floor((dim + 1) / 2));
  for (let i = 0; i < out.length; i++) out[i] = f32(1 / f32(Math.pow(base, f32((2 * i) / dim))));
  return out;
}

/**
 * The inverse frequencies and attention scaling of `rope` for heads of `dim`, as transformers' `ROPE_INIT_FUNCTIONS`
 * compute them at initialisation. For `dynamic`, `seqLen` above `maxPositionEmbeddings` gives the NTK-scaled
 * frequencies that transformers switches to for longer inputs.
 */
export function computeRopeInvFreq(
  rope: RopeParameters,
  dim: number,
  maxPositionEmbeddings: number,
  seqLen?: number,
): { invFreq: Float32Array; attentionScaling: number } {
  const factor = rope.factor ?? 1;
  switch (rope.ropeType) {
    case 'default':
      return { invFreq: defaultInvFreq(rope.ropeTheta, dim), attentionScaling: 1 };
    case 'linear':
      return { invFreq: defaultInvFreq(rope.ropeTheta, dim).map((v) => f32(v / f32(factor))), attentionScaling: 1 };
    case 'dynamic':
      return { invFreq: dynamicNtkInvFreq(rope.ropeTheta, factor, dim, maxPositionEmbeddings, seqLen), attentionScaling: 1 };
    case 'llama3':
      return { invFreq: llama3InvFreq(rope, dim), attentionScaling: 1 };
  }
}

/**
 * `_compute_dynamic_ntk_parameters`: base' = base * ((factor * L / max) - (factor - 1))^(dim / (dim - 2)) with
 * L = max(seqLen, max). At initialisation (no seqLen) transformers computes this in float64 (L = max, so
 * base' = base); at run time with a tensor seqLen in float32, which is mirrored here.
 */
function dynamicNtkInvFreq(base: number, factor: number, dim: number, maxPos: number, seqLen?: number): Float32Array {
  let scaledBase: number;
  if (seqLen === undefined) {
    scaledBase = base * Math.pow((factor * maxPos) / maxPos - (factor - 1), dim / (dim - 2));
  } else {
    const len = Math.max(seqLen, maxPos);
    const ratio = f32(f32(f32(f32(factor) * len) / maxPos) - f32(factor - 1));
    scaledBase = f32(f32(base) * f32(Math.pow(ratio, f32(dim / (dim - 2)))));
  }
  return defaultInvFreq(scaledBase, dim);
}

/** `_compute_llama3_parameters` (Llama 3.1): per-frequency scaling by wavelength, smoothed in between. */
function llama3InvFreq(rope: RopeParameters, dim: number): Float32Array {
  const factor = f32(rope.factor!);
  const low = rope.lowFreqFactor!;
  const high = rope.highFreqFactor!;
  const oldContextLen = rope.originalMaxPositionEmbeddings!;
  const lowFreqWavelen = f32(oldContextLen / low);
  const highFreqWavelen = f32(oldContextLen / high);
  const twoPi = f32(2 * Math.PI);
  return defaultInvFreq(rope.ropeTheta, dim).map((inv) => {
    const wavelen = f32(twoPi / inv);
    if (wavelen > lowFreqWavelen) return f32(inv / factor);
    if (wavelen < highFreqWavelen) return inv;
    const smooth = f32(f32(f32(f32(oldContextLen) / wavelen) - f32(low)) / f32(high - low));
    return f32(f32(f32(f32(1 - smooth) * inv) / factor) + f32(smooth * inv));
  });
}
