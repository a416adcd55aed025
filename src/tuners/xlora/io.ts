// Building, loading and saving X-LoRA models: the original package's layout (xlora_config.json,
// xlora_classifier.safetensors, one folder per expert) and PEFT's (adapter_config.json with peft_type XLORA,
// classifier in adapter_model.safetensors, experts in subfolders). Saves by peft-ts are self-contained: PEFT's
// layout with every expert in its own subfolder.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { tf } from '../../engine/tf.js';
import { AdapterLoadError, ConfigError } from '../../errors.js';
import { resolvePretrained } from '../../hub/index.js';
import type { HubOptions } from '../../hub/index.js';
import { loadSafetensors, saveSafetensors } from '../../io/index.js';
import { AutoModelForCausalLM } from '../../models/auto.js';
import type { PreTrainedCausalLM } from '../../models/pretrained.js';
import { AutoTokenizer } from '../../tokenizers/index.js';
import type { PreTrainedTokenizer } from '../../tokenizers/index.js';
import { ADAPTER_WEIGHTS_NAME, getAdapterStateDict, setAdapterStateDict } from '../adapter-state.js';
import { loadPeftConfig, savePeftConfig } from '../config.js';
import { LoraConfig } from '../lora/config.js';
import { LoraModel } from '../lora/model.js';
import { validateAdapterName } from '../tuner-model.js';
import { originalClassifierKeys } from './classifier.js';
import type { XLoraConfig } from './config.js';
import { loadXLoraConfig } from './config.js';
import { XLoraModel } from './model.js';

const ORIGINAL_CLASSIFIER = 'xlora_classifier.safetensors';
const CLASSIFIER_PREFIX = 'base_model.internal_xlora_classifier.';

export interface AddXLoraOptions extends HubOptions {
  model: PreTrainedCausalLM;
  xloraConfig: XLoraConfig;
  /** Expert name -> LoRA adapter folder or hub id; the order is the expert index. Default: the config's. */
  adapters?: Readonly<Record<string, string>>;
  verbose?: boolean;
  /** Seed for the classifier's initial weights. */
  seed?: number;
}

/**
 * Converts `model` to X-LoRA: loads each LoRA expert (PEFT format) in order, activates all of them, freezes the
 * base and the experts, builds the classifier. The original's `add_xlora_to_model`.
 */
export async function addXLoraToModel(options: AddXLoraOptions): Promise<XLoraModel> {
  const adapters = options.adapters ?? options.xloraConfig.adapters;
  const names = Object.keys(adapters);
  if (names.length === 0) {
    throw new ConfigError([{ code: 'missing', path: ['adapters'], message: 'X-LoRA needs at least one LoRA expert' }], 'X-LoRA config');
  }
  const tuner = await loadExperts(options.model, adapters, options);
  // The original puts the model with its experts in eval mode (freshly injected LoRA layers start in training mode,
  // which would apply the experts' lora_dropout at inference); the classifier keeps its own mode.
  tuner.model.eval();
  try {
    const config = options.xloraConfig.with({ adapters: { ...adapters } });
    return new XLoraModel(tuner, config, names, options.seed === undefined ? {} : { seed: options.seed });
  } catch (error) {
    tuner.unloadLayers({ merge: false });
    throw error;
  }
}

/** Loads the experts into one LoraModel, named by their keys in `adapters`. */
async function loadExperts(model: PreTrainedCausalLM, adapters: Readonly<Record<string, string>>, options: HubOptions & { verbose?: boolean; xloraConfig: XLoraConfig }): Promise<LoraModel> {
  let tuner: LoraModel | undefined;
  try {
    for (const [name, path] of Object.entries(adapters)) {
      validateAdapterName(name);
      const dir = await resolvePretrained(path, options);
      const config = await loadPeftConfig(dir);
      if (!(config instanceof LoraConfig)) throw new AdapterLoadError(`X-LoRA expert "${name}" at ${dir} is a ${config.peftType} adapter; experts must be LoRA adapters.`);
      if (config.useDora) throw new AdapterLoadError(`X-LoRA expert "${name}" uses DoRA, which X-LoRA does not support (as in PEFT).`);
      const expert = config.with({ inferenceMode: !options.xloraConfig.useTrainableAdapters });
      if (tuner) tuner.injectAdapter(expert, name);
      else tuner = new LoraModel(model, expert, name);
      const tensors = await loadSafetensors(join(dir, ADAPTER_WEIGHTS_NAME));
      try {
        const report = setAdapterStateDict(tuner, name, expertKeys(tensors));
        if (report.missingKeys.length) console.warn(`X-LoRA expert "${name}": missing keys ${report.missingKeys.join(', ')}`);
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
      if (options.verbose) console.log(`Loaded X-LoRA expert ${Object.keys(adapters).indexOf(name)} "${name}" from ${dir}`);
    }
  } catch (error) {
    tuner?.unloadLayers({ merge: false });
    throw error;
  }
  return tuner!;
}

/**
 * Expert keys as a LoRA load expects them: PEFT's X-LoRA subfolders may carry `base_model.lora_model.model.` and
 * classifier tensors (older PEFT picked keys by the substring "lora_"); the classifier tensors are dropped.
 */
function expertKeys(tensors: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [key, value] of tensors) {
    if (key.includes('internal_xlora_classifier')) continue;
    out.set(key.replace(/^base_model\.lora_model\.model\./, 'base_model.model.'), value);
  }
  return out;
}

export interface XLoraFromPretrainedOptions extends HubOptions {
  verbose?: boolean;
  /** Read the classifier from safetensors (default true); `.pt` files are not supported. */
  fromSafetensors?: boolean;
}

/**
 * Loads an X-LoRA checkpoint (either layout) onto `model`. `adapters`: expert names (stored in subfolders of
 * `loadDirectory`) or a name -> path record; default: the experts the config lists, read from their
 * subfolders when present, else from the recorded paths.
 */
export async function fromPretrained(
  loadDirectory: string,
  model: PreTrainedCausalLM,
  adapters?: readonly string[] | Readonly<Record<string, string>>,
  options: XLoraFromPretrainedOptions = {},
): Promise<XLoraModel> {
  if (options.fromSafetensors === false) {
    throw new ConfigError([{ code: 'invalid_value', path: ['fromSafetensors'], message: 'pickled xlora_classifier.pt files are not supported; save with safe_serialization=True' }], 'X-LoRA load options');
  }
  const dir = await resolvePretrained(loadDirectory, options);
  const config = await loadXLoraConfig(dir);
  const experts = resolveExpertPaths(dir, adapters ?? config.adapters);
  const xlora = await addXLoraToModel({ ...options, model, xloraConfig: config, adapters: experts });
  try {
    const original = existsSync(join(dir, ORIGINAL_CLASSIFIER));
    const tensors = await loadSafetensors(join(dir, original ? ORIGINAL_CLASSIFIER : ADAPTER_WEIGHTS_NAME));
    try {
      const keyed = new Map([...tensors].filter(([k]) => original || k.startsWith(CLASSIFIER_PREFIX)).map(([k, v]) => [original ? k : k.slice(CLASSIFIER_PREFIX.length), v] as const));
      xlora.internal_xlora_classifier.loadStateDict(original ? originalClassifierKeys(xlora.internal_xlora_classifier, keyed) : keyed);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } catch (error) {
    xlora.lora_model.unloadLayers({ merge: false });
    xlora.internal_xlora_classifier.dispose();
    throw error;
  }
  return xlora.eval();
}

/** Expert name -> folder: a subfolder of the checkpoint when it exists (self-contained), else the path given. */
function resolveExpertPaths(dir: string, adapters: readonly string[] | Readonly<Record<string, string>>): Record<string, string> {
  const entries: [string, string][] = Array.isArray(adapters) ? adapters.map((n) => [n, n]) : Object.entries(adapters);
  return Object.fromEntries(
    entries.map(([name, path]) => {
      const inside = join(dir, name);
      if (existsSync(join(inside, 'adapter_config.json'))) return [name, inside];
      const relative = isAbsolute(path) ? path : resolve(dir, path);
      return [name, existsSync(relative) ? relative : path];
    }),
  );
}

/** Saves in PEFT's layout with every expert in `<dir>/<name>/`, so the folder loads on its own. */
export async function saveXLora(model: XLoraModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const experts = Object.fromEntries(model.experts.map((n) => [n, `./${n}`]));
  for (const name of model.experts) {
    const out = join(dir, name);
    await mkdir(out, { recursive: true });
    const tensors = getAdapterStateDict(model.lora_model, name);
    try {
      await saveSafetensors(join(out, ADAPTER_WEIGHTS_NAME), tensors, { metadata: { format: 'pt' } });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    await savePeftConfig(out, model.lora_model.peftConfig.get(name)!.with({ inferenceMode: true }));
  }
  const { classifier, asPeft } = classifierForSave(model);
  await saveSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), classifier, { metadata: { format: 'pt' } });
  const config = model.currentConfig();
  // As PeftModel.savePretrained: base_model_name_or_path from the model's load path when the config has none.
  const nameOrPath = config.baseModelNameOrPath ?? (model.inner as { nameOrPath?: string }).nameOrPath ?? null;
  await savePeftConfig(dir, config.with({ adapters: experts, inferenceMode: true, baseModelNameOrPath: nameOrPath, ...(asPeft ? { classifierLayout: 'peft' as const } : {}) }));
}

/**
 * The classifier tensors under PEFT's key names. PEFT's classifier has ReLU after each hidden Linear, a Dropout only
 * when p > 0, and biases, so its j-th Linear is `layers.{j * (p > 0 ? 3 : 2)}`. The "original" layout with ReLU,
 * dropout and biases (the default of a constructed config) computes the same but holds a Dropout(0) module when
 * p = 0, which shifts the indices: it is saved in PEFT's layout (`asPeft`), else PEFT would load the folder and
 * leave the last Linear at its random init, silently. Original layouts without ReLU/dropout or biases have no PEFT
 * equivalent and are saved as they are.
 */
function classifierForSave(model: XLoraModel): { classifier: Map<string, tf.Tensor>; asPeft: boolean } {
  const config = model.currentConfig();
  const asPeft = config.classifierLayout === 'peft' || (config.enableReluAndDropout && config.useBias);
  const step = config.xloraDropoutP > 0 ? 3 : 2;
  const index = new Map(model.internal_xlora_classifier.linearIndices().map((i, j) => [i, asPeft ? j * step : i]));
  const classifier = new Map<string, tf.Tensor>();
  for (const [key, value] of Object.entries(model.internal_xlora_classifier.stateDict())) {
    const [, i, param] = /^layers\.(\d+)\.(.+)$/.exec(key)!;
    classifier.set(`${CLASSIFIER_PREFIX}layers.${index.get(Number(i)) ?? i}.${param}`, value);
  }
  return { classifier, asPeft };
}

export interface LoadModelOptions extends HubOptions {
  /** Base model folder or hub id. */
  modelName: string;
  /** X-LoRA checkpoint folder or hub id (also where the tokenizer is read from). */
  fineTuneModelName: string;
  /** Accepted for API compatibility: peft-ts computes in float32 on the TF.js backend. */
  device?: string;
  dtype?: string;
  adapters?: readonly string[] | Readonly<Record<string, string>>;
  loadXlora?: boolean;
  verbose?: boolean;
  useCache?: boolean;
}

/** The original's `xlora_utils.load_model`: base model, tokenizer (pad = EOS, right padding) and X-LoRA. */
export async function loadModel(options: LoadModelOptions): Promise<{ model: XLoraModel | PreTrainedCausalLM; tokenizer: PreTrainedTokenizer }> {
  const base = await AutoModelForCausalLM.fromPretrained(options.modelName, options);
  const tokenizer = await AutoTokenizer.fromPretrained(existsSync(join(options.fineTuneModelName, 'tokenizer.json')) ? options.fineTuneModelName : options.modelName, options);
  if (tokenizer.eosToken !== undefined) tokenizer.padToken = tokenizer.eosToken;
  tokenizer.paddingSide = 'right';
  if (options.loadXlora === false) return { model: base, tokenizer };
  const model = await fromPretrained(options.fineTuneModelName, base, options.adapters, options);
  return { model, tokenizer };
}
