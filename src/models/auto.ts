import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { resolvePretrained } from '../hub/index.js';
import type { HubOptions } from '../hub/index.js';
import { generationDefaultsFromJson } from '../generation/config.js';
import type { RawConfig } from './config-fields.js';
import type { CausalLMClass, PreTrainedCausalLM, TensorMap } from './pretrained.js';
import { PreTrainedForSequenceClassification } from './pretrained.js';
import type { BaseModelConfig, CheckpointConventions, PreTrainedEncoder } from './pretrained.js';
import type { LoadStateDictReport, Module } from '../nn/module.js';
import { StateDictError } from '../errors.js';
import { causalLMClassFor, modelClassFor, sequenceClassificationClassFor } from './registry.js';

export interface FromPretrainedOptions extends HubOptions {
  /** Require every checkpoint key to match a parameter and vice versa (default true). */
  strict?: boolean;
}

/** Reads and checks a model's `config.json`. */
export const AutoConfig = {
  async fromPretrained(pathOrRepoId: string, options: HubOptions = {}): Promise<RawConfig> {
    const dir = await resolvePretrained(pathOrRepoId, options);
    return readConfig(dir);
  },
};

/** Loads a causal LM from a folder or hub id, dispatching on `model_type`. */
export const AutoModelForCausalLM = {
  async fromPretrained(pathOrRepoId: string, options: FromPretrainedOptions = {}): Promise<PreTrainedCausalLM> {
    const dir = await resolvePretrained(pathOrRepoId, options);
    const config = await readConfig(dir);
    const cls = causalLMClassFor(String(config['model_type']));
    const model = new cls(config);
    try {
      await loadPretrainedWeights(model, cls, dir, options.strict ?? true);
    } catch (error) {
      model.dispose();
      throw error;
    }
    model.generationConfig = await readGenerationConfig(dir, config);
    return withNameOrPath(model.eval(), pathOrRepoId);
  },

  /** A randomly initialised model of the architecture named by `config.model_type`. */
  fromConfig(config: RawConfig, options: { seed?: number } = {}): PreTrainedCausalLM {
    const cls = causalLMClassFor(String(config['model_type']));
    return new cls(config, options);
  },
};

export interface EncoderFromPretrainedOptions extends FromPretrainedOptions {
  /** Seed for the weights the checkpoint does not hold (a new classification head). */
  seed?: number;
}

/** Loads a bare encoder (`bert`, `distilbert`, `clip_text_model`) from a folder or hub id, dispatching on `model_type`. */
export const AutoModel = {
  async fromPretrained(pathOrRepoId: string, options: EncoderFromPretrainedOptions = {}): Promise<PreTrainedEncoder> {
    const dir = await resolvePretrained(pathOrRepoId, options);
    const config = await readConfig(dir);
    return withNameOrPath(await loadModelFromDir(modelClassFor(String(config['model_type'])), dir, config, options), pathOrRepoId);
  },

  /** A randomly initialised model of the architecture named by `config.model_type`. */
  fromConfig(config: RawConfig, options: { seed?: number } = {}): PreTrainedEncoder {
    const cls = modelClassFor(String(config['model_type']));
    return new cls(config, options);
  },
};

/**
 * Loads a sequence classifier (`bert`, `distilbert`) from a folder or hub id, dispatching on `model_type`. As in
 * transformers, a checkpoint without this head (a bare or pre-training checkpoint) loads its encoder weights and
 * the head keeps its random initialisation (seeded by `options.seed`); other heads' weights in the checkpoint are
 * dropped. `strict` still applies to the encoder's weights.
 */
export const AutoModelForSequenceClassification = {
  async fromPretrained(pathOrRepoId: string, options: EncoderFromPretrainedOptions = {}): Promise<PreTrainedForSequenceClassification> {
    const dir = await resolvePretrained(pathOrRepoId, options);
    const config = await readConfig(dir);
    return withNameOrPath(await loadModelFromDir(sequenceClassificationClassFor(String(config['model_type'])), dir, config, options), pathOrRepoId);
  },

  /** A randomly initialised model of the architecture named by `config.model_type`. */
  fromConfig(config: RawConfig, options: { seed?: number } = {}): PreTrainedForSequenceClassification {
    const cls = sequenceClassificationClassFor(String(config['model_type']));
    return new cls(config, options);
  },
};

/**
 * Loads a folder or hub id into one given class (transformers' `CLIPTextModel.from_pretrained(...)`), whatever
 * its config's `model_type` (a full CLIP config for `CLIPTextModel`, say).
 */
export async function modelFromPretrained<M extends LoadableModel>(
  cls: CheckpointConventions & (new (config: RawConfig, options?: { seed?: number }) => M),
  pathOrRepoId: string,
  options: EncoderFromPretrainedOptions = {},
): Promise<M> {
  const dir = await resolvePretrained(pathOrRepoId, options);
  const config = await readConfig(dir);
  return withNameOrPath(await loadModelFromDir<M>(cls, dir, config, options), pathOrRepoId);
}

/**
 * Records the folder or hub id a model was loaded from (transformers' `name_or_path`): `PeftModel.savePretrained`
 * writes it as `base_model_name_or_path`, which PEFT's `AutoPeftModelFor*.from_pretrained` needs to find the base.
 */
function withNameOrPath<M extends Module>(model: M, pathOrRepoId: string): M {
  (model as { nameOrPath?: string }).nameOrPath = pathOrRepoId;
  return model;
}

async function loadModelFromDir<M extends LoadableModel>(
  cls: CheckpointConventions & (new (config: RawConfig, options?: { seed?: number }) => M),
  dir: string,
  config: RawConfig,
  options: EncoderFromPretrainedOptions,
): Promise<M> {
  const model = new cls(config, options.seed === undefined ? {} : { seed: options.seed });
  try {
    // A classifier's head may be new (fine-tuning from a bare or pre-training checkpoint), as in transformers.
    const newHeadAllowed = model instanceof PreTrainedForSequenceClassification;
    await loadPretrainedWeights(model, cls, dir, options.strict ?? true, { newHeadAllowed });
  } catch (error) {
    model.dispose();
    throw error;
  }
  model.eval();
  return model;
}

async function readConfig(dir: string): Promise<RawConfig> {
  const path = join(dir, 'config.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new ConfigError([{ code: 'missing', path: [], message: `cannot read ${path}: ${(cause as Error).message}` }], 'model config');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([{ code: 'invalid_type', path: [], message: `${path} must hold a JSON object` }], 'model config');
  }
  const config = parsed as RawConfig;
  if (typeof config['model_type'] !== 'string') {
    throw new ConfigError([{ code: 'missing', path: ['model_type'], message: `${path} has no model_type` }], 'model config');
  }
  return config;
}

async function readGenerationConfig(dir: string, config: RawConfig) {
  const path = join(dir, 'generation_config.json');
  const raw = existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as RawConfig) : config;
  return generationDefaultsFromJson(raw);
}

/** A model the checkpoint loaders accept: any module with a parsed config (causal LMs, encoders, classifiers). */
export type LoadableModel = Module & { readonly config: Pick<BaseModelConfig, 'tieWordEmbeddings'> };

export interface PretrainedLoadOptions {
  /**
   * Let the weights outside the base model (`baseModelPrefix`), a task head, be absent from the checkpoint (they
   * keep their initialisation) and drop the checkpoint's weights of other heads, as transformers does when a
   * checkpoint is loaded into another head. Default false.
   */
  newHeadAllowed?: boolean;
}

/** What loading left out: `missingKeys` kept their initialisation, `unexpectedKeys` were dropped. */
export type PretrainedLoadReport = LoadStateDictReport;

/**
 * Loads a checkpoint folder into `model` the way transformers does: adds the base-model prefix when the
 * checkpoint is of the bare model (strips it, dropping other heads, when a checkpoint with a head is loaded into
 * the bare model), drops keys known to hold no weights, ties the output embedding. `cls` is the model's class
 * (its statics).
 */
export async function loadPretrainedWeights(
  model: LoadableModel,
  cls: CheckpointConventions | CausalLMClass,
  dir: string,
  strict: boolean,
  options: PretrainedLoadOptions = {},
): Promise<PretrainedLoadReport> {
  const tensors = await loadCheckpoint(dir);
  try {
    const { tensors: normalized, dropped } = normalizeCheckpointKeys(model, cls, tensors);
    if (!options.newHeadAllowed) {
      const report = model.loadStateDict(normalized, { strict });
      return { missingKeys: report.missingKeys, unexpectedKeys: [...dropped, ...report.unexpectedKeys] };
    }
    const prefix = `${cls.baseModelPrefix}.`;
    const own = new Set(Object.keys(model.stateDict()));
    const isHead = (key: string) => !key.startsWith(prefix);
    const newHead = [...own].filter((k) => isHead(k) && !normalized.has(k));
    for (const key of [...normalized.keys()]) {
      if (isHead(key) && !own.has(key)) {
        normalized.delete(key);
        dropped.push(key);
      }
    }
    const missingKeys = [...own].filter((k) => !isHead(k) && !normalized.has(k));
    const unexpectedKeys = [...normalized.keys()].filter((k) => !own.has(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      throw new StateDictError({ missingKeys, unexpectedKeys, shapeMismatches: [] });
    }
    model.loadStateDict(normalized, { strict: false });
    return { missingKeys: [...newHead, ...missingKeys], unexpectedKeys: [...dropped, ...unexpectedKeys] };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

function normalizeCheckpointKeys(
  model: LoadableModel,
  cls: CheckpointConventions,
  tensors: TensorMap,
): { tensors: TensorMap; dropped: string[] } {
  const prefix = `${cls.baseModelPrefix}.`;
  const own = new Set(Object.keys(model.stateDict()));
  const hasPrefix = [...tensors.keys()].some((k) => k.startsWith(prefix));
  // The bare model (no weight under the prefix) given a checkpoint saved with a head: strip the prefix and drop
  // the head's weights, as transformers does.
  const bare = ![...own].some((k) => k.startsWith(prefix));
  const out: TensorMap = new Map();
  const dropped: string[] = [];
  for (const [key, tensor] of tensors) {
    if (cls.ignoredCheckpointKeys.some((re) => re.test(key))) continue;
    if (bare && hasPrefix && !own.has(key)) {
      if (key.startsWith(prefix)) out.set(key.slice(prefix.length), tensor);
      else dropped.push(key);
      continue;
    }
    const name = !hasPrefix && !own.has(key) && own.has(prefix + key) ? prefix + key : key;
    out.set(name, tensor);
  }
  // Tied output embedding: transformers ties after loading, so the input embedding's value wins.
  if (model.config.tieWordEmbeddings) {
    const tied = outputEmbeddingTie(model);
    if (tied) {
      const source = out.get(tied.from);
      if (source) out.set(tied.to, source);
    }
  }
  return { tensors: out, dropped };
}

/** The state-dict keys of a tied output embedding: `to` shares the parameter of `from`. */
function outputEmbeddingTie(model: LoadableModel): { from: string; to: string } | undefined {
  const names = new Map<object, string>();
  let tie: { from: string; to: string } | undefined;
  for (const [key, tensor] of Object.entries(model.stateDict())) {
    const first = names.get(tensor);
    if (first !== undefined) tie = { from: first, to: key };
    else names.set(tensor, key);
  }
  return tie;
}
