// Public API of src/training: Trainer, AdamW, schedules, data loading, checkpoints and metrics.
export { Trainer, epochOrder, mixSeed } from './trainer.js';
export type { TrainableModel, TrainerInit, TrainerCallbacks, TrainResult, StepInfo, StopReason } from './trainer.js';
export type { TrainingArguments } from './arguments.js';
export { checkpointSteps, latestCheckpoint, TRAINER_STATE_NAME, OPTIMIZER_NAME, TRAINABLE_NAME } from './checkpoint.js';
export type { TrainerStateFile } from './checkpoint.js';
export { METRICS_NAME } from './metrics.js';
export type { MetricsRecord } from './metrics.js';
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
