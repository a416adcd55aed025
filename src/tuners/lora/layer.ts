import { tf } from '../../engine/tf.js';
import { MergeError, ShapeError } from '../../errors.js';
import type { ForwardContext } from '../../nn/context.js';
import { Identity } from '../../nn/container.js';
import { Conv1d, Conv2d } from '../../nn/conv.js';
import { ModuleDict, ParameterDict } from '../../nn/dicts.js';
import { Dropout } from '../../nn/dropout.js';
import { kaimingUniform, normal, zeros } from '../../nn/init.js';
import { Linear, isPlainLinear } from '../../nn/linear.js';
import { fusedKernelsActive } from '../../engine/fused/fused-op.js';
import { fusedLoraLinear } from '../../engine/fused/lora-linear.js';
import type { AdaptableLayer, Layer } from '../../nn/module.js';
import { BaseTunerLayer } from '../tuner-layer.js';
import { xloraFusedProjection, xloraLayerForward } from '../xlora/layer.js';
import type { FusedProjection } from '../../engine/fused/decoder-stack.js';
import { doraForward, doraMagnitude, doraMerged, doraUnmerged, doraWeightNorm } from './dora.js';

/** Everything `updateLayer` needs for one adapter, after rank/alpha patterns are resolved for this module. */
export interface LoraLayerOptions {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  initLoraWeights: boolean | 'gaussian';
  useRslora: boolean;
  useDora: boolean;
  loraBias: boolean;
  seed?: number | undefined;
}

/**
 * PEFT's `LoraLayer`: per adapter, A and B (modules for Linear/Conv, bare parameters for Embedding), dropout,
 * and the scaling alpha / r (alpha / sqrt(r) with rsLoRA). Subclasses supply the branch for their layer kind.
 */
export abstract class LoraLayer extends BaseTunerLayer {
  readonly adapterLayerNames = ['lora_dropout', 'lora_A', 'lora_B', 'lora_embedding_A', 'lora_embedding_B', 'lora_magnitude_vector'] as const;
  lora_dropout: ModuleDict<Layer>;
  lora_A: ModuleDict<Layer & { weight: tf.Variable }>;
  lora_B: ModuleDict<Layer & { weight: tf.Variable; bias: tf.Variable | null }>;
  lora_embedding_A: ParameterDict;
  lora_embedding_B: ParameterDict;
  /** DoRA magnitude per adapter; saved as `<module>.lora_magnitude_vector`. */
  lora_magnitude_vector: ParameterDict;
  readonly r = new Map<string, number>();
  readonly loraAlpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();
  protected readonly useDora = new Map<string, boolean>();
  /** Row norms of W + ΔW at merge time, per DoRA adapter, so unmerge can undo the rescaling. */
  readonly doraWeightNorm = new Map<string, tf.Tensor>();
  protected readonly adapterScalars = [this.r, this.loraAlpha, this.scaling, this.useDora];

  constructor(baseLayer: AdaptableLayer, adapterName: string, options: LoraLayerOptions) {
    super(baseLayer);
    this.lora_dropout = this.registerModule('lora_dropout', new ModuleDict<Layer>());
    this.lora_A = this.registerModule('lora_A', new ModuleDict());
    this.lora_B = this.registerModule('lora_B', new ModuleDict());
    this.lora_embedding_A = this.registerModule('lora_embedding_A', new ParameterDict());
    this.lora_embedding_B = this.registerModule('lora_embedding_B', new ParameterDict());
    this.lora_magnitude_vector = this.registerModule('lora_magnitude_vector', new ParameterDict());
    this.activeAdapters = [adapterName];
    this.updateLayer(adapterName, options);
  }

  updateLayer(name: string, options: LoraLayerOptions): void {
    const { r, loraAlpha } = options;
    if (!Number.isInteger(r) || r <= 0) throw new ShapeError(`LoRA rank r should be a positive integer, got ${r}.`);
    this.lora_dropout.set(name, options.loraDropout > 0 ? new Dropout(options.loraDropout) : new Identity());
    this.createAdapterTensors(name, options);
    this.r.set(name, r);
    this.loraAlpha.set(name, loraAlpha);
    this.scaling.set(name, options.useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r);
    this.useDora.set(name, options.useDora);
    if (options.useDora) this.lora_magnitude_vector.set(name, doraMagnitude(this, name));
    this.setAdapter(this.activeAdapters);
  }

  /**
   * Under X-LoRA the context carries the scalings, and the experts are mixed per token (see xlora/layer.ts). One
   * plain adapter on a frozen Linear runs as one fused kernel each way where the backend has them.
   */
  override forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    if (ctx?.xlora && !this.merged && !this.disableAdapters) return xloraLayerForward(this, x, ctx.xlora);
    // Checked cheapest first: on other backends the first test stops it.
    const base = this.base_layer;
    if (fusedKernelsActive() && isPlainLinear(base) && !this.disableAdapters && !this.merged) {
      const single = this.singlePlainAdapter();
      const fused = single === undefined ? undefined : fusedLoraLinear(x, base, this.lora_A.get(single)!.weight, this.lora_B.get(single)!.weight, this.scaling.get(single)!);
      if (fused) return fused;
    }
    return super.forward(x, ctx);
  }

  /** The one active adapter, when it is a plain one (no DoRA, no lora_B bias, no dropout now); else undefined. */
  private singlePlainAdapter(): string | undefined {
    const names = this.activeAdapters.filter((n) => this.hasAdapter(n));
    return names.length === 1 && this.isPlainAdapter(names[0]!) ? names[0] : undefined;
  }

  private isPlainAdapter(name: string): boolean {
    const dropout = this.lora_dropout.get(name)!;
    const b = this.lora_B.get(name);
    return !this.useDora.get(name) && this.lora_A.get(name) instanceof Linear && b instanceof Linear && b.bias === null && (dropout instanceof Identity || !dropout.training);
  }

  /**
   * The base layer's W and b plus the active adapters' stacked A, B and per-column γ, for fused kernels (X-LoRA's
   * per-token mix under its context). Undefined where the forward does more: DoRA, lora_B biases, active dropout.
   */
  fusedProjection(lead: readonly number[], ctx?: ForwardContext): FusedProjection | undefined {
    if (this.kind !== 'linear' || (this.disableAdapters && this.merged)) return undefined; // forward unmerges first
    const base = this.base_layer.fusedProjection?.(lead, ctx);
    if (!base || this.disableAdapters || this.merged) return base;
    if (ctx?.xlora) return xloraFusedProjection(this, base, lead, ctx.xlora);
    const names = this.activeAdapters.filter((n) => this.hasAdapter(n));
    if (names.length === 0) return base;
    if (!names.every((n) => this.isPlainAdapter(n))) return undefined;
    const gammas = names.flatMap((n) => Array.from({ length: this.r.get(n)! }, () => this.scaling.get(n)!));
    return {
      ...base,
      lowRank: {
        a: tf.concat(names.map((n) => this.lora_A.get(n)!.weight), 0),
        b: tf.concat(names.map((n) => this.lora_B.get(n)!.weight), 1),
        scale: tf.tensor3d(gammas, [1, 1, gammas.length]),
      },
    };
  }

  /** Creates A and B for `name`, initialised as `initLoraWeights` says. */
  protected abstract createAdapterTensors(name: string, options: LoraLayerOptions): void;

  /** B(A(x)) for adapter `name`, before scaling (dropout applied by the caller). */
  abstract loraBranch(x: tf.Tensor, name: string): tf.Tensor;

  protected adapterOutput(x: tf.Tensor, name: string, baseOutput: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    const dropout = this.lora_dropout.get(name)!;
    const input = dropout instanceof Identity ? x : dropout.forward(x, ctx);
    if (this.useDora.get(name)) return doraForward(this, name, x, input, baseOutput);
    const a = this.lora_A.get(name);
    const b = this.lora_B.get(name);
    if (a instanceof Linear && b instanceof Linear && b.bias === null) {
      // B(s · A x): the scaling multiplies the rank-r activations, not the full-width output (equal up to rounding).
      return b.forward(tf.mul(a.forward(input), this.scaling.get(name)!));
    }
    return tf.mul(this.loraBranch(input, name), this.scaling.get(name)!);
  }

  /** W + ΔW, and with `lora_bias` the base bias + s·b_B; DoRA's rescaled weight. Nothing is written here. */
  protected override mergedValues(name: string): [tf.Variable, tf.Tensor][] {
    if (this.useDora.get(name)) return [[this.base_layer.weight, doraMerged(this, name)]];
    const bBias = this.lora_B.get(name)?.bias;
    const baseBias = this.baseBias();
    if (bBias && !baseBias) throw new MergeError(`Cannot merge lora_bias of adapter "${name}": the base layer has no bias.`);
    const updates = super.mergedValues(name);
    if (bBias && baseBias) updates.push([baseBias, tf.tidy(() => tf.add(baseBias, tf.mul(bBias, this.scaling.get(name)!)))]);
    return updates;
  }

  /** DoRA also keeps ||W + ΔW|| from merge time: unmerging needs it. */
  protected override mergeOne(name: string, safeMerge: boolean): void {
    if (!this.useDora.get(name)) {
      super.mergeOne(name, safeMerge);
      return;
    }
    const norm = doraWeightNorm(this, name);
    try {
      super.mergeOne(name, safeMerge);
    } catch (error) {
      norm.dispose();
      throw error;
    }
    this.doraWeightNorm.get(name)?.dispose();
    this.doraWeightNorm.set(name, norm);
  }

  protected override unmergeOne(name: string): void {
    if (!this.useDora.get(name)) {
      super.unmergeOne(name);
      const bBias = this.lora_B.get(name)?.bias;
      const baseBias = this.baseBias();
      if (bBias && baseBias) {
        const next = tf.tidy(() => tf.sub(baseBias, tf.mul(bBias, this.scaling.get(name)!)));
        baseBias.assign(next);
        next.dispose();
      }
      return;
    }
    const restored = doraUnmerged(this, name);
    this.base_layer.weight.assign(restored);
    restored.dispose();
    this.doraWeightNorm.get(name)?.dispose();
    this.doraWeightNorm.delete(name);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.doraWeightNorm.get(name)?.dispose();
    this.doraWeightNorm.delete(name);
  }

  /** Frees the cached DoRA norms too (they are not parameters). */
  override dispose(): void {
    super.dispose();
    for (const norm of this.doraWeightNorm.values()) norm.dispose();
    this.doraWeightNorm.clear();
  }

  private baseBias(): tf.Variable | null {
    return (this.base_layer as AdaptableLayer & { bias?: tf.Variable | null }).bias ?? null;
  }
}

/** LoRA on `Linear` and on GPT-2's `Conv1D` (weight stored [in, out]: `fan_in_fan_out`). */
export class LoraLinear extends LoraLayer {
  get fanInFanOut(): boolean {
    return this.kind === 'gpt2_conv1d';
  }

  /** [in, out] features of the base layer, whatever its storage order. */
  get features(): [number, number] {
    const [a, b] = this.base_layer.weight.shape as [number, number];
    return this.fanInFanOut ? [a, b] : [b, a];
  }

  protected createAdapterTensors(name: string, o: LoraLayerOptions): void {
    const [inF, outF] = this.features;
    // init false keeps PyTorch's nn.Linear defaults, so the adapter is not an identity.
    const a = new Linear(inF, o.r, { bias: false, ...(o.seed !== undefined ? { seed: o.seed } : {}) });
    const b = new Linear(o.r, outF, { bias: o.loraBias, ...(o.seed !== undefined ? { seed: o.seed + 1 } : {}) });
    initLoraAB(a, b, o);
    this.lora_A.set(name, a);
    this.lora_B.set(name, b);
  }

  loraBranch(x: tf.Tensor, name: string): tf.Tensor {
    return this.lora_B.get(name)!.forward(this.lora_A.get(name)!.forward(x));
  }

  getDeltaWeight(name: string): tf.Tensor {
    return tf.tidy(() => {
      const delta = tf.mul(tf.matMul(this.lora_B.get(name)!.weight, this.lora_A.get(name)!.weight), this.scaling.get(name)!);
      return this.fanInFanOut ? tf.transpose(delta) : delta;
    });
  }
}

/** LoRA on `Embedding`: A `[r, num]` and B `[dim, r]` are bare parameters; no dropout, as in PEFT. */
export class LoraEmbedding extends LoraLayer {
  protected createAdapterTensors(name: string, o: LoraLayerOptions): void {
    const [num, dim] = this.base_layer.weight.shape as [number, number];
    // PEFT: A zeros and B N(0, 1) for init true/'gaussian'; both N(0, 1) (nn.Parameter(randn)) for false.
    const a = o.initLoraWeights === false ? normal([o.r, num], 0, 1, seedOf(o)) : zeros([o.r, num]);
    const b = normal([dim, o.r], 0, 1, o.seed === undefined ? {} : { seed: o.seed + 1 });
    this.lora_embedding_A.set(name, a);
    this.lora_embedding_B.set(name, b);
  }

  protected override adapterOutput(x: tf.Tensor, name: string, baseOutput: tf.Tensor): tf.Tensor {
    if (this.useDora.get(name)) return doraForward(this, name, x, x, baseOutput);
    return tf.mul(this.loraBranch(x, name), this.scaling.get(name)!);
  }

  loraBranch(ids: tf.Tensor, name: string): tf.Tensor {
    return tf.tidy(() => {
      const afterA = tf.gather(tf.transpose(this.lora_embedding_A.get(name)!), tf.cast(ids, 'int32'));
      return tf.matMul(afterA, this.lora_embedding_B.get(name)!, false, true);
    });
  }

  getDeltaWeight(name: string): tf.Tensor {
    return tf.tidy(() =>
      tf.mul(tf.transpose(tf.matMul(this.lora_embedding_B.get(name)!, this.lora_embedding_A.get(name)!)), this.scaling.get(name)!),
    );
  }
}

/** LoRA on `Conv1d`/`Conv2d`: A is a conv with the base kernel, stride and padding; B a 1x1 conv. */
export class LoraConv extends LoraLayer {
  protected createAdapterTensors(name: string, o: LoraLayerOptions): void {
    const base = this.base_layer as unknown as Conv1d | Conv2d;
    const seed = o.seed === undefined ? {} : { seed: o.seed };
    const common = { stride: base.stride, padding: base.padding, ...seed };
    const is2d = base.kind === 'conv2d';
    const a = is2d
      ? new Conv2d(base.inChannels, o.r, base.kernelSize as [number, number], { ...common, bias: false } as ConstructorParameters<typeof Conv2d>[3])
      : new Conv1d(base.inChannels, o.r, base.kernelSize as [number], { ...common, bias: false } as ConstructorParameters<typeof Conv1d>[3]);
    const b = is2d
      ? new Conv2d(o.r, base.outChannels, 1, { groups: base.groups, bias: o.loraBias, ...seed })
      : new Conv1d(o.r, base.outChannels, 1, { groups: base.groups, bias: o.loraBias, ...seed });
    initLoraAB(a, b, o);
    this.lora_A.set(name, a);
    this.lora_B.set(name, b);
  }

  loraBranch(x: tf.Tensor, name: string): tf.Tensor {
    return this.lora_B.get(name)!.forward(this.lora_A.get(name)!.forward(x));
  }

  getDeltaWeight(name: string): tf.Tensor {
    const base = this.base_layer as unknown as Conv1d | Conv2d;
    if (base.groups > 1) throw new MergeError('Merging LoRA into a grouped convolution (groups > 1) is not supported, as in PEFT.');
    return tf.tidy(() => {
      const a = this.lora_A.get(name)!.weight; // [r, in, ...kernel]
      const b = this.lora_B.get(name)!.weight; // [out, r, 1(, 1)]
      const [r] = a.shape as [number];
      const out = b.shape[0]!;
      // ΔW[o, i, k...] = s * Σ_r B[o, r] A[r, i, k...]
      const delta = tf.matMul(b.reshape([out, r]), a.reshape([r, -1])).reshape([out, ...a.shape.slice(1)]);
      return tf.mul(delta, this.scaling.get(name)!);
    });
  }
}

function seedOf(o: LoraLayerOptions): { seed?: number } {
  return o.seed === undefined ? {} : { seed: o.seed };
}

/**
 * PEFT's init of A and B modules: `true` kaiming-uniform(a = sqrt 5) A, `'gaussian'` N(0, 1/r) A, zero B (and B
 * bias); `false` keeps the layers' own PyTorch-default init so the adapter is not an identity.
 */
function initLoraAB(a: { weight: tf.Variable }, b: { weight: tf.Variable; bias: tf.Variable | null }, o: LoraLayerOptions): void {
  if (o.initLoraWeights === false) return;
  const init = o.initLoraWeights === 'gaussian' ? normal(a.weight.shape, 0, 1 / o.r, seedOf(o)) : kaimingUniform(a.weight.shape, { a: Math.sqrt(5), ...seedOf(o) });
  assignAndDispose(a.weight, init);
  assignAndDispose(b.weight, zeros(b.weight.shape));
  if (b.bias) assignAndDispose(b.bias, zeros(b.bias.shape));
}

function assignAndDispose(target: tf.Variable, value: tf.Tensor): void {
  target.assign(value);
  value.dispose();
}
