import { UnsupportedModelError } from '../errors.js';
import { GPT2LMHeadModel } from './gpt2/modeling.js';
import { LlamaForCausalLM } from './llama/modeling.js';
import { MistralForCausalLM } from './mistral/modeling.js';
import { Qwen2ForCausalLM } from './qwen2/modeling.js';
import type { CausalLMClass } from './pretrained.js';
import { BertForSequenceClassification, BertModel } from './bert/modeling.js';
import { CLIPTextModel } from './clip/modeling.js';
import { DistilBertForSequenceClassification, DistilBertModel } from './distilbert/modeling.js';
import type { EncoderClass, SequenceClassificationClass } from './pretrained.js';

/** Causal-LM classes by `model_type`. Later architectures add their entry here. */
export const causalLMRegistry = {
  gpt2: GPT2LMHeadModel,
  llama: LlamaForCausalLM,
  mistral: MistralForCausalLM,
  qwen2: Qwen2ForCausalLM,
} as const satisfies Record<string, CausalLMClass>;

export type CausalLMModelType = keyof typeof causalLMRegistry;

export function causalLMClassFor(modelType: string): CausalLMClass {
  if (!Object.hasOwn(causalLMRegistry, modelType)) {
    throw new UnsupportedModelError(modelType, Object.keys(causalLMRegistry));
  }
  return causalLMRegistry[modelType as CausalLMModelType];
}

/** Bare encoders (`AutoModel`) by `model_type`. */
export const modelRegistry = {
  bert: BertModel,
  distilbert: DistilBertModel,
  clip_text_model: CLIPTextModel,
} as const satisfies Record<string, EncoderClass>;

export type EncoderModelType = keyof typeof modelRegistry;

export function modelClassFor(modelType: string): EncoderClass {
  if (!Object.hasOwn(modelRegistry, modelType)) {
    throw new UnsupportedModelError(modelType, Object.keys(modelRegistry));
  }
  return modelRegistry[modelType as EncoderModelType];
}

/** Sequence classifiers (`AutoModelForSequenceClassification`) by `model_type`. */
export const sequenceClassificationRegistry = {
  bert: BertForSequenceClassification,
  distilbert: DistilBertForSequenceClassification,
} as const satisfies Record<string, SequenceClassificationClass>;

export type SequenceClassificationModelType = keyof typeof sequenceClassificationRegistry;

export function sequenceClassificationClassFor(modelType: string): SequenceClassificationClass {
  if (!Object.hasOwn(sequenceClassificationRegistry, modelType)) {
    throw new UnsupportedModelError(modelType, Object.keys(sequenceClassificationRegistry));
  }
  return sequenceClassificationRegistry[modelType as SequenceClassificationModelType];
}
