import { tf } from '../engine/tf.js';
import { ConfigError } from '../errors.js';
import type { ForwardContext } from './context.js';
import { Module } from './module.js';
import { pyFloat } from './repr.js';

export interface DropoutOptions {
  /**
   * Makes the masks reproducible: each forward call draws its mask with the next seed of a generator started
   * from this one, so successive calls differ but a re-run gives the same sequence.
   */
  seed?: number;
}

/**
 * PyTorch's `nn.Dropout`: in training, zeroes each element with probability `p` and scales the rest by
 * `1 / (1 - p)`; in eval mode (or with `p = 0`) returns its input unchanged (as a new tensor handle).
 */
export class Dropout extends Module {
  readonly p: number;
  private rng: (() => number) | null;

  constructor(p = 0.5, options: DropoutOptions = {}) {
    super();
    if (!(p >= 0 && p <= 1)) {
      throw new ConfigError([{ code: 'invalid_value', path: ['p'], message: `dropout probability has to be between 0 and 1, got ${p}` }], 'Dropout arguments');
    }
    this.p = p;
    this.rng = options.seed === undefined ? null : mulberry32(options.seed);
  }

  /** Restarts the mask sequence from `seed` (or makes it unseeded with `null`). */
  reseed(seed: number | null): void {
    this.rng = seed === null ? null : mulberry32(seed);
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    if (!this.training || this.p === 0) return tf.clone(x);
    if (this.p === 1) return tf.zerosLike(x);
    const seed = this.rng ? Math.floor(this.rng() * 0x100000000) : undefined;
    return dropout(x, this.p, seed);
  }

  override extraRepr(): string {
    return `p=${pyFloat(this.p)}, inplace=False`;
  }
}

/** Inverted dropout with rate `p` (always applied; callers check training mode). */
export function dropout(x: tf.Tensor, p: number, seed?: number): tf.Tensor {
  if (p === 0) return tf.clone(x);
  if (p === 1) return tf.zerosLike(x);
  return tf.tidy(() => {
    const keep = 1 - p;
    const mask = tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', seed), p), 'float32');
    return tf.mul(x, tf.div(mask, keep));
  });
}

/** A tiny seeded PRNG (mulberry32) giving uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
