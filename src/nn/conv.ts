import { tf } from '../engine/tf.js';
import { ConfigError, ShapeError } from '../errors.js';
import type { ForwardContext } from './context.js';
import { defaultLayerInit, zeros } from './init.js';
import type { LayerInitOptions } from './init.js';
import { Module } from './module.js';
import { pyTuple } from './repr.js';
import type { AdaptableLayer, Parameter } from './module.js';

/** How PyTorch pads a convolution's input (`padding_mode`). */
export type PaddingMode = 'zeros' | 'reflect' | 'replicate' | 'circular';

export type IntPair = readonly [number, number];

export interface ConvOptions<T> extends LayerInitOptions {
  stride?: T;
  /** Zero-padding on both sides of each spatial dim, or `'same'` (stride 1 only) / `'valid'` (no padding). */
  padding?: T | 'same' | 'valid';
  dilation?: T;
  groups?: number;
  /** Learn an additive bias (default true). */
  bias?: boolean;
  paddingMode?: PaddingMode;
}

export type Conv2dOptions = ConvOptions<number | IntPair>;
export type Conv1dOptions = ConvOptions<number | readonly [number]>;

/** Resolved spatial parameters of a 2-D convolution (a 1-D one has height 1). */
export interface Conv2dParams {
  stride: IntPair;
  /** [top, bottom, left, right]. */
  pad: readonly [number, number, number, number];
  dilation: IntPair;
  groups: number;
  paddingMode: PaddingMode;
}

/**
 * PyTorch's `F.conv2d` on NCHW input `x [N, C, H, W]` with weight `[O, C/groups, kH, kW]`, plus the explicit
 * padding of `params` (in `paddingMode`). Runs on TF.js's NHWC kernels: plain `conv2d` for `groups == 1`,
 * `depthwiseConv2d` for `groups == C`, one conv per group otherwise. Dilation is applied by spreading the kernel
 * with zeros, since TF.js has no conv2d gradient for dilated kernels and no strided dilated conv.
 */
export function conv2dNCHW(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | null, params: Conv2dParams): tf.Tensor {
  return tf.tidy(() => {
    const { stride, pad, dilation, groups } = params;
    const inChannels = x.shape[1]!;
    const outChannels = weight.shape[0]!;
    let xh = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
    if (pad.some((p) => p > 0)) xh = padSpatial(xh, pad, params.paddingMode);
    let w = tf.transpose(weight, [2, 3, 1, 0]) as tf.Tensor4D; // [kH, kW, C/groups, O]
    if (dilation[0] > 1 || dilation[1] > 1) w = dilateKernel(w, dilation);
    const strides: [number, number] = [stride[0], stride[1]];
    let y: tf.Tensor4D;
    if (groups === 1) {
      y = tf.conv2d(xh, w, strides, 'valid');
    } else if (groups === inChannels) {
      // Output channel o = c * multiplier + j reads input channel c: TF's depthwise order.
      const [kh, kw] = w.shape;
      const wd = tf.reshape(w, [kh, kw, inChannels, outChannels / inChannels]) as tf.Tensor4D;
      y = tf.depthwiseConv2d(xh, wd, strides, 'valid') as tf.Tensor4D;
    } else {
      const xs = tf.split(xh, groups, 3) as tf.Tensor4D[];
      const ws = tf.split(w, groups, 3) as tf.Tensor4D[];
      y = tf.concat(xs.map((xg, g) => tf.conv2d(xg, ws[g]!, strides, 'valid')), 3);
    }
    if (bias) y = tf.add(y, bias);
    return tf.transpose(y, [0, 3, 1, 2]);
  });
}

/** Inserts `dilation - 1` zeros between kernel taps: `[kH, kW, I, O]` -> `[d(kH-1)+1, d(kW-1)+1, I, O]`. */
function dilateKernel(w: tf.Tensor4D, dilation: IntPair): tf.Tensor4D {
  let out: tf.Tensor = w;
  for (const axis of [0, 1] as const) {
    const d = dilation[axis];
    if (d === 1) continue;
    const shape = out.shape;
    const k = shape[axis]!;
    const expanded = tf.expandDims(out, axis + 1);
    const zeroShape = [...shape];
    zeroShape.splice(axis + 1, 0, d - 1);
    const spread = tf.concat([expanded, tf.zeros(zeroShape)], axis + 1);
    const flatShape = [...shape];
    flatShape[axis] = k * d;
    const size = shape.map((s, i) => (i === axis ? (k - 1) * d + 1 : s));
    out = tf.slice(tf.reshape(spread, flatShape), shape.map(() => 0), size);
  }
  return out as tf.Tensor4D;
}

/** Pads H (axis 1) and W (axis 2) of NHWC `x` by `[top, bottom, left, right]` as PyTorch's `F.pad(mode)`. */
function padSpatial(x: tf.Tensor4D, pad: readonly [number, number, number, number], mode: PaddingMode): tf.Tensor4D {
  const [top, bottom, left, right] = pad;
  const paddings: Array<[number, number]> = [[0, 0], [top, bottom], [left, right], [0, 0]];
  if (mode === 'zeros') return tf.pad(x, paddings);
  if (mode === 'reflect') {
    if (top >= x.shape[1] || bottom >= x.shape[1] || left >= x.shape[2] || right >= x.shape[2]) {
      throw new ShapeError(`reflect padding (${pad.join(', ')}) must be smaller than the input size [${x.shape.slice(1, 3).join(', ')}].`);
    }
    return tf.mirrorPad(x, paddings, 'reflect');
  }
  let out: tf.Tensor = x;
  for (const [axis, before, after] of [[1, top, bottom], [2, left, right]] as const) {
    if (before === 0 && after === 0) continue;
    const n = out.shape[axis]!;
    const take = (start: number, count: number) => {
      const begin = out.shape.map((_, i) => (i === axis ? start : 0));
      const size = out.shape.map((s, i) => (i === axis ? count : s));
      return tf.slice(out, begin, size);
    };
    const parts: tf.Tensor[] = [];
    if (mode === 'circular') {
      if (before > n || after > n) {
        throw new ShapeError(`circular padding (${pad.join(', ')}) must not exceed the input size [${x.shape.slice(1, 3).join(', ')}].`);
      }
      if (before > 0) parts.push(take(n - before, before));
      parts.push(out);
      if (after > 0) parts.push(take(0, after));
    } else {
      const reps = (count: number) => out.shape.map((_, i) => (i === axis ? count : 1));
      if (before > 0) parts.push(tf.tile(take(0, 1), reps(before)));
      parts.push(out);
      if (after > 0) parts.push(tf.tile(take(n - 1, 1), reps(after)));
    }
    out = tf.concat(parts, axis);
  }
  return out as tf.Tensor4D;
}

function configError(what: string, field: string, message: string): ConfigError {
  return new ConfigError([{ code: 'invalid_value', path: [field], message }], `${what} arguments`);
}

function toTuple(value: number | readonly number[], n: number, what: string, field: string, min: number): number[] {
  const out = typeof value === 'number' ? Array<number>(n).fill(value) : [...value];
  if (out.length !== n || out.some((v) => !Number.isInteger(v) || v < min)) {
    throw configError(what, field, `expected ${n === 1 ? 'an integer' : `an integer or ${n} integers`} >= ${min}, got ${JSON.stringify(value)}`);
  }
  return out;
}

/** Shared construction and checking for Conv1d / Conv2d, with spatial tuples of length `n`. */
abstract class ConvNd extends Module implements AdaptableLayer {
  abstract readonly kind: 'conv1d' | 'conv2d';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: readonly number[];
  readonly stride: readonly number[];
  /** Per-dim symmetric padding, or `'same'` / `'valid'` as given. */
  readonly padding: readonly number[] | 'same' | 'valid';
  readonly dilation: readonly number[];
  readonly groups: number;
  readonly paddingMode: PaddingMode;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** Resolved `[before, after]` padding for each spatial dim. */
  protected readonly padPairs: ReadonlyArray<readonly [number, number]>;

  protected constructor(
    n: number,
    inChannels: number,
    outChannels: number,
    kernelSize: number | readonly number[],
    options: ConvOptions<number | readonly number[]>,
  ) {
    super();
    const what = `Conv${n}d`;
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = toTuple(kernelSize, n, what, 'kernelSize', 1);
    this.stride = toTuple(options.stride ?? 1, n, what, 'stride', 1);
    this.dilation = toTuple(options.dilation ?? 1, n, what, 'dilation', 1);
    this.groups = options.groups ?? 1;
    this.paddingMode = options.paddingMode ?? 'zeros';
    if (!['zeros', 'reflect', 'replicate', 'circular'].includes(this.paddingMode)) {
      throw configError(what, 'paddingMode', `must be one of zeros, reflect, replicate, circular, got "${this.paddingMode}"`);
    }
    if (!Number.isInteger(this.groups) || this.groups < 1) throw configError(what, 'groups', `must be a positive integer, got ${this.groups}`);
    if (inChannels % this.groups !== 0) throw configError(what, 'groups', `in_channels (${inChannels}) must be divisible by groups (${this.groups})`);
    if (outChannels % this.groups !== 0) throw configError(what, 'groups', `out_channels (${outChannels}) must be divisible by groups (${this.groups})`);
    const padding = options.padding ?? 0;
    if (padding === 'same') {
      if (this.stride.some((s) => s !== 1)) throw configError(what, 'padding', "padding='same' is not supported for strided convolutions");
      this.padding = 'same';
      this.padPairs = this.kernelSize.map((k, i) => {
        const total = this.dilation[i]! * (k - 1);
        return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
      });
    } else if (padding === 'valid') {
      this.padding = 'valid';
      this.padPairs = this.kernelSize.map(() => [0, 0] as const);
    } else {
      const p = toTuple(padding, n, what, 'padding', 0);
      this.padding = p;
      this.padPairs = p.map((v) => [v, v] as const);
    }
    const weightShape = [outChannels, inChannels / this.groups, ...this.kernelSize];
    const hasBias = options.bias ?? true;
    const init = options.skipInit
      ? { weight: zeros(weightShape), bias: hasBias ? zeros([outChannels]) : null }
      : defaultLayerInit(weightShape, hasBias ? [outChannels] : null, options);
    this.weight = this.registerParameter('weight', init.weight);
    this.bias = init.bias ? this.registerParameter('bias', init.bias) : null;
  }

  abstract forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor;

  protected checkInput(x: tf.Tensor, n: number): boolean {
    const what = `Conv${n}d`;
    if (x.rank !== n + 1 && x.rank !== n + 2) {
      throw new ShapeError(`${what} expects input of rank ${n + 1} or ${n + 2} (channels first), got shape [${x.shape.join(', ')}].`);
    }
    const batched = x.rank === n + 2;
    const channels = x.shape[batched ? 1 : 0];
    if (channels !== this.inChannels) {
      throw new ShapeError(`${what} expects ${this.inChannels} input channels, got shape [${x.shape.join(', ')}].`);
    }
    return batched;
  }

  override extraRepr(): string {
    let s = `${this.inChannels}, ${this.outChannels}, kernel_size=${pyTuple(this.kernelSize)}, stride=${pyTuple(this.stride)}`;
    if (typeof this.padding === 'string') s += `, padding=${this.padding}`;
    else if (this.padding.some((p) => p !== 0)) s += `, padding=${pyTuple(this.padding)}`;
    if (this.dilation.some((d) => d !== 1)) s += `, dilation=${pyTuple(this.dilation)}`;
    if (this.groups !== 1) s += `, groups=${this.groups}`;
    if (!this.bias) s += ', bias=False';
    if (this.paddingMode !== 'zeros') s += `, padding_mode=${this.paddingMode}`;
    return s;
  }
}

/**
 * PyTorch's `nn.Conv2d`: input `[N, C, H, W]` (or unbatched `[C, H, W]`), weight `[out, in/groups, kH, kW]`,
 * so PyTorch and PEFT state dicts load unchanged.
 */
export class Conv2d extends ConvNd {
  readonly kind = 'conv2d' as const;
  declare readonly kernelSize: IntPair;
  declare readonly stride: IntPair;
  declare readonly padding: IntPair | 'same' | 'valid';
  declare readonly dilation: IntPair;

  constructor(inChannels: number, outChannels: number, kernelSize: number | IntPair, options: Conv2dOptions = {}) {
    super(2, inChannels, outChannels, kernelSize, options);
  }

  /** The resolved spatial parameters (what `conv2dNCHW` takes). */
  get convParams(): Conv2dParams {
    const [[top, bottom], [left, right]] = this.padPairs as [readonly [number, number], readonly [number, number]];
    return { stride: this.stride, pad: [top, bottom, left, right], dilation: this.dilation, groups: this.groups, paddingMode: this.paddingMode };
  }

  override forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    const batched = this.checkInput(x, 2);
    return tf.tidy(() => {
      const x4 = batched ? x : tf.expandDims(x, 0);
      const y = conv2dNCHW(x4, this.weight, this.bias, this.convParams);
      return batched ? y : tf.squeeze(y, [0]);
    });
  }
}

/**
 * PyTorch's `nn.Conv1d`: input `[N, C, L]` (or unbatched `[C, L]`), weight `[out, in/groups, k]`. Runs as a
 * 2-D convolution of height 1.
 */
export class Conv1d extends ConvNd {
  readonly kind = 'conv1d' as const;
  declare readonly kernelSize: readonly [number];
  declare readonly stride: readonly [number];
  declare readonly padding: readonly [number] | 'same' | 'valid';
  declare readonly dilation: readonly [number];

  constructor(inChannels: number, outChannels: number, kernelSize: number | readonly [number], options: Conv1dOptions = {}) {
    super(1, inChannels, outChannels, kernelSize, options);
  }

  /** The resolved parameters of the equivalent height-1 2-D convolution. */
  get convParams(): Conv2dParams {
    const [[left, right]] = this.padPairs as [readonly [number, number]];
    return {
      stride: [1, this.stride[0]],
      pad: [0, 0, left, right],
      dilation: [1, this.dilation[0]],
      groups: this.groups,
      paddingMode: this.paddingMode,
    };
  }

  override forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    const batched = this.checkInput(x, 1);
    return tf.tidy(() => {
      const x3 = batched ? x : tf.expandDims(x, 0);
      const x4 = tf.expandDims(x3, 2); // [N, C, 1, L]
      const w4 = tf.expandDims(this.weight, 2); // [O, C/g, 1, k]
      const y = tf.squeeze(conv2dNCHW(x4, w4, this.bias, this.convParams), [2]);
      return batched ? y : tf.squeeze(y, [0]);
    });
  }
}
