export { AutoTokenizer } from './auto.js';
export type { TokenizerLoadOptions } from './auto.js';
export { PreTrainedTokenizer } from './tokenizer.js';
export type { BatchEncodeOptions, BatchEncoding, DecodeOptions, EncodeOptions, PaddingStrategy, TruncationStrategy } from './tokenizer.js';
export type { ChatMessage, ChatTemplateOptions } from './chat.js';
export type { Side, SpecialTokenKey, TokenizerSource, JsonObject } from './config.js';
export type { TokenizerFiles } from './load.js';
