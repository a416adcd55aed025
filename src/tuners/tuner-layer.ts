import { tf } from '../engine/tf.js';
import { MergeError } from '../errors.js';
import type { ForwardContext } from '../nn/context.js';
import { ModuleDict, ParameterDict } from '../nn/dicts.js';
import { Module } from '../nn/module.js';
import type { AdaptableLayer, LayerKind, Parameter } from '../nn/module.js';

export interface MergeOptions {
  /** Merge into a copy and refuse (MergeError) if the result is not finite, leaving the base untouched. */
  safeMerge?: boolean;
  /** Adapters to merge; default: the active ones. */
  adapterNames?: readonly string[];
}

/**
 * What every adapter layer shares (PEFT's `BaseTunerLayer`): the wrapped `base_layer`, the active and merged
 * adapter lists, enabling/disabling, and merge/unmerge built on one primitive, `getDeltaWeight`. Per-adapter
 * tensors live in ModuleDict/ParameterDict children named by `adapterLayerNames`, so adapter bookkeeping here
 * works for every method without knowing which one it is.
 */
export abstract class BaseTunerLayer extends Module implements AdaptableLayer {
  readonly base_layer: AdaptableLayer;
  /** Children holding per-adapter tensors (e.g. `lora_A`, `lora_B`), in registration order. */
  abstract readonly adapterLayerNames: readonly string[];
  /** Per-adapter scalars kept outside the state dict (r, alpha, scaling, ...). */
  protected abstract readonly adapterScalars: readonly Map<string, unknown>[];

  activeAdapters: string[] = [];
  readonly mergedAdapters: string[] = [];
  disableAdapters = false;

  constructor(baseLayer: AdaptableLayer) {
    super();
    this.base_layer = this.registerModule('base_layer', baseLayer);
  }

  get kind(): LayerKind {
    return this.base_layer.kind;
  }

  get weight(): Parameter {
    return this.base_layer.weight;
  }

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  /** Creates (or replaces) adapter `name` in this layer. The only way an adapter enters a layer. */
  abstract updateLayer(name: string, options: unknown): void;

  /** The adapter's change to the base weight, shaped (and oriented) like `base_layer.weight`. */
  abstract getDeltaWeight(name: string): tf.Tensor;

  /** The adapter's contribution to the output for input `x`, added to the base output. */
  protected abstract adapterOutput(x: tf.Tensor, name: string, baseOutput: tf.Tensor, ctx?: ForwardContext): tf.Tensor;

  /** Adapters this layer holds, in creation order. */
  availableAdapters(): string[] {
    const names = new Set<string>();
    for (const container of this.adapterContainers()) for (const key of container.keys()) names.add(key);
    return [...names];
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    if (this.disableAdapters) {
      if (this.merged) this.unmerge();
      return this.base_layer.forward(x, ctx);
    }
    if (this.merged) return this.base_layer.forward(x, ctx);
    return tf.tidy(() => {
      let result = this.base_layer.forward(x, ctx);
      for (const name of this.activeAdapters) {
        if (!this.hasAdapter(name)) continue;
        result = tf.add(result, this.adapterOutput(x, name, result, ctx));
      }
      return result;
    });
  }

  /**
   * Makes `names` the active adapters: their tensors become trainable (unless `inferenceMode`), the others
   * frozen, as PEFT's `set_adapter` does.
   */
  setAdapter(names: string | readonly string[], { trainable = true } = {}): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const container of this.adapterContainers()) {
      for (const key of container.keys()) {
        for (const param of adapterParams(container, key)) param.trainable = trainable && list.includes(key);
      }
    }
    this.activeAdapters = list;
  }

  /** Turns the adapters of this layer off (base output only) or back on. */
  enableAdapters(enabled: boolean): void {
    if (!enabled && this.merged) this.unmerge();
    this.disableAdapters = !enabled;
  }

  /** Adds the delta weights of the given (default: active) adapters to the base weight. */
  merge({ safeMerge = false, adapterNames }: MergeOptions = {}): void {
    for (const name of this.pendingMerges(adapterNames)) {
      this.mergeOne(name, safeMerge);
      this.mergedAdapters.push(name);
    }
  }

  /**
   * Throws MergeError if a safe merge of the given (default: active) adapters would be refused, changing nothing:
   * lets a tuner check every layer before it merges any (a safe merge then computes each result twice).
   */
  checkSafeMerge(adapterNames?: readonly string[]): void {
    for (const name of this.pendingMerges(adapterNames)) {
      const updates = this.mergedValues(name);
      const finite = updates.every(([, value]) => allFinite(value));
      for (const [, value] of updates) value.dispose();
      if (!finite) throw new MergeError(`NaNs detected in the merged weights. The adapter "${name}" seems to be broken.`);
    }
  }

  /** Adapters of `adapterNames` (default: the active ones) this layer holds and has not merged yet. */
  private pendingMerges(adapterNames: readonly string[] | undefined): string[] {
    return (adapterNames ?? this.activeAdapters).filter((n) => this.hasAdapter(n) && !this.mergedAdapters.includes(n));
  }

  /** Removes merged adapters from the base weight, last merged first. */
  unmerge(): void {
    while (this.mergedAdapters.length) this.unmergeOne(this.mergedAdapters.pop()!);
  }

  /** Removes adapter `name` from this layer. Refuses while it is merged. */
  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) {
      throw new MergeError(`Adapter "${name}" is merged into ${this.constructor.name}; unmerge it before deleting it.`);
    }
    for (const container of this.adapterContainers()) if (container.has(name)) container.delete(name);
    for (const scalars of this.adapterScalars) scalars.delete(name);
    if (this.activeAdapters.includes(name)) {
      const rest = this.activeAdapters.filter((n) => n !== name);
      // PEFT falls back to the first remaining adapter (sorted) when the active one goes.
      this.activeAdapters = rest.length ? rest : this.availableAdapters().sort().slice(0, 1);
    }
  }

  hasAdapter(name: string): boolean {
    return this.adapterContainers().some((c) => c.has(name));
  }

  /**
   * What merging adapter `name` writes, as new tensors for the layer's variables, computed without changing any:
   * W + ΔW by default. Variants that do not merge additively, or merge more than the weight, override this.
   */
  protected mergedValues(name: string): [tf.Variable, tf.Tensor][] {
    const weight = this.base_layer.weight;
    return [[weight, tf.tidy(() => tf.add(weight, this.getDeltaWeight(name)))]];
  }

  /** Writes `mergedValues(name)`; with `safeMerge`, only when every value is finite (else MergeError, nothing written). */
  protected mergeOne(name: string, safeMerge: boolean): void {
    const updates = this.mergedValues(name);
    try {
      if (safeMerge && !updates.every(([, value]) => allFinite(value))) {
        throw new MergeError(`NaNs detected in the merged weights. The adapter "${name}" seems to be broken.`);
      }
      for (const [variable, value] of updates) variable.assign(value);
    } finally {
      for (const [, value] of updates) value.dispose();
    }
  }

  protected unmergeOne(name: string): void {
    const weight = this.base_layer.weight;
    const restored = tf.tidy(() => tf.sub(weight, this.getDeltaWeight(name)));
    weight.assign(restored);
    restored.dispose();
  }

  private adapterContainers(): (ModuleDict | ParameterDict)[] {
    const out: (ModuleDict | ParameterDict)[] = [];
    for (const name of this.adapterLayerNames) {
      const child = [...this.namedChildren()].find(([n]) => n === name)?.[1];
      if (child instanceof ModuleDict || child instanceof ParameterDict) out.push(child);
    }
    return out;
  }
}

function adapterParams(container: ModuleDict | ParameterDict, key: string): Parameter[] {
  if (container instanceof ParameterDict) return [container.get(key)!];
  return container.get(key)!.parameters();
}

export function allFinite(t: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] === 1);
}

/** True for modules that are adapter layers (never wrapped again, and skipped by target matching). */
export function isTunerLayer(module: Module): module is BaseTunerLayer {
  return module instanceof BaseTunerLayer;
}
