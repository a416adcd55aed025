// The adapter part of a model's state dict, keyed as PEFT writes `adapter_model.safetensors` (§3.3–3.5 of the
// spec): `base_model.model.<module path>.<tensor role>[.<param>]`, adapter name removed, modules-to-save copies
// under the wrapped module's own path.
import { tf } from '../engine/tf.js';
import { AdapterLoadError } from '../errors.js';
import { ModuleDict, ParameterDict } from '../nn/dicts.js';
import type { Parameter } from '../nn/module.js';
import type { BaseTuner } from './tuner-model.js';

/** The adapter weights file of a PEFT adapter folder. */
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** Prefix of every key PEFT saves: `PeftModel.base_model` (the tuner) `.model` (the user's model). */
export const PEFT_KEY_PREFIX = 'base_model.model.';

const EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'];

/** Saved key -> the live parameter it comes from, for one adapter. */
export function adapterParameters(tuner: BaseTuner, adapterName: string): Map<string, Parameter> {
  const out = new Map<string, Parameter>();
  for (const [path, layer] of tuner.tunerLayers()) {
    for (const role of layer.adapterLayerNames) {
      const container = childNamed(layer, role);
      if (container instanceof ParameterDict && container.has(adapterName)) {
        out.set(`${PEFT_KEY_PREFIX}${path}.${role}`, container.get(adapterName)!);
      } else if (container instanceof ModuleDict && container.has(adapterName)) {
        for (const [name, param] of container.get(adapterName)!.namedParameters()) out.set(`${PEFT_KEY_PREFIX}${path}.${role}.${name}`, param);
      }
    }
  }
  for (const [path, wrapper] of tuner.modulesToSaveWrappers()) {
    const copy = wrapper.modules_to_save.get(adapterName);
    if (!copy) continue;
    for (const [name, param] of copy.namedParameters()) out.set(`${PEFT_KEY_PREFIX}${path}.${name}`, param);
  }
  // PEFT's save_embedding_layers="auto": targeting an embedding by name saves the full base embedding too.
  const targets = tuner.peftConfig.get(adapterName)?.targetModules;
  const embeddings = Array.isArray(targets) ? EMBEDDING_LAYER_NAMES.filter((n) => targets.includes(n)) : [];
  const tunerPaths = tuner.tunerLayers().map(([p]) => p);
  // A tensor inside an adapter layer but outside its base layer belongs to an adapter, whatever the method.
  const isAdapterTensor = (name: string) => tunerPaths.some((p) => name.startsWith(`${p}.`) && !name.startsWith(`${p}.base_layer.`));
  for (const [name, param] of tuner.model.namedParameters()) {
    if (embeddings.some((e) => name.includes(e)) && !isAdapterTensor(name)) out.set(`${PEFT_KEY_PREFIX}${name}`, param);
  }
  const bias = (tuner.peftConfig.get(adapterName) as { bias?: string } | undefined)?.bias;
  if (bias === 'all' || bias === 'lora_only') {
    for (const [name, param] of tuner.model.namedParameters()) {
      const isBias = name.split('.').at(-1) === 'bias' && !name.includes('.modules_to_save.') && !name.includes('.original_module.');
      if (!isBias || isAdapterTensor(name)) continue;
      if (bias === 'lora_only' && !tunerPaths.some((p) => name === `${p}.base_layer.bias`)) continue;
      out.set(`${PEFT_KEY_PREFIX}${name}`, param);
    }
  }
  return out;
}

/** Copies of the adapter's tensors keyed as in `adapter_model.safetensors` (caller disposes). */
export function getAdapterStateDict(tuner: BaseTuner, adapterName: string): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [key, param] of adapterParameters(tuner, adapterName)) out.set(key, tf.clone(param));
  return out;
}

export interface LoadAdapterReport {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/**
 * Loads saved adapter tensors into adapter `adapterName`. Keys may lack the `base_model.model.` prefix (files
 * written by the transformers integration). Every shape is checked before anything is assigned.
 */
export function setAdapterStateDict(tuner: BaseTuner, adapterName: string, tensors: Map<string, tf.Tensor>): LoadAdapterReport {
  const targets = adapterParameters(tuner, adapterName);
  const normalized = new Map<string, tf.Tensor>();
  for (const [key, value] of tensors) {
    let k = key.startsWith(PEFT_KEY_PREFIX) ? key : PEFT_KEY_PREFIX + key;
    // Older DoRA files kept the magnitude as a module weight.
    k = k.replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector');
    normalized.set(k, value);
  }
  const mismatches: string[] = [];
  for (const [key, value] of normalized) {
    const target = targets.get(key);
    if (target && target.shape.join() !== value.shape.join()) {
      mismatches.push(`${key}: checkpoint [${value.shape.join(', ')}] vs model [${target.shape.join(', ')}]`);
    }
  }
  if (mismatches.length) {
    throw new AdapterLoadError(
      `Size mismatch loading adapter "${adapterName}": ${mismatches.slice(0, 8).join('; ')}${mismatches.length > 8 ? `; ... (${mismatches.length} in all)` : ''}. ` +
        'The adapter was trained for a different base model or with a different config (r, target modules).',
    );
  }
  for (const [key, value] of normalized) {
    const target = targets.get(key);
    if (!target) continue;
    if (value.dtype === 'float32') target.assign(value);
    else {
      const cast = tf.cast(value, 'float32');
      target.assign(cast);
      cast.dispose();
    }
  }
  return {
    missingKeys: [...targets.keys()].filter((k) => !normalized.has(k)),
    unexpectedKeys: [...normalized.keys()].filter((k) => !targets.has(k)),
  };
}

function childNamed(module: { namedChildren(): Iterable<[string, unknown]> }, name: string): unknown {
  for (const [n, child] of module.namedChildren()) if (n === name) return child;
  return undefined;
}
