/**
 * The trainer's options: transformers' `TrainingArguments` (camelCase, the options this trainer has), and their
 * validation and defaults, resolved once when a `Trainer` is built.
 */
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import type { SchedulerType } from './schedules.js';

/** transformers' `TrainingArguments`, camelCase, for the options this trainer has. */
export interface TrainingArguments {
  /** Checkpoints (`checkpoint-<step>/`), `metrics.jsonl` and the final adapter go here. */
  outputDir: string;
  /** Peak learning rate (default 5e-5). */
  learningRate?: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  adamBeta1?: number;
  adamBeta2?: number;
  adamEpsilon?: number;
  /** Clip gradients to this global L2 norm (default 1; 0 or null: no clipping). */
  maxGradNorm?: number | null;
  /** Epochs when `maxSteps` is not set (default 1; fractions allowed). */
  numTrainEpochs?: number;
  /** Total optimizer steps; overrides `numTrainEpochs`. */
  maxSteps?: number;
  /** Examples per micro-batch (default 8). */
  perDeviceTrainBatchSize?: number;
  /** Examples per evaluation batch (default: the train batch size). */
  perDeviceEvalBatchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulationSteps?: number;
  /** Default 'linear'. */
  lrSchedulerType?: SchedulerType;
  /** Warmup steps (default 0; takes precedence over `warmupRatio`). */
  warmupSteps?: number;
  /** Warmup as a fraction of the total steps (rounded up, as transformers). */
  warmupRatio?: number;
  /** Write a metrics record every N steps (default 10; the last step always logs). */
  loggingSteps?: number;
  /** Evaluate every N steps (needs an eval dataset; it is also evaluated at the end). */
  evalSteps?: number;
  /** Write a checkpoint every N steps. */
  saveSteps?: number;
  /** Keep at most this many checkpoints (the oldest are deleted). */
  saveTotalLimit?: number;
  /** Seed of dropout masks (default 42). */
  seed?: number;
  /** Seed of the data order (default: `seed`). */
  dataSeed?: number;
  /** Shuffle the training examples every epoch (default true). */
  shuffle?: boolean;
  /** Stop once the loss is at or below this (see `targetLossOn`). */
  targetLoss?: number;
  /**
   * Which loss `targetLoss` watches: 'eval' (each evaluation; the default when there is an eval dataset) or
   * 'train' (the mean training loss of each logging window).
   */
  targetLossOn?: 'eval' | 'train';
  /** A checkpoint folder, or true for the newest `checkpoint-*` in `outputDir`. */
  resumeFromCheckpoint?: string | boolean;
  /** Draw a progress bar on stderr (default: only when stderr is a TTY). */
  progressBar?: boolean;
  /** Save the adapter into `outputDir` when training ends (default true). */
  saveFinalAdapter?: boolean;
}

/** `TrainingArguments` with every default filled in (0 means "off" for the step intervals and the limit). */
export interface ResolvedTrainingArguments {
  outputDir: string;
  learningRate: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  batchSize: number;
  evalBatchSize: number;
  gradientAccumulationSteps: number;
  lrSchedulerType: SchedulerType;
  maxSteps: number;
  warmupSteps: number;
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  saveTotalLimit: number;
  seed: number;
  dataSeed: number;
  shuffle: boolean;
  targetLoss: number | undefined;
  targetLossOn: 'eval' | 'train';
  progressBar: boolean;
  saveFinalAdapter: boolean;
}

function positiveInt(issues: ConfigIssue[], name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) issues.push({ code: 'invalid_value', path: [name], message: `must be an integer >= ${min}, got ${value}` });
  return value;
}

/**
 * Validates `a` and fills in the defaults; every problem is collected into one `ConfigError`. The step count
 * depends on the dataset sizes, hence `trainExamples` and `evalExamples` (0 when there is no eval dataset).
 */
export function resolveTrainingArguments(a: TrainingArguments, trainExamples: number, evalExamples: number): { args: ResolvedTrainingArguments; batchesPerEpoch: number } {
  const issues: ConfigIssue[] = [];
  const batchSize = positiveInt(issues, 'perDeviceTrainBatchSize', a.perDeviceTrainBatchSize ?? 8);
  const ga = positiveInt(issues, 'gradientAccumulationSteps', a.gradientAccumulationSteps ?? 1);
  const batchesPerEpoch = Math.ceil(trainExamples / batchSize);
  const epochs = a.numTrainEpochs ?? 1;
  if (!(epochs > 0)) issues.push({ code: 'invalid_value', path: ['numTrainEpochs'], message: `must be > 0, got ${epochs}` });
  const maxSteps = a.maxSteps ?? Math.max(1, Math.ceil((epochs * batchesPerEpoch) / ga));
  positiveInt(issues, 'maxSteps', maxSteps);
  const warmupSteps = a.warmupSteps ?? Math.ceil((a.warmupRatio ?? 0) * maxSteps);
  positiveInt(issues, 'warmupSteps', warmupSteps, 0);
  const learningRate = a.learningRate ?? 5e-5;
  if (!(learningRate >= 0)) issues.push({ code: 'invalid_value', path: ['learningRate'], message: `must be >= 0, got ${learningRate}` });
  const maxGradNorm = a.maxGradNorm ?? (a.maxGradNorm === null ? 0 : 1);
  if (!(maxGradNorm >= 0)) issues.push({ code: 'invalid_value', path: ['maxGradNorm'], message: `must be >= 0, got ${maxGradNorm}` });
  const targetLossOn = a.targetLossOn ?? (evalExamples ? 'eval' : 'train');
  if (targetLossOn === 'eval' && a.targetLoss !== undefined && !evalExamples) {
    issues.push({ code: 'invalid_value', path: ['targetLossOn'], message: "'eval' needs an eval dataset" });
  }
  if (a.evalSteps !== undefined && !evalExamples) issues.push({ code: 'invalid_value', path: ['evalSteps'], message: 'needs an eval dataset' });
  if (!a.outputDir) issues.push({ code: 'missing', path: ['outputDir'], message: 'is required' });
  const args: ResolvedTrainingArguments = {
    outputDir: a.outputDir,
    learningRate,
    weightDecay: a.weightDecay ?? 0,
    adamBeta1: a.adamBeta1 ?? 0.9,
    adamBeta2: a.adamBeta2 ?? 0.999,
    adamEpsilon: a.adamEpsilon ?? 1e-8,
    maxGradNorm,
    batchSize,
    evalBatchSize: positiveInt(issues, 'perDeviceEvalBatchSize', a.perDeviceEvalBatchSize ?? batchSize),
    gradientAccumulationSteps: ga,
    lrSchedulerType: a.lrSchedulerType ?? 'linear',
    maxSteps,
    warmupSteps,
    loggingSteps: positiveInt(issues, 'loggingSteps', a.loggingSteps ?? 10),
    evalSteps: a.evalSteps === undefined ? 0 : positiveInt(issues, 'evalSteps', a.evalSteps),
    saveSteps: a.saveSteps === undefined ? 0 : positiveInt(issues, 'saveSteps', a.saveSteps),
    saveTotalLimit: a.saveTotalLimit === undefined ? 0 : positiveInt(issues, 'saveTotalLimit', a.saveTotalLimit),
    seed: a.seed ?? 42,
    dataSeed: a.dataSeed ?? a.seed ?? 42,
    shuffle: a.shuffle ?? true,
    targetLoss: a.targetLoss,
    targetLossOn,
    progressBar: a.progressBar ?? process.stderr.isTTY === true,
    saveFinalAdapter: a.saveFinalAdapter ?? true,
  };
  if (issues.length) throw new ConfigError(issues, 'training arguments');
  return { args, batchesPerEpoch };
}
