import { AdapterNameError, UnsupportedLayerError } from '../errors.js';
import { Module } from '../nn/module.js';
import type { AdaptableLayer, Layer, LayerKind } from '../nn/module.js';
import type { PeftType, TaskType } from './config.js';
import { findTargets, matchesModulesToSave } from './matching.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { isTunerLayer } from './tuner-layer.js';
import type { MergeOptions , BaseTunerLayer} from './tuner-layer.js';

/** What the tuner core reads from any method's config (LoraConfig, LoHaConfig, ... satisfy it). */
export interface TunerConfig {
  readonly peftType: PeftType;
  readonly taskType: TaskType | null;
  readonly inferenceMode: boolean;
  readonly targetModules: string | readonly string[] | null;
  readonly excludeModules: string | readonly string[] | null;
  readonly layersToTransform: number | readonly number[] | null;
  readonly layersPattern: string | readonly string[] | null;
  readonly modulesToSave: readonly string[] | null;
  /** The `adapter_config.json` object (snake_case keys). */
  toJson(): Readonly<Record<string, unknown>>;
  /** A validated copy with `changes` applied (configs are immutable). */
  with(changes: { readonly targetModules?: string | readonly string[] | null }): this;
}

/** Adapter names become path segments and state-dict key segments: keep them to plain identifiers. */
export function validateAdapterName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new AdapterNameError(String(name), 'it must be a non-empty string.');
  if (name.includes('/') || name.includes('\\') || name.includes('..') || name === '.') {
    throw new AdapterNameError(name, 'it must not contain path separators or "..": adapters are saved in a folder of that name.');
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(name)) {
    throw new AdapterNameError(name, 'use letters, digits, "_" and "-" only (it becomes a state-dict key segment and a folder name).');
  }
}

/**
 * The shared tuner (PEFT's `BaseTuner`): holds the user's model as child `model`, injects adapter layers into
 * the modules the config targets, and fans adapter management out to every adapter layer. A method subclass
 * declares its layer table and how to build or extend a layer for one target.
 */
export abstract class BaseTuner<C extends TunerConfig = TunerConfig> extends Module {
  readonly model: Module;
  readonly peftConfig = new Map<string, C>();
  activeAdapters: string[] = [];
  /** Display name in messages, e.g. "LoRA". */
  abstract readonly method: string;
  /** Layer kinds this method can adapt. */
  protected abstract readonly supportedKinds: readonly LayerKind[];

  constructor(model: Module) {
    super();
    this.model = this.registerModule('model', model);
  }

  /** Runs the adapted model (PEFT's `BaseTuner.forward`), so a tuner can stand in for the model it wraps. */
  forward(...args: unknown[]): unknown {
    return (this.model as unknown as { forward(...a: unknown[]): unknown }).forward(...args);
  }

  /** Builds the adapter layer wrapping `target` for adapter `adapterName`. */
  protected abstract createLayer(target: AdaptableLayer, key: string, config: C, adapterName: string): BaseTunerLayer;

  /** Adds adapter `adapterName` to an existing adapter layer of this method. */
  protected abstract updateLayer(layer: BaseTunerLayer, key: string, config: C, adapterName: string): void;

  /** Whether `layer` is this method's layer (another method's layers are never extended). */
  protected abstract ownsLayer(layer: BaseTunerLayer): boolean;

  /** Rewrites the config once targets are known (e.g. LoRA's fan_in_fan_out correction). Default: unchanged. */
  protected finalizeConfig(config: C, _targets: readonly { key: string; layer: AdaptableLayer }[]): C {
    return config;
  }

  /**
   * Injects adapter `adapterName` into every module the config targets. Everything is checked before the
   * model is touched, so a bad config never leaves a half-adapted model.
   */
  injectAdapter(config: C, adapterName: string): void {
    validateAdapterName(adapterName);
    if (this.peftConfig.has(adapterName)) throw new AdapterNameError(adapterName, 'an adapter of that name already exists; delete it first or choose another name.');
    const candidates = this.candidateModules();
    const { targets, resolvedTargetModules } = findTargets(
      candidates.map(({ name, module }) => ({ name, kind: layerKindOf(module) })),
      config,
      {
        method: config.peftType,
        taskType: config.taskType,
        ...(modelTypeOf(this.model) ? { modelType: modelTypeOf(this.model)! } : {}),
        ...(this.outputEmbeddingName() ? { outputEmbeddingName: this.outputEmbeddingName()! } : {}),
      },
    );
    const byName = new Map(candidates.map((c) => [c.name, c.module]));
    const resolved = targets.map((key) => {
      const module = byName.get(key)!;
      const kind = layerKindOf(module);
      if (kind === undefined || !this.supportedKinds.includes(kind)) {
        throw new UnsupportedLayerError(key, kind ?? module.constructor.name, this.supportedKinds, this.method);
      }
      if (isTunerLayer(module) && !this.ownsLayer(module)) {
        throw new UnsupportedLayerError(key, module.constructor.name, this.supportedKinds, `${this.method} (it already holds another method's adapter)`);
      }
      return { key, layer: module as unknown as AdaptableLayer };
    });
    const finalConfig = this.finalizeConfig(config.with({ targetModules: resolvedTargetModules }), resolved);
    for (const { key, layer } of resolved) {
      if (isTunerLayer(layer)) this.updateLayer(layer, key, finalConfig, adapterName);
      else {
        const wrapped = this.createLayer(layer, key, finalConfig, adapterName);
        this.model.setSubmodule(key, wrapped);
      }
    }
    this.peftConfig.set(adapterName, finalConfig);
    this.wrapModulesToSave(finalConfig.modulesToSave ?? [], adapterName);
    if (this.activeAdapters.length === 0) this.activeAdapters = [adapterName];
    this.markTrainable();
  }

  /** Tuner layers of the model with their paths (relative to the user's model). */
  tunerLayers(): [string, BaseTunerLayer][] {
    return [...this.model.namedModules()].filter((e): e is [string, BaseTunerLayer] => isTunerLayer(e[1]));
  }

  modulesToSaveWrappers(): [string, ModulesToSaveWrapper][] {
    return [...this.model.namedModules()].filter((e): e is [string, ModulesToSaveWrapper] => e[1] instanceof ModulesToSaveWrapper);
  }

  setAdapter(names: string | readonly string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const name of list) {
      if (!this.peftConfig.has(name)) throw new AdapterNameError(name, `no such adapter; available: ${[...this.peftConfig.keys()].join(', ')}.`);
    }
    for (const [, layer] of this.tunerLayers()) {
      if (!layer.merged) continue;
      console.warn('Adapter cannot be set when the model is merged. Unmerging the model first.');
      layer.unmerge();
    }
    this.activeAdapters = list;
    this.markTrainable();
  }

  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new AdapterNameError(name, `no such adapter; available: ${[...this.peftConfig.keys()].join(', ')}.`);
    for (const [, layer] of this.tunerLayers()) layer.deleteAdapter(name);
    for (const [, wrapper] of this.modulesToSaveWrappers()) wrapper.deleteAdapter(name);
    this.peftConfig.delete(name);
    const rest = this.activeAdapters.filter((n) => n !== name);
    this.activeAdapters = rest.length ? rest : [...this.peftConfig.keys()].sort().slice(0, 1);
    this.markTrainable();
  }

  /** Turns every adapter off (the base model runs) or back on. */
  enableAdapters(enabled: boolean): void {
    for (const [, layer] of this.tunerLayers()) layer.enableAdapters(enabled);
    for (const [, wrapper] of this.modulesToSaveWrappers()) wrapper.disabled = !enabled;
  }

  /** Merges into every adapter layer. A safe merge checks every layer first, so a refusal changes no weight. */
  merge(options: MergeOptions = {}): void {
    if (options.safeMerge) for (const [, layer] of this.tunerLayers()) layer.checkSafeMerge(options.adapterNames);
    for (const [, layer] of this.tunerLayers()) layer.merge(options);
  }

  unmerge(): void {
    for (const [, layer] of this.tunerLayers()) layer.unmerge();
  }

  /**
   * Puts the base layers back in place of the adapter layers, merged first when `merge` (mergeAndUnload), and
   * the active copy in place of each modules-to-save wrapper. Returns the user's model; this tuner is spent.
   */
  unloadLayers({ merge, ...options }: MergeOptions & { merge: boolean }): Module {
    if (merge && options.safeMerge) for (const [, layer] of this.tunerLayers()) layer.checkSafeMerge(options.adapterNames);
    for (const [key, layer] of this.tunerLayers()) {
      if (merge) layer.merge(options);
      else layer.unmerge();
      const base = layer.base_layer;
      this.model.setSubmodule(key, base);
      layer.setSubmodule('base_layer', placeholder());
      layer.dispose();
    }
    for (const [key, wrapper] of this.modulesToSaveWrappers()) {
      // PEFT keeps the active adapter's copy (the trained head) whether or not it merges.
      const keep = wrapper.activeAdapter === null ? wrapper.original_module : wrapper.modules_to_save.get(wrapper.activeAdapter)!;
      this.model.setSubmodule(key, keep);
      if (keep !== wrapper.original_module) wrapper.original_module.dispose();
      for (const name of wrapper.modules_to_save.keys()) if (wrapper.modules_to_save.get(name) !== keep) wrapper.modules_to_save.delete(name);
    }
    this.peftConfig.clear();
    return this.model;
  }

  /**
   * Puts the wrapped module back in place of every adapter layer and modules-to-save wrapper that holds no adapter,
   * except at the paths in `keep`: undoes the wrapping a failed load did (PEFT's `delete_adapter` leaves them).
   */
  removeEmptyLayers(keep: ReadonlySet<string> = new Set()): void {
    for (const [key, layer] of this.tunerLayers()) {
      if (keep.has(key) || layer.availableAdapters().length > 0) continue;
      this.model.setSubmodule(key, layer.base_layer);
      layer.setSubmodule('base_layer', placeholder());
      layer.dispose();
    }
    for (const [key, wrapper] of this.modulesToSaveWrappers()) {
      if (keep.has(key) || wrapper.modules_to_save.keys().length > 0) continue;
      this.model.setSubmodule(key, wrapper.original_module);
      wrapper.setSubmodule('original_module', placeholder());
      wrapper.dispose();
    }
  }

  /**
   * Only adapter tensors train: the base is frozen; the active adapters' tensors (and their modules-to-save
   * copies) are trainable unless their config is in inference mode.
   */
  markTrainable(): void {
    this.model.requiresGrad(false);
    const trainable = this.activeAdapters.some((n) => !this.peftConfig.get(n)?.inferenceMode);
    for (const [, layer] of this.tunerLayers()) layer.setAdapter(this.activeAdapters, { trainable });
    for (const [, wrapper] of this.modulesToSaveWrappers()) wrapper.setAdapter(this.activeAdapters, { trainable });
    this.afterMarkTrainable(trainable);
  }

  /** Method-specific trainability (LoRA's `bias` option). */
  protected afterMarkTrainable(_trainable: boolean): void {}

  private wrapModulesToSave(entries: readonly string[], adapterName: string): void {
    if (!entries.length) return;
    for (const [key, module] of [...this.model.namedModules()]) {
      if (!key || !matchesModulesToSave(key, entries)) continue;
      if (this.insideTunerLayer(key)) continue;
      if (module instanceof ModulesToSaveWrapper) module.addAdapter(adapterName);
      else if (!this.insideWrapper(key)) this.model.setSubmodule(key, new ModulesToSaveWrapper(module as Layer, adapterName));
    }
  }

  /** Modules that may be targeted: everything but the insides of adapter layers and wrappers. */
  private candidateModules(): { name: string; module: Module }[] {
    // Paths computed once: walking the tree per module made injection quadratic in the number of adapters.
    const layers = this.tunerLayers().map(([p]) => p);
    const wrappers = this.modulesToSaveWrappers().map(([p]) => p);
    return [...this.model.namedModules()]
      .filter(([name]) => name !== '' && !inside(name, layers) && !inside(name, wrappers, true))
      .map(([name, module]) => ({ name, module }));
  }

  private insideTunerLayer(key: string): boolean {
    return this.tunerLayers().some(([path]) => key.startsWith(`${path}.`));
  }

  private insideWrapper(key: string): boolean {
    return this.modulesToSaveWrappers().some(([path]) => key === path || key.startsWith(`${path}.`));
  }

  private outputEmbeddingName(): string | undefined {
    return [...this.model.namedChildren()].some(([n]) => n === 'lm_head') ? 'lm_head' : undefined;
  }
}

/** The layer kind of an nn layer (or of the base layer of an adapter layer). */
export function layerKindOf(module: Module): LayerKind | undefined {
  const kind = (module as unknown as Partial<AdaptableLayer>).kind;
  return typeof kind === 'string' ? kind : undefined;
}

function modelTypeOf(model: Module): string | undefined {
  const config = (model as { config?: { modelType?: unknown } }).config;
  return typeof config?.modelType === 'string' ? config.modelType : undefined;
}

/** Stands in for a base layer handed back to the model, so disposing the spent adapter layer cannot free it. */
function placeholder(): Module {
  return new (class Detached extends Module {})();
}

function inside(key: string, paths: readonly string[], orEqual = false): boolean {
  return paths.some((p) => (orEqual && key === p) || key.startsWith(`${p}.`));
}
