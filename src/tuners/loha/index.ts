// LoHa (low-rank Hadamard product, PEFT's `tuners/loha`).
export { LoHaConfig, lohaFields } from './config.js';
export type { LoHaFields } from './config.js';
export { LoHaLayer, LoHaLinear, LoHaConv1d, LoHaConv2d, LOHA_ADAPTER_LAYER_NAMES } from './layer.js';
export type { LoHaLayerOptions } from './layer.js';
export { LoHaModel, lohaLayerTable, lohaLayerOptions } from './model.js';
export type { LoHaModelOptions } from './model.js';
