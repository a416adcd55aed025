/**
 * Learning-rate schedules as transformers' `get_*_schedule_with_warmup`: each is a multiplier of the base
 * learning rate as a function of the optimizer step (0 for the first update, as `LambdaLR` does), so with
 * warmup the very first update uses a learning rate of 0, exactly as the Hugging Face Trainer.
 */
import { ConfigError } from '../errors.js';

/** Multiplier of the base learning rate at optimizer step `step` (0-based). */
export type LrLambda = (step: number) => number;

export type SchedulerType = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';

function check(name: string, value: number, min = 0): void {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError([{ code: 'invalid_value', path: [name], message: `must be an integer >= ${min}, got ${value}` }], 'learning-rate schedule');
  }
}

/** `get_constant_schedule`. */
export function constantSchedule(): LrLambda {
  return () => 1;
}

/** `get_constant_schedule_with_warmup`: linear ramp from 0 over `numWarmupSteps`, then 1. */
export function constantScheduleWithWarmup(numWarmupSteps: number): LrLambda {
  check('numWarmupSteps', numWarmupSteps);
  return (step) => (step < numWarmupSteps ? step / Math.max(1, numWarmupSteps) : 1);
}

/** `get_linear_schedule_with_warmup`: ramp from 0 to 1 over the warmup, then linear decay to 0 at `numTrainingSteps`. */
export function linearScheduleWithWarmup(numWarmupSteps: number, numTrainingSteps: number): LrLambda {
  check('numWarmupSteps', numWarmupSteps);
  check('numTrainingSteps', numTrainingSteps, 1);
  return (step) => {
    if (step < numWarmupSteps) return step / Math.max(1, numWarmupSteps);
    return Math.max(0, (numTrainingSteps - step) / Math.max(1, numTrainingSteps - numWarmupSteps));
  };
}

/**
 * `get_cosine_schedule_with_warmup`: ramp from 0 to 1 over the warmup, then a cosine from 1 down to 0 over
 * `numCycles` (default 0.5: half a period, one smooth decay) periods.
 */
export function cosineScheduleWithWarmup(numWarmupSteps: number, numTrainingSteps: number, numCycles = 0.5): LrLambda {
  check('numWarmupSteps', numWarmupSteps);
  check('numTrainingSteps', numTrainingSteps, 1);
  return (step) => {
    if (step < numWarmupSteps) return step / Math.max(1, numWarmupSteps);
    const progress = (step - numWarmupSteps) / Math.max(1, numTrainingSteps - numWarmupSteps);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}

/** transformers' `get_scheduler` for the supported names. */
export function getScheduler(type: SchedulerType, numWarmupSteps: number, numTrainingSteps: number): LrLambda {
  switch (type) {
    case 'linear':
      return linearScheduleWithWarmup(numWarmupSteps, numTrainingSteps);
    case 'cosine':
      return cosineScheduleWithWarmup(numWarmupSteps, numTrainingSteps);
    case 'constant':
      return constantSchedule();
    case 'constant_with_warmup':
      return constantScheduleWithWarmup(numWarmupSteps);
    default:
      throw new ConfigError([{ code: 'invalid_value', path: ['lrSchedulerType'], message: `unknown scheduler "${String(type)}"; use linear, cosine, constant or constant_with_warmup` }], 'learning-rate schedule');
  }
}
