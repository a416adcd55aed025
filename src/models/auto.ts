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
import { causalLMClassFor } from './registry.js';

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
    return model.eval();
  },

  /** A randomly initialised model of the architecture named by `config.model_type`. */
  fromConfig(config: RawConfig, options: { seed?: number } = {}): PreTrainedCausalLM {
    const cls = causalLMClassFor(String(config['model_type']));
    return new cls(config, options);
  },
};

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

/**
 * Loads a checkpoint folder into `model` the way transformers does: adds the base-model prefix when the
 * checkpoint is of the bare model, drops keys known to hold no weights, ties the output embedding.
 */
export async function loadPretrainedWeights(model: PreTrainedCausalLM, cls: CausalLMClass, dir: string, strict: boolean): Promise<void> {
  const tensors = await loadCheckpoint(dir);
  try {
    model.loadStateDict(normalizeCheckpointKeys(model, cls, tensors), { strict });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

function normalizeCheckpointKeys(model: PreTrainedCausalLM, cls: CausalLMClass, tensors: TensorMap): TensorMap {
  const prefix = `${cls.baseModelPrefix}.`;
  const own = new Set(Object.keys(model.stateDict()));
  const hasPrefix = [...tensors.keys()].some((k) => k.startsWith(prefix));
  const out: TensorMap = new Map();
  for (const [key, tensor] of tensors) {
    if (cls.ignoredCheckpointKeys.some((re) => re.test(key))) continue;
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
  return out;
}

/** The state-dict keys of a tied output embedding: `to` shares the parameter of `from`. */
function outputEmbeddingTie(model: PreTrainedCausalLM): { from: string; to: string } | undefined {
  const names = new Map<object, string>();
  let tie: { from: string; to: string } | undefined;
  for (const [key, tensor] of Object.entries(model.stateDict())) {
    const first = names.get(tensor);
    if (first !== undefined) tie = { from: first, to: key };
    else names.set(tensor, key);
  }
  return tie;
}
