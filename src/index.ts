// peft-ts public API. Only what is exported here is public; deep imports into dist/ are not supported.

// Engine: TensorFlow.js (re-exported as `tf`) and backend selection.
export { tf, setBackend, ensureBackend, getBackend, backendNames, backendEnvVar, setFusedKernels } from './engine/index.js';
export type { BackendName } from './engine/index.js';

// Errors.
export {
  PeftTsError,
  SafetensorsError,
  NpyError,
  StateDictError,
  ConfigError,
  BackendUnavailableError,
  ShapeError,
  UnsupportedModelError,
  HubError,
  HubNotCachedError,
  NoMatchingModuleError,
  UnsupportedLayerError,
  AdapterNameError,
  AdapterLoadError,
  MergeError,
  ScalingsLogError,
  TokenizerError,
  GenerationError,
  DataError,
  TrainingError,
} from './errors.js';
export type { DataProblem } from './errors.js';
export type { PeftTsErrorCode, SafetensorsErrorReason, ConfigIssue, ShapeMismatch } from './errors.js';

// Checkpoint I/O: safetensors, sharded checkpoints, .npy, atomic writes.
export {
  SafetensorsFile,
  parseSafetensors,
  loadSafetensors,
  serializeSafetensors,
  saveSafetensors,
  float32ToBf16Bits,
  bf16BitsToFloat32,
  float32ToF16Bits,
  f16BitsToFloat32,
  writeFileAtomic,
  writeJsonAtomic,
  loadCheckpoint,
  saveCheckpoint,
  readNpy,
  writeNpy,
  loadNpy,
  saveNpy,
  npyToTensor,
  tensorToNpy,
} from './io/index.js';
export type { SafetensorsDtype, RawTensor, TensorInfo, SerializeOptions, SaveCheckpointOptions, NpyArray, NpyDtype } from './io/index.js';

// Module tree and layers.
export {
  Module,
  ModuleList,
  Sequential,
  Identity,
  Linear,
  Conv1D,
  GPT2Conv1D,
  Conv1d,
  Conv2d,
  Embedding,
  LayerNorm,
  RMSNorm,
  Dropout,
  Activation,
  GELU,
  SiLU,
  ReLU,
  Tanh,
  getActivation,
  gelu,
  geluTanh,
  geluNew,
  quickGelu,
  silu,
  relu,
  init,
} from './nn/index.js';
export type {
  Parameter,
  StateDict,
  LoadStateDictOptions,
  LoadStateDictReport,
  LayerKind,
  Layer,
  AdaptableLayer,
  ForwardContext,
  LinearOptions,
  Conv1dOptions,
  Conv2dOptions,
  EmbeddingOptions,
  ActivationFn,
} from './nn/index.js';

// Models.
export { AutoConfig, AutoModelForCausalLM } from './models/auto.js';
export type { FromPretrainedOptions } from './models/auto.js';
export { PreTrainedCausalLM } from './models/pretrained.js';
export type { BaseModelConfig } from './models/pretrained.js';
export type { CausalLMInput, CausalLMOutput, IdsInput } from './models/outputs.js';
export { disposeOutput } from './models/outputs.js';
export { causalLMLoss, crossEntropy, IGNORE_INDEX } from './models/loss.js';
export { GPT2LMHeadModel, GPT2Model } from './models/gpt2/modeling.js';
export { parseGPT2Config } from './models/gpt2/config.js';
export type { GPT2Config } from './models/gpt2/config.js';
export {
  LlamaForCausalLM,
  LlamaModel,
  LlamaDecoderLayer,
  LlamaAttention,
  LlamaMLP,
  LlamaRMSNorm,
  LlamaRotaryEmbedding,
  parseLlamaConfig,
  computeRopeInvFreq,
} from './models/llama/index.js';
export type { LlamaConfig, LlamaModuleClasses, AttentionLayerType, RopeParameters, RopeType } from './models/llama/index.js';
export { MistralForCausalLM, MistralModel, parseMistralConfig } from './models/mistral/index.js';
export type { MistralConfig } from './models/mistral/index.js';
export { Qwen2ForCausalLM, Qwen2Model, parseQwen2Config } from './models/qwen2/index.js';
export type { Qwen2Config } from './models/qwen2/index.js';
// Encoders (AutoModel) and sequence classifiers (AutoModelForSequenceClassification).
export { AutoModel, AutoModelForSequenceClassification, modelFromPretrained } from './models/auto.js';
export type { EncoderFromPretrainedOptions } from './models/auto.js';
export { PreTrainedEncoder, PreTrainedForSequenceClassification, disposeEncoderOutput } from './models/pretrained.js';
export type {
  EncoderInput,
  EncoderOutput,
  SequenceClassificationInput,
  SequenceClassificationOutput,
  ClassificationLabels,
} from './models/pretrained.js';
export type { ProblemType, ClassificationConfig } from './models/encoder.js';
export { BertModel, BertForSequenceClassification } from './models/bert/modeling.js';
export { parseBertConfig } from './models/bert/config.js';
export type { BertConfig } from './models/bert/config.js';
export { DistilBertModel, DistilBertForSequenceClassification } from './models/distilbert/modeling.js';
export { parseDistilBertConfig } from './models/distilbert/config.js';
export type { DistilBertConfig } from './models/distilbert/config.js';
export { CLIPTextModel } from './models/clip/modeling.js';
export { parseCLIPTextConfig } from './models/clip/config.js';
export type { CLIPTextConfig } from './models/clip/config.js';

// Tokenizers and the hub.
export { AutoTokenizer, PreTrainedTokenizer } from './tokenizers/index.js';
export type { BatchEncodeOptions, BatchEncoding, DecodeOptions, EncodeOptions, ChatMessage, ChatTemplateOptions, TokenizerLoadOptions } from './tokenizers/index.js';
export { resolvePretrained } from './hub/index.js';
export type { HubOptions, DownloadProgress } from './hub/index.js';

// Generation.
export { generate } from './generation/generate.js';
export type { GenerativeModel } from './generation/generate.js';
export { KVCache } from './generation/cache.js';
export type { GenerationOptions, StreamEvent } from './generation/config.js';

// LoHa (low-rank Hadamard product) and the shared LyCORIS-family layer.
export { LoHaConfig, LoHaModel, LoHaLayer, LoHaLinear, LoHaConv1d, LoHaConv2d, lohaLayerTable, LOHA_ADAPTER_LAYER_NAMES } from './tuners/loha/index.js';
export type { LoHaLayerOptions, LoHaModelOptions } from './tuners/loha/index.js';
export { LycorisLayer, tuckerRebuild } from './tuners/lycoris.js';
export type { LycorisLayerOptions } from './tuners/lycoris.js';

// PEFT: the tuner core, LoRA (with DoRA), LoHa, X-LoRA.
export { PeftModel, getPeftModel, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from './peft-model.js';
export type { AdaptableModel, PeftFromPretrainedOptions, SavePretrainedOptions } from './peft-model.js';
export { parsePeftConfig, loadPeftConfig, savePeftConfig } from './tuners/config.js';
export type { PeftType, TaskType, PeftConfig } from './tuners/config.js';
export { BaseTunerLayer } from './tuners/tuner-layer.js';
export type { MergeOptions } from './tuners/tuner-layer.js';
export { BaseTuner } from './tuners/tuner-model.js';
export type { TunerConfig } from './tuners/tuner-model.js';
export { ModulesToSaveWrapper } from './tuners/modules-to-save.js';
export { checkTargetModuleExists, getPatternKey } from './tuners/matching.js';
export { LoraConfig } from './tuners/lora/config.js';
export { LoraModel } from './tuners/lora/model.js';
export { LoraLayer, LoraLinear, LoraEmbedding, LoraConv } from './tuners/lora/layer.js';
export {
  XLoraConfig,
  XLoraModel,
  XLoraCache,
  XLoraClassifier,
  addXLoraToModel,
  fromPretrained as xloraFromPretrained,
  loadModel as xloraLoadModel,
  loadScalingsLog,
  ScalingsLog,
} from './tuners/xlora/index.js';
export type { XLoraRuntimeOptions, XLoraGenerateOptions, AddXLoraOptions, XLoraFromPretrainedOptions, LoadModelOptions } from './tuners/xlora/index.js';

// Training: Trainer (AdamW, schedules, clipping, accumulation, checkpoints that resume bit for bit), JSONL data.
export {
  Trainer,
  AdamW,
  clipGradNorm,
  globalNorm,
  constantSchedule,
  constantScheduleWithWarmup,
  linearScheduleWithWarmup,
  cosineScheduleWithWarmup,
  getScheduler,
  readJsonl,
  recordFormat,
  tokenizeRecord,
  loadJsonlDataset,
  packExamples,
  collate,
  countLossTokens,
  epochOrder,
  latestCheckpoint,
} from './training/index.js';
export type {
  TrainableModel,
  TrainingArguments,
  TrainerInit,
  TrainerCallbacks,
  TrainerStateFile,
  TrainResult,
  StepInfo,
  MetricsRecord,
  StopReason,
  AdamWOptions,
  LrLambda,
  SchedulerType,
  TrainExample,
  Batch,
  RecordFormat,
  LoadDataOptions,
  LoadedData,
} from './training/index.js';
