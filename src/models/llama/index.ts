export {
  LlamaAttention,
  LlamaDecoderLayer,
  LlamaForCausalLM,
  LlamaMLP,
  LlamaModel,
  LlamaRMSNorm,
  LlamaRotaryEmbedding,
  llamaModuleClasses,
} from './modeling.js';
export type { LlamaModuleClasses, RotaryEmbeddings } from './modeling.js';
export { parseLlamaConfig } from './config.js';
export type { AttentionLayerType, LlamaConfig } from './config.js';
export { computeRopeInvFreq, defaultInvFreq, parseRopeParameters, ropeTypes } from './rope.js';
export type { RopeParameters, RopeType } from './rope.js';
