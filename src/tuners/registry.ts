import type { Module } from '../nn/module.js';
import type { PeftType } from './config.js';
import type { LoHaConfig } from './loha/config.js';
import { LoHaModel } from './loha/model.js';
import type { LoraConfig } from './lora/config.js';
import { LoraModel } from './lora/model.js';
import type { BaseTuner } from './tuner-model.js';

/** Configs of the methods in the table below. */
export type AnyPeftConfig = LoraConfig | LoHaConfig;

interface TunerEntry {
  /** Builds the tuner (injecting the first adapter). */
  create(model: Module, config: AnyPeftConfig, adapterName: string, options: TunerOptions): BaseTuner;
}

/** The method table: one entry per PEFT type peft-ts implements. Nothing registers itself on import. */
export const tunerRegistry = {
  LORA: { create: (model, config, name, options) => new LoraModel(model, config as LoraConfig, name, options) },
  LOHA: { create: (model, config, name, options) => new LoHaModel(model, config as LoHaConfig, name, options) },
} satisfies Partial<Record<PeftType, TunerEntry>>;

/** Options every tuner takes: `seed` makes initial adapter weights reproducible (peft-ts only). */
export interface TunerOptions {
  seed?: number;
}

export function createTuner(model: Module, config: AnyPeftConfig, adapterName: string, options: TunerOptions = {}): BaseTuner {
  const entry = (tunerRegistry as Partial<Record<PeftType, TunerEntry>>)[config.peftType];
  if (!entry) throw new Error(`peft_type ${config.peftType} is not implemented by peft-ts yet.`);
  return entry.create(model, config, adapterName, options);
}
