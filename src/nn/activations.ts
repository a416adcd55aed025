import { tf } from '../engine/tf.js';
import { ConfigError } from '../errors.js';
import type { ForwardContext } from './context.js';
import { Module } from './module.js';

/** An elementwise activation: returns a new tensor and leaves no intermediates behind. */
export type ActivationFn = (x: tf.Tensor) => tf.Tensor;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const SQRT_HALF = Math.SQRT1_2;

/** Exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (PyTorch's default `F.gelu`, transformers' `gelu`). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT_HALF)), 1)));
}

/**
 * Tanh-approximated GELU, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: transformers' `gelu_new`,
 * `gelu_pytorch_tanh` and `gelu_accurate`, and PyTorch's `F.gelu(approximate='tanh')`.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** transformers' `gelu_new` (OpenAI GPT / GPT-2). Same function as {@link geluTanh}. */
export const geluNew: ActivationFn = geluTanh;

/** transformers' `gelu_fast`: `0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x^2)))`. */
export function geluFast(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.mul(x, 0.7978845608), tf.add(tf.mul(tf.square(x), 0.044715), 1));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** CLIP's `quick_gelu`: `x * sigmoid(1.702 x)`. */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** SiLU / swish: `x * sigmoid(x)`. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

export function relu(x: tf.Tensor): tf.Tensor {
  return tf.relu(x);
}

export function relu6(x: tf.Tensor): tf.Tensor {
  return tf.relu6(x);
}

/** transformers' `relu2`: `relu(x)^2`. */
export function reluSquared(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.square(tf.relu(x)));
}

/** PyTorch's `nn.LeakyReLU` (default slope 0.01). */
export function leakyRelu(x: tf.Tensor, negativeSlope = 0.01): tf.Tensor {
  return tf.leakyRelu(x, negativeSlope);
}

export function tanh(x: tf.Tensor): tf.Tensor {
  return tf.tanh(x);
}

export function sigmoid(x: tf.Tensor): tf.Tensor {
  return tf.sigmoid(x);
}

/** Mish: `x * tanh(softplus(x))`. */
export function mish(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.tanh(tf.softplus(x))));
}

/** transformers' `laplace`: `0.5 (1 + erf((x - mu) / (sigma sqrt 2)))`, mu = 0.707107, sigma = 0.282095. */
export function laplace(x: tf.Tensor, mu = 0.707107, sigma = 0.282095): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.add(tf.erf(tf.div(tf.sub(x, mu), sigma * Math.SQRT2)), 1), 0.5));
}

/** transformers' `gelu_10`: exact GELU clipped to [-10, 10]. */
export function gelu10(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.clipByValue(gelu(x), -10, 10));
}

/** The identity (transformers' `linear`); returns a new tensor handle sharing `x`'s data. */
export function identity(x: tf.Tensor): tf.Tensor {
  return tf.clone(x);
}

/** transformers' `ACT2FN` names (those without parameters), as used in `hidden_act` / `activation_function`. */
const ACT2FN = {
  gelu,
  gelu_10: gelu10,
  gelu_fast: geluFast,
  gelu_new: geluTanh,
  gelu_python: gelu,
  gelu_pytorch_tanh: geluTanh,
  gelu_accurate: geluTanh,
  laplace: (x: tf.Tensor) => laplace(x),
  leaky_relu: (x: tf.Tensor) => leakyRelu(x),
  linear: identity,
  mish,
  quick_gelu: quickGelu,
  relu,
  relu2: reluSquared,
  relu6,
  sigmoid,
  silu,
  swish: silu,
  tanh,
} satisfies Record<string, ActivationFn>;

export type ActivationName = keyof typeof ACT2FN;

/** Names accepted by {@link getActivation}. */
export const activationNames = Object.keys(ACT2FN) as ActivationName[];

export function isActivationName(name: string): name is ActivationName {
  return Object.prototype.hasOwnProperty.call(ACT2FN, name);
}

/**
 * The activation transformers' `ACT2FN[name]` gives. Throws `ConfigError` (listing the supported names) for an
 * unknown name; `path` locates the offending config field in that error (default `['hidden_act']`).
 */
export function getActivation(name: string, path: readonly (string | number)[] = ['hidden_act']): ActivationFn {
  if (!isActivationName(name)) {
    throw new ConfigError([
      { code: 'invalid_value', path, message: `unknown activation "${name}"; supported: ${activationNames.join(', ')}` },
    ]);
  }
  return ACT2FN[name];
}

/** An activation as a module (no parameters), e.g. `mlp.act` in a model's module tree. */
export class Activation extends Module {
  readonly name: string;
  private readonly fn: ActivationFn;

  constructor(nameOrFn: string | ActivationFn, name?: string) {
    super();
    if (typeof nameOrFn === 'string') {
      this.fn = getActivation(nameOrFn);
      this.name = nameOrFn;
    } else {
      this.fn = nameOrFn;
      this.name = name ?? (nameOrFn.name || 'activation');
    }
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return this.fn(x);
  }

  override extraRepr(): string {
    return this.name;
  }
}

/** PyTorch's `nn.GELU(approximate='none' | 'tanh')`. */
export class GELU extends Activation {
  readonly approximate: 'none' | 'tanh';
  constructor(options: { approximate?: 'none' | 'tanh' } = {}) {
    const approximate = options.approximate ?? 'none';
    super(approximate === 'tanh' ? geluTanh : gelu, approximate === 'tanh' ? 'gelu_pytorch_tanh' : 'gelu');
    this.approximate = approximate;
  }
  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

/** PyTorch's `nn.SiLU`. */
export class SiLU extends Activation {
  constructor() {
    super(silu, 'silu');
  }
  override extraRepr(): string {
    return '';
  }
}

/** PyTorch's `nn.ReLU`. */
export class ReLU extends Activation {
  constructor() {
    super(relu, 'relu');
  }
  override extraRepr(): string {
    return '';
  }
}

/** PyTorch's `nn.Tanh`. */
export class Tanh extends Activation {
  constructor() {
    super(tanh, 'tanh');
  }
  override extraRepr(): string {
    return '';
  }
}
