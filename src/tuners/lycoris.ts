// What the LyCORIS-family adapters (PEFT's `lycoris_utils.py`: LoHa, and later LoKr) share: per-adapter r, alpha,
// scaling and dropout settings, a forward that adds `base_layer`'s own op applied with the rebuilt delta weight
// (`F.linear(x, ΔW)` / `F.conv*(x, ΔW, ...)`), rank dropout over the delta's output rows, module dropout, and the
// scale helpers. Merging is the additive W += ΔW of `BaseTunerLayer`.
import { deriveSeed } from '../nn/init.js';
import { tf } from '../engine/tf.js';
import { ConfigError } from '../errors.js';
import type { ForwardContext } from '../nn/context.js';
import type { Conv1d, Conv2d } from '../nn/conv.js';
import { conv2dNCHW } from '../nn/conv.js';
import { mulberry32 } from '../nn/dropout.js';
import { linear } from '../nn/linear.js';
import type { Linear } from '../nn/linear.js';
import type { AdaptableLayer } from '../nn/module.js';
import { getPatternKey } from './matching.js';
import { BaseTunerLayer } from './tuner-layer.js';

/** Everything a LyCORIS layer's `updateLayer` needs for one adapter, after rank/alpha patterns. */
export interface LycorisLayerOptions {
  r: number;
  alpha: number;
  /** Probability of dropping each output row of ΔW in training (kept rows rescaled by 1 / fraction kept). */
  rankDropout: number;
  /** Probability of skipping the whole adapter for one forward call in training. */
  moduleDropout: number;
  /** `true`: the adapter starts as the identity (ΔW = 0); `false`: random non-identity init. */
  initWeights: boolean;
  /**
   * Seeds the initial draws of this adapter's tensors and (re)seeds the layer's dropout generator, for
   * reproducible runs. Omitted: fresh random draws and an unseeded generator.
   */
  seed?: number | undefined;
  /**
   * Allocate the adapter tensors as zeros without drawing initial values (PEFT's `low_cpu_mem_usage`, whose
   * tensors start empty on the meta device): for adapters whose weights are loaded right after.
   */
  skipInit?: boolean | undefined;
}

/** The config fields the LyCORIS tuners read (`LycorisConfig` plus the method's `r`/`alpha`/dropouts). */
export interface LycorisConfigFields {
  readonly r: number;
  readonly alpha: number;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
}

/**
 * `r` and `alpha` of module `key` (PEFT's `_create_and_replace`): each pattern dict is looked up independently
 * with `get_pattern_key`, falling back to the config's `r` / `alpha`.
 */
export function resolveRankAndAlpha(config: LycorisConfigFields, key: string): { r: number; alpha: number } {
  const rankKey = getPatternKey(Object.keys(config.rankPattern), key);
  const alphaKey = getPatternKey(Object.keys(config.alphaPattern), key);
  return { r: config.rankPattern[rankKey] ?? config.r, alpha: config.alphaPattern[alphaKey] ?? config.alpha };
}

/** A 32-bit FNV-1a hash, to derive a per-module seed from a model-level one. */

/**
 * PEFT's `LycorisLayer`: the per-adapter scalars and the forward/dropout logic shared by LoHa-like methods. A
 * subclass holds the adapter tensors (ParameterDicts named by `adapterLayerNames`) and rebuilds ΔW from them in
 * `getDeltaWeight`; the delta is applied with the base layer's own op (linear or convolution) and added to the
 * base output.
 */
export abstract class LycorisLayer extends BaseTunerLayer {
  readonly r = new Map<string, number>();
  readonly alpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();
  readonly rankDropout = new Map<string, number>();
  readonly moduleDropout = new Map<string, number>();
  protected readonly adapterScalars: readonly Map<string, unknown>[] = [this.r, this.alpha, this.scaling, this.rankDropout, this.moduleDropout];
  /** Uniforms in [0, 1) for rank and module dropout (PyTorch's `torch.rand` on the CPU generator). */
  private rng: () => number = Math.random;

  constructor(baseLayer: AdaptableLayer) {
    super(baseLayer);
  }

  /** Restarts the dropout generator from `seed` (`null`: unseeded, `Math.random`). */
  reseedDropout(seed: number | null): void {
    this.rng = seed === null ? Math.random : mulberry32(seed);
  }

  /** Records the scalars of adapter `name` (`r` must be a positive integer, as PEFT's `update_layer` checks). */
  protected setAdapterScalars(name: string, options: LycorisLayerOptions): void {
    const { r, alpha } = options;
    if (!Number.isInteger(r) || r <= 0) {
      throw new ConfigError([{ code: 'invalid_value', path: ['r'], message: `\`r\` should be a positive integer value but the value passed is ${r}` }], `${this.constructor.name} arguments`);
    }
    this.r.set(name, r);
    this.alpha.set(name, alpha);
    this.scaling.set(name, alpha / r);
    this.rankDropout.set(name, options.rankDropout);
    this.moduleDropout.set(name, options.moduleDropout);
    if (options.seed !== undefined) this.reseedDropout(deriveSeed(options.seed, 'dropout'));
  }

  /**
   * As `BaseTunerLayer.forward`, with PEFT's module dropout: in training each active adapter is skipped for the
   * whole call with probability `module_dropout` (no rescaling); evaluation is never affected.
   */
  override forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    if (this.disableAdapters) {
      if (this.merged) this.unmerge();
      return this.base_layer.forward(x, ctx);
    }
    if (this.merged) return this.base_layer.forward(x, ctx);
    return tf.tidy(() => {
      // On a Linear, x (W + ΣΔW)ᵀ + b equals PEFT's base(x) + Σ x ΔWᵀ with one full-width product instead of 1 + n
      // (and as many fewer in the backward pass).
      const fold = this.base_layer.kind === 'linear';
      let result: tf.Tensor | undefined = fold ? undefined : this.base_layer.forward(x, ctx);
      let weight: tf.Tensor | undefined;
      for (const name of this.activeAdapters) {
        if (!this.hasAdapter(name)) continue;
        const p = this.moduleDropout.get(name) ?? 0;
        // PEFT: applied iff `not training or torch.rand(1) > module_dropout`.
        if (this.training && p > 0 && !(this.rng() > p)) continue;
        if (fold) weight = tf.add(weight ?? (this.base_layer as unknown as Linear).weight, this.deltaWeightForForward(name));
        else result = tf.add(result!, this.adapterOutput(x, name));
      }
      if (!fold) return result!;
      if (weight === undefined) return this.base_layer.forward(x, ctx);
      return linear(x, weight, (this.base_layer as unknown as Linear).bias);
    });
  }

  /**
   * ΔW as the forward uses it: `getDeltaWeight`, then in training with `rank_dropout > 0` each output row (dim 0
   * of ΔW in base-weight shape) is kept iff `rand > p`, and the kept rows are divided by the fraction kept
   * (PEFT's `drop /= drop.mean()`). Merging never applies rank dropout (PEFT 0.21: `apply_rank_dropout=False`).
   */
  deltaWeightForForward(name: string): tf.Tensor {
    const p = this.rankDropout.get(name) ?? 0;
    if (!this.training || p === 0) return this.getDeltaWeight(name);
    return tf.tidy(() => {
      const delta = this.getDeltaWeight(name);
      const rows = delta.shape[0]!;
      const keep = new Float32Array(rows);
      let kept = 0;
      for (let i = 0; i < rows; i++) {
        if (this.rng() > p) {
          keep[i] = 1;
          kept++;
        }
      }
      // Deliberate deviation: PEFT divides by a zero mean when every row is dropped (NaN delta); here the delta
      // is zero then.
      if (kept === 0) return tf.zerosLike(delta);
      const inverseMean = 1 / Math.fround(kept / rows);
      const mask = tf.tensor(keep.map((k) => k * inverseMean), [rows, ...delta.shape.slice(1).map(() => 1)]);
      return tf.mul(delta, mask);
    });
  }

  /** The base layer's op applied with the adapter's delta weight (no bias: the base output has it). */
  protected override adapterOutput(x: tf.Tensor, name: string): tf.Tensor {
    return tf.tidy(() => applyLayerOp(this.base_layer, x, this.deltaWeightForForward(name)));
  }

  /** PEFT's `set_scale`: scaling = scale * alpha / r. */
  setScale(adapter: string, scale: number): void {
    if (!this.hasAdapter(adapter)) return;
    this.scaling.set(adapter, (scale * this.alpha.get(adapter)!) / this.r.get(adapter)!);
  }

  /** PEFT's `scale_layer`: multiplies the scaling of the active adapters. */
  scaleLayer(scale: number): void {
    if (scale === 1) return;
    for (const name of this.activeAdapters) if (this.hasAdapter(name)) this.scaling.set(name, this.scaling.get(name)! * scale);
  }

  /** PEFT's `unscale_layer`: back to alpha / r (no argument), or divides by `scale`. */
  unscaleLayer(scale?: number): void {
    for (const name of this.activeAdapters) {
      if (!this.hasAdapter(name)) continue;
      this.scaling.set(name, scale === undefined ? this.alpha.get(name)! / this.r.get(name)! : this.scaling.get(name)! / scale);
    }
  }
}

/**
 * `F.linear(x, w)` for a Linear base, `F.conv2d` / `F.conv1d(x, w, stride, padding, dilation, groups)` with the
 * base layer's settings for a convolution. As in PEFT, the base's `padding_mode` is not honoured (zero padding).
 */
export function applyLayerOp(base: AdaptableLayer, x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    switch (base.kind) {
      case 'linear':
        return linear(x, weight);
      case 'conv2d': {
        const conv = base as unknown as Conv2d;
        const batched = x.rank === 4;
        const x4 = batched ? x : tf.expandDims(x, 0);
        const y = conv2dNCHW(x4, weight, null, { ...conv.convParams, paddingMode: 'zeros' });
        return batched ? y : tf.squeeze(y, [0]);
      }
      case 'conv1d': {
        const conv = base as unknown as Conv1d;
        const batched = x.rank === 3;
        const x4 = tf.expandDims(batched ? x : tf.expandDims(x, 0), 2); // [N, C, 1, L]
        const y = tf.squeeze(conv2dNCHW(x4, tf.expandDims(weight, 2), null, { ...conv.convParams, paddingMode: 'zeros' }), [2]);
        return batched ? y : tf.squeeze(y, [0]);
      }
      default:
        throw new ConfigError([{ code: 'unsupported', path: ['base_layer'], message: `no LyCORIS layer op for layer kind ${base.kind}` }], 'LyCORIS layer');
    }
  });
}

/**
 * The Tucker rebuild of one LoHa factor, PEFT's `einsum("i j k l, j r, i p -> p r k l", t, wb, wa)`: core
 * `t [R, R', K, L]`, out-mode `wa [R, out]`, in-mode `wb [R', in]` -> `[out, in, K, L]`. Written with
 * transposes, reshapes and matmuls so that TF.js differentiates it (it has no einsum gradient).
 */
export function tuckerRebuild(t: tf.Tensor, wa: tf.Tensor, wb: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [i, j, k, l] = t.shape as [number, number, number, number];
    const out = wa.shape[1]!;
    const inDim = wb.shape[1]!;
    // Σ_j t[i, j, k, l] wb[j, c] -> [i, k, l, c]
    const tj = tf.reshape(tf.transpose(t, [0, 2, 3, 1]), [i * k * l, j]);
    const inner = tf.reshape(tf.matMul(tj as tf.Tensor2D, wb as tf.Tensor2D), [i, k * l * inDim]);
    // Σ_i wa[i, p] inner[i, ...] -> [p, k, l, c]
    const outer = tf.reshape(tf.matMul(wa as tf.Tensor2D, inner as tf.Tensor2D, true, false), [out, k, l, inDim]);
    return tf.transpose(outer, [0, 3, 1, 2]);
  });
}
