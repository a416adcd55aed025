import { existsSync } from 'node:fs';
import { countTrainableParameters, trainableParametersLine } from './tuners/trainable.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterLoadError, AdapterNameError, ConfigError } from './errors.js';
import type { GenerationOptions } from './generation/config.js';
import { resolvePretrained } from './hub/index.js';
import type { HubOptions } from './hub/index.js';
import { loadSafetensors, saveSafetensors } from './io/index.js';
import type { ForwardContext } from './nn/context.js';
import { Module } from './nn/module.js';
import type { IdsInput } from './models/outputs.js';
import { ADAPTER_WEIGHTS_NAME, getAdapterStateDict, setAdapterStateDict } from './tuners/adapter-state.js';
import { loadPeftConfig, savePeftConfig } from './tuners/config.js';
import type { AnyPeftConfig } from './tuners/registry.js';
import { createTuner } from './tuners/registry.js';
import type { TunerOptions } from './tuners/registry.js';
import type { BaseTuner, TunerConfig } from './tuners/tuner-model.js';
import { validateAdapterName } from './tuners/tuner-model.js';
import type { MergeOptions } from './tuners/tuner-layer.js';
import { XLoraConfig } from './tuners/xlora/config.js';
import { addXLoraToModel } from './tuners/xlora/io.js';
import type { XLoraModel } from './tuners/xlora/model.js';
import type { PreTrainedCausalLM } from './models/pretrained.js';

export { ADAPTER_CONFIG_NAME } from './tuners/config.js';
export { ADAPTER_WEIGHTS_NAME } from './tuners/adapter-state.js';

/** A model peft-ts can adapt: any module with a forward. */
export type AdaptableModel = Module & { forward(...args: never[]): unknown };

export interface PeftFromPretrainedOptions extends HubOptions {
  adapterName?: string;
  /** Load for training (adapter tensors trainable); default false: inference mode, eval(). */
  isTrainable?: boolean;
}

export interface SavePretrainedOptions {
  /** Adapters to save (default: all). "default" goes to `dir`, any other to `dir/<name>`. */
  selectedAdapters?: readonly string[];
}

/**
 * PEFT's `PeftModel`: the user's model with adapters injected (held as `base_model.model`, so state-dict keys
 * carry PEFT's `base_model.model.` prefix), adapter management, and saving/loading in PEFT's format.
 */
export class PeftModel<M extends AdaptableModel = AdaptableModel> extends Module {
  readonly base_model: BaseTuner;

  constructor(model: M, config: AnyPeftConfig, adapterName = 'default', options: TunerOptions = {}) {
    super();
    this.base_model = this.registerModule('base_model', createTuner(model, withTaskDefaults(config), adapterName, options));
  }

  /** The adapted model (its adapter layers are in place). */
  get model(): M {
    return this.base_model.model as M;
  }

  get peftConfig(): ReadonlyMap<string, TunerConfig> {
    return this.base_model.peftConfig;
  }

  get activeAdapters(): readonly string[] {
    return this.base_model.activeAdapters;
  }

  get activeAdapter(): string {
    return this.base_model.activeAdapters[0]!;
  }

  /** Runs the adapted model. */
  forward(...args: Parameters<M['forward']>): ReturnType<M['forward']> {
    return (this.model.forward as (...a: unknown[]) => unknown)(...args) as ReturnType<M['forward']>;
  }

  /** Runs the adapted model's `generate` (causal LMs). */
  generate(inputIds: IdsInput, options: GenerationOptions = {}, ctx?: ForwardContext): Promise<number[][]> {
    const model = this.model as unknown as { generate?: (ids: IdsInput, o: GenerationOptions, c?: ForwardContext) => Promise<number[][]> };
    if (typeof model.generate !== 'function') throw new ConfigError([{ code: 'invalid_type', path: ['model'], message: `${this.model.constructor.name} has no generate()` }], 'PeftModel');
    return model.generate(inputIds, options, ctx);
  }

  /** Injects another adapter (inactive until `setAdapter`). */
  addAdapter(adapterName: string, config: AnyPeftConfig): void {
    this.assertSameMethod(config);
    const active = [...this.activeAdapters];
    this.base_model.injectAdapter(withTaskDefaults(config), adapterName);
    this.base_model.setAdapter(active);
  }

  /** Loads a saved adapter (folder or hub id) under `adapterName`; it stays inactive until `setAdapter`. */
  async loadAdapter(pathOrRepoId: string, adapterName: string, options: Omit<PeftFromPretrainedOptions, 'adapterName'> = {}): Promise<void> {
    validateAdapterName(adapterName);
    if (this.peftConfig.has(adapterName)) throw new AdapterNameError(adapterName, 'an adapter of that name already exists; delete it first or choose another name.');
    const dir = await resolvePretrained(pathOrRepoId, options);
    const config = await loadAdapterConfig(dir, options.isTrainable ?? false);
    this.assertSameMethod(config);
    const weights = join(dir, ADAPTER_WEIGHTS_NAME);
    if (!existsSync(weights)) throw new AdapterLoadError(`${dir} has no ${ADAPTER_WEIGHTS_NAME} (pickled adapter_model.bin files are not supported: re-save with safe_serialization=True).`);
    const tensors = await loadSafetensors(weights);
    const active = this.base_model.peftConfig.size ? [...this.activeAdapters] : [adapterName];
    const wrapped = new Set(this.base_model.tunerLayers().map(([path]) => path).concat(this.base_model.modulesToSaveWrappers().map(([path]) => path)));
    let injected = false;
    try {
      this.base_model.injectAdapter(withTaskDefaults(config), adapterName);
      injected = true;
      const report = setAdapterStateDict(this.base_model, adapterName, tensors);
      if (report.missingKeys.length) console.warn(`Found missing adapter keys while loading the checkpoint: ${report.missingKeys.join(', ')}`);
      if (report.unexpectedKeys.length) console.warn(`Ignored keys in ${weights} that match no adapter tensor: ${report.unexpectedKeys.slice(0, 10).join(', ')}`);
    } catch (error) {
      // Only an adapter this call created is removed (a taken name must not delete the adapter that has it), with
      // the layers it wrapped.
      if (injected) {
        this.base_model.deleteAdapter(adapterName);
        this.base_model.removeEmptyLayers(wrapped);
      }
      throw error;
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    this.base_model.setAdapter(active);
    if (!options.isTrainable) this.eval();
  }

  /** Adapters of one model share a method: the tuner builds only its own layers. */
  private assertSameMethod(config: AnyPeftConfig): void {
    const first = [...this.peftConfig.values()][0];
    if (first && first.peftType !== config.peftType) {
      throw new ConfigError([{ code: 'invalid_value', path: ['peft_type'], message: `cannot add a ${config.peftType} adapter to a ${first.peftType} model` }], 'adapter config');
    }
  }

  /** Loads a PEFT adapter folder (or hub id) onto `model`. */
  static async fromPretrained<M extends AdaptableModel>(model: M, pathOrRepoId: string, options: PeftFromPretrainedOptions = {}): Promise<PeftModel<M>> {
    const adapterName = options.adapterName ?? 'default';
    validateAdapterName(adapterName);
    const dir = await resolvePretrained(pathOrRepoId, options);
    const config = await loadAdapterConfig(dir, options.isTrainable ?? false);
    const weights = join(dir, ADAPTER_WEIGHTS_NAME);
    if (!existsSync(weights)) throw new AdapterLoadError(`${dir} has no ${ADAPTER_WEIGHTS_NAME} (pickled adapter_model.bin files are not supported: re-save with safe_serialization=True).`);
    const tensors = await loadSafetensors(weights);
    let peft: PeftModel<M> | undefined;
    try {
      peft = new PeftModel(model, config, adapterName);
      const report = setAdapterStateDict(peft.base_model, adapterName, tensors);
      if (report.missingKeys.length) console.warn(`Found missing adapter keys while loading the checkpoint: ${report.missingKeys.join(', ')}`);
      if (report.unexpectedKeys.length) console.warn(`Ignored keys in ${weights} that match no adapter tensor: ${report.unexpectedKeys.slice(0, 10).join(', ')}`);
    } catch (error) {
      // Roll back to the user's own modules (unload would keep modules_to_save copies in their place).
      if (peft) {
        peft.base_model.deleteAdapter(adapterName);
        peft.base_model.removeEmptyLayers();
      }
      throw error;
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    if (!options.isTrainable) peft.eval();
    return peft;
  }

  /** Saves each (selected) adapter as PEFT does: `adapter_model.safetensors` + `adapter_config.json`. */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    const names = options.selectedAdapters ?? [...this.peftConfig.keys()];
    for (const name of names) {
      const config = this.peftConfig.get(name) as AnyPeftConfig | undefined;
      if (!config) throw new ConfigError([{ code: 'invalid_value', path: ['selectedAdapters'], message: `no adapter named "${name}"` }], 'savePretrained options');
      const out = name === 'default' ? dir : join(dir, name);
      await mkdir(out, { recursive: true });
      const tensors = getAdapterStateDict(this.base_model, name);
      try {
        await saveSafetensors(join(out, ADAPTER_WEIGHTS_NAME), tensors, { metadata: { format: 'pt' } });
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
      const nameOrPath = (this.model as { nameOrPath?: string }).nameOrPath;
      await savePeftConfig(out, config.with({ inferenceMode: true, ...(config.baseModelNameOrPath == null && nameOrPath ? { baseModelNameOrPath: nameOrPath } : {}) }));
    }
  }

  setAdapter(adapterName: string | readonly string[]): void {
    this.base_model.setAdapter(adapterName);
  }

  deleteAdapter(adapterName: string): void {
    this.base_model.deleteAdapter(adapterName);
  }

  /**
   * Runs `fn` with every adapter off (the bare base model), then turns them back on — also when `fn` throws or
   * its promise rejects.
   */
  disableAdapter<T>(fn: () => T): T {
    this.base_model.enableAdapters(false);
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.base_model.enableAdapters(true);
      throw error;
    }
    if (result instanceof Promise) return result.finally(() => this.base_model.enableAdapters(true)) as T;
    this.base_model.enableAdapters(true);
    return result;
  }

  mergeAdapter(options: MergeOptions = {}): void {
    this.base_model.merge(options);
  }

  unmergeAdapter(): void {
    this.base_model.unmerge();
  }

  /** Merges the active adapters into the base weights and returns the plain model without adapter layers. */
  mergeAndUnload(options: MergeOptions = {}): M {
    return this.base_model.unloadLayers({ merge: true, ...options }) as M;
  }

  /** Returns the plain base model with adapter layers removed and nothing merged. */
  unload(): M {
    return this.base_model.unloadLayers({ merge: false }) as M;
  }

  /** `[trainable, all]` parameter counts, as PEFT's `get_nb_trainable_parameters`. */
  getNbTrainableParameters(): [number, number] {
    return countTrainableParameters(this);
  }

  /** Prints (and returns) PEFT's line: `trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330`. */
  printTrainableParameters(): string {
    const line = trainableParametersLine(this);
    console.log(line);
    return line;
  }

}

/**
 * PEFT's `get_peft_model`. With an `XLoraConfig` it builds an X-LoRA model, which loads the experts from disk
 * and so returns a promise.
 */
export function getPeftModel<M extends AdaptableModel>(model: M, config: XLoraConfig, options?: GetPeftModelOptions): Promise<XLoraModel>;
export function getPeftModel<M extends AdaptableModel>(model: M, config: AnyPeftConfig, options?: GetPeftModelOptions): PeftModel<M>;
export function getPeftModel<M extends AdaptableModel>(
  model: M,
  config: AnyPeftConfig | XLoraConfig,
  options: GetPeftModelOptions = {},
): PeftModel<M> | Promise<XLoraModel> {
  if (config instanceof XLoraConfig) return addXLoraToModel({ model: model as unknown as PreTrainedCausalLM, xloraConfig: config, ...(options.seed === undefined ? {} : { seed: options.seed }) });
  return new PeftModel(model, config, options.adapterName ?? 'default', options.seed === undefined ? {} : { seed: options.seed });
}

export interface GetPeftModelOptions {
  adapterName?: string;
  /** Makes the initial adapter weights reproducible (peft-ts only; PEFT uses torch's global RNG). */
  seed?: number;
}

/** An adapter folder's config; X-LoRA checkpoints are pointed to their own loader. */
async function loadAdapterConfig(dir: string, isTrainable: boolean): Promise<AnyPeftConfig> {
  const config = await loadPeftConfig(dir);
  if (config instanceof XLoraConfig) {
    throw new ConfigError([{ code: 'invalid_value', path: ['peft_type'], message: `${dir} holds an X-LoRA model: load it with fromPretrained(dir, model) from 'peft-ts/xlora'` }], 'adapter config');
  }
  return config.with({ inferenceMode: !isTrainable }) as AnyPeftConfig;
}

/** Sequence classification keeps the task head trainable and saved (PEFT adds `classifier` and `score`). */
function withTaskDefaults(config: AnyPeftConfig): AnyPeftConfig {
  if (config.taskType !== 'SEQ_CLS') return config;
  const entries = new Set([...(config.modulesToSave ?? []), 'classifier', 'score']);
  return config.with({ modulesToSave: [...entries] }) as AnyPeftConfig;
}

