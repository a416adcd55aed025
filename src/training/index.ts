// Public API of src/training: Trainer, AdamW, schedules, data loading.
export { Trainer, epochOrder, mixSeed, checkpointSteps, latestCheckpoint, TRAINER_STATE_NAME, OPTIMIZER_NAME, TRAINABLE_NAME, METRICS_NAME } from './trainer.js';
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
} from './trainer.js';
export { AdamW, clipGradNorm, globalNorm, EXP_AVG_PREFIX, EXP_AVG_SQ_PREFIX } from './optimizer.js';
export type { AdamWOptions } from './optimizer.js';
export {
  constantSchedule,
  constantScheduleWithWarmup,
  linearScheduleWithWarmup,
  cosineScheduleWithWarmup,
  getScheduler,
} from './schedules.js';
export type { LrLambda, SchedulerType } from './schedules.js';
export { readJsonl, recordFormat, tokenizeRecord, loadJsonlDataset, packExamples, collate, countLossTokens } from './data.js';
export type { TrainExample, Batch, RecordFormat, JsonlRecord, ReadJsonlOptions, LoadDataOptions, LoadedData } from './data.js';
