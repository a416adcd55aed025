export {
  Qwen2Attention,
  Qwen2DecoderLayer,
  Qwen2ForCausalLM,
  Qwen2MLP,
  Qwen2Model,
  Qwen2RMSNorm,
  Qwen2RotaryEmbedding,
  qwen2ModuleClasses,
} from './modeling.js';
export { parseQwen2Config } from './config.js';
export type { Qwen2Config } from './config.js';
