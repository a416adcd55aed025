import { UnsupportedModelError } from '../errors.js';
import { GPT2LMHeadModel } from './gpt2/modeling.js';
import type { CausalLMClass } from './pretrained.js';

/** Causal-LM classes by `model_type`. Later architectures add their entry here. */
export const causalLMRegistry = {
  gpt2: GPT2LMHeadModel,
} as const satisfies Record<string, CausalLMClass>;

export type CausalLMModelType = keyof typeof causalLMRegistry;

export function causalLMClassFor(modelType: string): CausalLMClass {
  if (!Object.hasOwn(causalLMRegistry, modelType)) {
    throw new UnsupportedModelError(modelType, Object.keys(causalLMRegistry));
  }
  return causalLMRegistry[modelType as CausalLMModelType];
}
