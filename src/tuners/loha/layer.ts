// PEFT's LoHa layers (`tuners/loha/layer.py`): ΔW = ((W1a W1b) ⊙ (W2a W2b)) · alpha / r, or for convolutions with
// `use_effective_conv2d` the FedPara Tucker form ΔW = R1 ⊙ R2 · alpha / r with Rk = Tk ×₁ Wkaᵀ ×₂ Wkbᵀ. ΔW is rebuilt
// on every forward and applied with the base layer's op; gradients come from TF.js autodiff.
import { tf } from '../../engine/tf.js';
import { ParameterDict } from '../../nn/dicts.js';
import type { Conv1d, Conv2d } from '../../nn/conv.js';
import { kaimingUniform, zeros } from '../../nn/init.js';
import type { AdaptableLayer } from '../../nn/module.js';
import { LycorisLayer, tuckerRebuild } from '../lycoris.js';
import type { LycorisLayerOptions } from '../lycoris.js';

/** Everything `updateLayer` needs for one LoHa adapter, after rank/alpha patterns are resolved for the module. */
export interface LoHaLayerOptions extends LycorisLayerOptions {
  /** Tucker form for convolutions whose kernel is not 1 (1x1 / k=1 convolutions always use the flat form). */
  useEffectiveConv2d: boolean;
}

/** The ParameterDicts of a LoHa layer, in PEFT's `adapter_layer_names` order (also the saved key suffixes). */
export const LOHA_ADAPTER_LAYER_NAMES = ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'] as const;

const SQRT5 = Math.sqrt(5);

/**
 * PEFT's `LoHaLayer`. Per adapter: `hada_w1_a`, `hada_w1_b`, `hada_w2_a`, `hada_w2_b` and, in the Tucker form,
 * `hada_t1`, `hada_t2` (see `createAdapterParameters` for the shapes). Subclasses give the shape ΔW is built in.
 */
export abstract class LoHaLayer extends LycorisLayer {
  readonly adapterLayerNames = LOHA_ADAPTER_LAYER_NAMES;
  hada_w1_a: ParameterDict;
  hada_w1_b: ParameterDict;
  hada_w2_a: ParameterDict;
  hada_w2_b: ParameterDict;
  hada_t1: ParameterDict;
  hada_t2: ParameterDict;

  constructor(baseLayer: AdaptableLayer, adapterName: string, options: LoHaLayerOptions) {
    super(baseLayer);
    this.hada_w1_a = this.registerModule('hada_w1_a', new ParameterDict());
    this.hada_w1_b = this.registerModule('hada_w1_b', new ParameterDict());
    this.hada_w2_a = this.registerModule('hada_w2_a', new ParameterDict());
    this.hada_w2_b = this.registerModule('hada_w2_b', new ParameterDict());
    this.hada_t1 = this.registerModule('hada_t1', new ParameterDict());
    this.hada_t2 = this.registerModule('hada_t2', new ParameterDict());
    this.activeAdapters = [adapterName];
    this.updateLayer(adapterName, options);
  }

  /**
   * The shape ΔW is built in: `[out, in]` (Linear), `[out, in/groups * prod(kernel)]` (flat conv) or
   * `[out, in/groups, ...kernel]` (Tucker conv).
   */
  abstract adapterShape(useEffectiveConv2d: boolean): number[];

  /** Whether adapter `name` uses the Tucker (effective conv) form. */
  isEffective(name: string): boolean {
    return this.hada_t1.has(name);
  }

  updateLayer(name: string, options: LoHaLayerOptions): void {
    this.setAdapterScalars(name, options);
    this.createAdapterParameters(name, options.r, this.adapterShape(options.useEffectiveConv2d), options);
    this.setAdapter(this.activeAdapters);
  }

  /**
   * PEFT's `create_adapter_parameters` + `reset_adapter_parameters(_random)`:
   *
   * | shape | `hada_w*_a` | `hada_w*_b` | `hada_t*` |
   * |---|---|---|---|
   * | `[out, in]` | `[out, r]` | `[r, in]` | - |
   * | `[out, in, kh, kw]` | `[r, out]` | `[r, in]` | `[r, r, kh, kw]` |
   * | `[out, in, k]` | `[r, out]` | `[r, in]` | `[r, r, k, 1]` |
   *
   * Every tensor is kaiming-uniform (a = √5, bound 1/√fan_in) except `hada_w2_b`, zero when `initWeights` (so
   * ΔW starts at zero), kaiming-uniform too otherwise.
   */
  protected createAdapterParameters(name: string, r: number, shape: readonly number[], options: LycorisLayerOptions): void {
    const [out, inDim] = shape as [number, number];
    const tucker = shape.length > 2;
    const aShape = tucker ? [r, out] : [out, r];
    const bShape = [r, inDim];
    const seedAt = (k: number) => (options.seed === undefined ? {} : { seed: options.seed + k });
    const draw = (s: number[], k: number) => (options.skipInit ? zeros(s) : kaimingUniform(s, { a: SQRT5, ...seedAt(k) }));
    this.hada_w1_a.set(name, draw(aShape, 0));
    this.hada_w1_b.set(name, draw(bShape, 1));
    this.hada_w2_a.set(name, draw(aShape, 2));
    this.hada_w2_b.set(name, options.initWeights ? zeros(bShape) : draw(bShape, 3));
    if (tucker) {
      const tShape = [r, r, shape[2]!, shape[3] ?? 1];
      this.hada_t1.set(name, draw(tShape, 4));
      this.hada_t2.set(name, draw(tShape, 5));
    } else {
      // Re-creating an adapter in the flat form drops a previous Tucker core of the same name.
      if (this.hada_t1.has(name)) this.hada_t1.delete(name);
      if (this.hada_t2.has(name)) this.hada_t2.delete(name);
    }
  }

  /** ΔW of adapter `name` in the base weight's shape (no rank dropout: what merging adds). */
  getDeltaWeight(name: string): tf.Tensor {
    return tf.tidy(() => {
      const scale = tf.scalar(this.scaling.get(name)!);
      const w1a = this.hada_w1_a.get(name)!;
      const w1b = this.hada_w1_b.get(name)!;
      const w2a = this.hada_w2_a.get(name)!;
      const w2b = this.hada_w2_b.get(name)!;
      const t1 = this.hada_t1.get(name);
      const t2 = this.hada_t2.get(name);
      // PEFT's order: the two factors, their Hadamard product, then the scale.
      const weight =
        t1 && t2
          ? tf.mul(tf.mul(tuckerRebuild(t1, w1a, w1b), tuckerRebuild(t2, w2a, w2b)), scale)
          : tf.mul(tf.mul(tf.matMul(w1a, w1b), tf.matMul(w2a, w2b)), scale);
      return tf.reshape(weight, this.base_layer.weight.shape);
    });
  }
}

/** LoHa on `Linear`: ΔW `[out, in]`. */
export class LoHaLinear extends LoHaLayer {
  adapterShape(): number[] {
    return [...this.base_layer.weight.shape];
  }
}

/** LoHa on `Conv2d` (grouped too): ΔW built from `in_channels / groups`; Tucker form unless the kernel is 1x1. */
export class LoHaConv2d extends LoHaLayer {
  adapterShape(useEffectiveConv2d: boolean): number[] {
    const [out, inG, kh, kw] = this.base_layer.weight.shape as [number, number, number, number];
    const base = this.base_layer as unknown as Conv2d;
    const effective = useEffectiveConv2d && !(base.kernelSize[0] === 1 && base.kernelSize[1] === 1);
    return effective ? [out, inG, kh, kw] : [out, inG * kh * kw];
  }
}

/** LoHa on `Conv1d`: Tucker form (core `[r, r, k, 1]`) unless k = 1. */
export class LoHaConv1d extends LoHaLayer {
  adapterShape(useEffectiveConv2d: boolean): number[] {
    const [out, inG, k] = this.base_layer.weight.shape as [number, number, number];
    const base = this.base_layer as unknown as Conv1d;
    const effective = useEffectiveConv2d && base.kernelSize[0] !== 1;
    return effective ? [out, inG, k] : [out, inG * k];
  }
}
