/**
 * Weight initialisers with PyTorch's `torch.nn.init` semantics (same distributions and bounds; the random
 * streams differ). Each returns a new float32 tensor; pass `seed` for a reproducible draw.
 */
import { tf } from '../engine/tf.js';
import { ConfigError } from '../errors.js';

export interface SeedOption {
  /** Seed for TF.js's random generator; omitted means a fresh random draw. */
  seed?: number;
}

export type FanMode = 'fan_in' | 'fan_out';

export type Nonlinearity =
  | 'linear'
  | 'conv1d'
  | 'conv2d'
  | 'conv3d'
  | 'conv_transpose1d'
  | 'conv_transpose2d'
  | 'conv_transpose3d'
  | 'sigmoid'
  | 'tanh'
  | 'relu'
  | 'leaky_relu'
  | 'selu';

/** `torch.nn.init._calculate_fan_in_and_fan_out`: dims 1 and 0 times the receptive field (dims 2...). */
export function computeFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new ConfigError(
      [{ code: 'invalid_value', path: ['shape'], message: `fan in and fan out need at least 2 dimensions, got [${shape.join(', ')}]` }],
      'initialiser arguments',
    );
  }
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i]!;
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** `torch.nn.init.calculate_gain`. `param` is the negative slope for `leaky_relu` (default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'conv1d':
    case 'conv2d':
    case 'conv3d':
    case 'conv_transpose1d':
    case 'conv_transpose2d':
    case 'conv_transpose3d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
  }
}

/** `torch.nn.init.uniform_`: U(low, high). */
export function uniform(shape: readonly number[], low = 0, high = 1, options: SeedOption = {}): tf.Tensor {
  if (high === low) return tf.fill([...shape], low);
  return tf.randomUniform([...shape], low, high, 'float32', options.seed);
}

/** `torch.nn.init.normal_`: N(mean, std^2). */
export function normal(shape: readonly number[], mean = 0, std = 1, options: SeedOption = {}): tf.Tensor {
  if (std === 0) return tf.fill([...shape], mean);
  return tf.randomNormal([...shape], mean, std, 'float32', normalSeed(options.seed));
}

/** TF.js's normal sampler treats seed 0 as "unseeded"; map it to another fixed seed so 0 is reproducible too. */
function normalSeed(seed: number | undefined): number | undefined {
  return seed === 0 ? 0x5eed : seed;
}

export function zeros(shape: readonly number[]): tf.Tensor {
  return tf.zeros([...shape], 'float32');
}

export function ones(shape: readonly number[]): tf.Tensor {
  return tf.ones([...shape], 'float32');
}

export interface KaimingOptions extends SeedOption {
  /** Negative slope of the rectifier after this layer (only for `leaky_relu`; default 0). */
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
  /** Overrides the fan-in computed from `shape` (used when `mode` is `fan_in`). */
  fanIn?: number;
  /** Overrides the fan-out computed from `shape` (used when `mode` is `fan_out`). */
  fanOut?: number;
}

function kaimingStd(shape: readonly number[], options: KaimingOptions): number {
  const mode = options.mode ?? 'fan_in';
  const override = mode === 'fan_in' ? options.fanIn : options.fanOut;
  const fan = override ?? (mode === 'fan_in' ? computeFans(shape).fanIn : computeFans(shape).fanOut);
  if (fan === 0) return 0;
  const gain = calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0);
  return gain / Math.sqrt(fan);
}

/**
 * `torch.nn.init.kaiming_uniform_`: U(-b, b) with b = gain * sqrt(3 / fan). With `a: Math.sqrt(5)` (PyTorch's
 * Linear/Conv default and LoRA's `lora_A` init) b = 1 / sqrt(fan_in).
 */
export function kaimingUniform(shape: readonly number[], options: KaimingOptions = {}): tf.Tensor {
  const bound = Math.sqrt(3) * kaimingStd(shape, options);
  return uniform(shape, -bound, bound, options);
}

/** `torch.nn.init.kaiming_normal_`: N(0, std^2) with std = gain / sqrt(fan). */
export function kaimingNormal(shape: readonly number[], options: KaimingOptions = {}): tf.Tensor {
  return normal(shape, 0, kaimingStd(shape, options), options);
}

export interface XavierOptions extends SeedOption {
  gain?: number;
}

/** `torch.nn.init.xavier_uniform_`: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: readonly number[], options: XavierOptions = {}): tf.Tensor {
  const { fanIn, fanOut } = computeFans(shape);
  const bound = (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -bound, bound, options);
}

/** `torch.nn.init.xavier_normal_`: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal(shape: readonly number[], options: XavierOptions = {}): tf.Tensor {
  const { fanIn, fanOut } = computeFans(shape);
  return normal(shape, 0, (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), options);
}

/**
 * PyTorch's default initialisation of a Linear/Conv layer: weight `kaiming_uniform_(a=sqrt(5))`, bias
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The bias draws with `seed + 1` when a seed is given.
 */
export function defaultLayerInit(
  weightShape: readonly number[],
  biasShape: readonly number[] | null,
  options: SeedOption = {},
): { weight: tf.Tensor; bias: tf.Tensor | null } {
  const weight = kaimingUniform(weightShape, { a: Math.sqrt(5), seed: options.seed });
  if (biasShape === null) return { weight, bias: null };
  const { fanIn } = computeFans(weightShape);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  const bias = uniform(biasShape, -bound, bound, { seed: options.seed === undefined ? undefined : options.seed + 1 });
  return { weight, bias };
}

/** Construction options shared by layers with weights. */
export interface LayerInitOptions extends SeedOption {
  /**
   * Fill the weights with zeros (norm weights with ones) instead of drawing them: for layers whose weights are
   * loaded from a checkpoint right away (PyTorch's `skip_init` / meta-device construction).
   */
  skipInit?: boolean;
}

/** A seed for one part of a model (an adapter's module), derived from a run seed and a label (FNV-1a). */
export function deriveSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
