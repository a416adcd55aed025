// Shared by the X-LoRA model, generation and learning tests: a tiny seeded Llama and LoRA experts with seeded
// weights, saved in PEFT's format to temporary folders.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../../src/engine/index.js';
import { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { LoraLayer } from '../../../src/tuners/lora/layer.js';
import type { Module } from '../../../src/nn/module.js';

export const VOCAB = 48;
export const HIDDEN = 32;
export const BASE_SEED = 7;

/** hidden 32, 2 blocks, 4 heads (2 KV heads), vocab 48; EOS 47, pad 0. */
export const LLAMA_CONFIG = {
  vocab_size: VOCAB,
  hidden_size: HIDDEN,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  initializer_range: 0.2,
  eos_token_id: VOCAB - 1,
  pad_token_id: 0,
  tie_word_embeddings: false,
};

/** The same base weights for a given seed (and config overrides), every time. */
export function tinyLlama(seed = BASE_SEED, overrides: Record<string, unknown> = {}): LlamaForCausalLM {
  return new LlamaForCausalLM({ ...LLAMA_CONFIG, ...overrides }, { seed });
}

export interface ExpertSpec {
  r: number;
  loraAlpha: number;
  targetModules: string[];
  /** Seeds the expert's A and B weights (drawn N(0, std)). */
  seed: number;
  std?: number;
  useRslora?: boolean;
  useDora?: boolean;
  loraBias?: boolean;
  loraDropout?: number;
}

/** Every LoRA layer of `model` with its path, in `namedModules()` (pre-order) order. */
export function loraLayers(model: Module): [string, LoraLayer][] {
  return [...model.namedModules()].filter((e): e is [string, LoraLayer] => e[1] instanceof LoraLayer);
}

/** Overwrites every A and B (and lora_B bias) of adapter `name` with seeded N(0, std) draws (LoRA's own init is unseeded). */
export function seedLoraWeights(model: Module, name: string, seed: number, std = 0.2): void {
  let next = seed;
  for (const [, layer] of loraLayers(model)) {
    for (const w of [layer.lora_A.get(name)?.weight, layer.lora_B.get(name)?.weight, layer.lora_B.get(name)?.bias]) {
      if (!w) continue;
      const value = tf.randomNormal(w.shape, 0, std, 'float32', next++);
      w.assign(value);
      value.dispose();
    }
    for (const w of [layer.lora_embedding_A.get(name), layer.lora_embedding_B.get(name)]) {
      if (!w) continue;
      const value = tf.randomNormal(w.shape, 0, std, 'float32', next++);
      w.assign(value);
      value.dispose();
    }
  }
}

/** A LoRA expert on a fresh base (weights of the expert only are saved), written to `dir` in PEFT's format. */
export async function saveExpert(dir: string, spec: ExpertSpec, overrides: Record<string, unknown> = {}): Promise<void> {
  const config = new LoraConfig({
    r: spec.r,
    loraAlpha: spec.loraAlpha,
    targetModules: spec.targetModules,
    initLoraWeights: false,
    useRslora: spec.useRslora ?? false,
    useDora: spec.useDora ?? false,
    loraBias: spec.loraBias ?? false,
    loraDropout: spec.loraDropout ?? 0,
    taskType: 'CAUSAL_LM',
  });
  const peft = getPeftModel(tinyLlama(BASE_SEED, overrides), config);
  try {
    seedLoraWeights(peft, 'default', spec.seed, spec.std);
    await peft.savePretrained(dir);
  } finally {
    peft.dispose();
  }
}

/** A fresh temporary folder and its cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `fn` with console.warn silenced; returns its result and the warnings. */
export async function withWarnings<T>(fn: () => T | Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
  try {
    return { result: await fn(), warnings };
  } finally {
    console.warn = original;
  }
}

/** A plain number[] copy of a tensor's values. */
export function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}
