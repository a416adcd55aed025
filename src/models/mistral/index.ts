export {
  MistralAttention,
  MistralDecoderLayer,
  MistralForCausalLM,
  MistralMLP,
  MistralModel,
  MistralRMSNorm,
  MistralRotaryEmbedding,
  mistralModuleClasses,
} from './modeling.js';
export { parseMistralConfig } from './config.js';
export type { MistralConfig } from './config.js';
