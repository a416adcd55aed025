export { Module, ModuleList, assertLastDim } from './module.js';
export type { Parameter, StateDict, LoadStateDictOptions, LoadStateDictReport, LayerKind, Layer, AdaptableLayer } from './module.js';
export type { ForwardContext } from './context.js';
export * as init from './init.js';
export type { LayerInitOptions, SeedOption } from './init.js';
export { Linear, isPlainLinear, linear } from './linear.js';
export type { LinearOptions } from './linear.js';
export { Conv1D, GPT2Conv1D } from './gpt2-conv1d.js';
export { Conv1d, Conv2d, conv2dNCHW } from './conv.js';
export type { Conv1dOptions, Conv2dOptions, ConvOptions, Conv2dParams, IntPair, PaddingMode } from './conv.js';
export { Embedding, embedding } from './embedding.js';
export type { EmbeddingOptions } from './embedding.js';
export { LayerNorm, RMSNorm, layerNorm, rmsNorm } from './norm.js';
export type { LayerNormOptions, RMSNormOptions } from './norm.js';
export { Dropout, dropout, mulberry32 } from './dropout.js';
export type { DropoutOptions } from './dropout.js';
export {
  Activation,
  GELU,
  ReLU,
  SiLU,
  Tanh,
  activationNames,
  gelu,
  gelu10,
  geluFast,
  geluNew,
  geluTanh,
  getActivation,
  identity,
  isActivationName,
  laplace,
  leakyRelu,
  mish,
  quickGelu,
  relu,
  relu6,
  reluSquared,
  sigmoid,
  silu,
  tanh,
} from './activations.js';
export type { ActivationFn, ActivationName } from './activations.js';
export { Identity, Sequential } from './container.js';
export { ModuleDict, ParameterDict } from './dicts.js';
export { pyFloat, pyTuple } from './repr.js';
