/**
 * Trainer checkpoints: `<outputDir>/checkpoint-<step>/` folders holding the adapter in PEFT format, the trainable
 * parameters and AdamW's moments as safetensors, and `trainer_state.json`. They are written atomically, checked
 * against the resuming run before anything is restored, and pruned to `saveTotalLimit`.
 */
import { syncDir } from '../io/atomic.js';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tf } from '../engine/tf.js';
import { TrainingError } from '../errors.js';
import { loadSafetensors, saveSafetensors, writeJsonAtomic } from '../io/index.js';
import type { AdamW } from './optimizer.js';
import type { SchedulerType } from './schedules.js';

/** Settings a resumed run must share with the checkpoint's run to continue to the same result. */
export type RunFingerprint = Record<string, number | string | boolean>;

/** What a checkpoint's `trainer_state.json` holds. */
export interface TrainerStateFile {
  version: 1;
  globalStep: number;
  maxSteps: number;
  epoch: number;
  /** Micro-batches consumed from the data stream (the data-order state, with `dataSeed`). */
  microBatches: number;
  optimizer: { stepCount: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
  scheduler: { type: SchedulerType; baseLr: number; warmupSteps: number; totalSteps: number; lastStep: number };
  rng: { seed: number; dataSeed: number; shuffle: boolean; generator: 'mulberry32' };
  /** Settings a resumed run must share with this one to continue to the same result. */
  fingerprint: RunFingerprint;
  /** The partial logging window, so a resumed run logs the same averages. */
  logWindow: { lossSum: number; steps: number };
  lossSum: number;
  lastEvalLoss: number | null;
}

export const TRAINER_STATE_NAME = 'trainer_state.json';
export const OPTIMIZER_NAME = 'optimizer.safetensors';
export const TRAINABLE_NAME = 'trainable_params.safetensors';

/** The tensors a checkpoint saves and restores: the trainable parameters (by name) and the optimizer. */
export interface CheckpointTensors {
  params: readonly (readonly [string, tf.Variable])[];
  optimizer: AdamW;
}

/**
 * Writes `<outputDir>/checkpoint-<state.globalStep>/`. Everything goes to a temporary sibling folder first, which
 * is renamed into place, so a crash never leaves a partial checkpoint under the final name. Returns the folder.
 */
export async function writeCheckpoint(
  outputDir: string,
  model: { savePretrained(dir: string): Promise<void> },
  tensors: CheckpointTensors,
  state: TrainerStateFile,
): Promise<string> {
  const name = `checkpoint-${state.globalStep}`;
  const final = join(outputDir, name);
  const tmp = join(outputDir, `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    await model.savePretrained(tmp);
    await saveSafetensors(join(tmp, TRAINABLE_NAME), new Map(tensors.params), { metadata: { format: 'pt' } });
    await saveSafetensors(join(tmp, OPTIMIZER_NAME), tensors.optimizer.stateTensors(), { metadata: { format: 'pt', step: String(tensors.optimizer.stepCount) } });
    await writeJsonAtomic(join(tmp, TRAINER_STATE_NAME), state);
    await syncDir(tmp);
    if (existsSync(final)) {
      const trash = `${tmp}.old`;
      await rename(final, trash);
      await rename(tmp, final);
      await rm(trash, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    await syncDir(outputDir);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  return final;
}

/**
 * Reads checkpoint `dir`, refuses it when its run differs from `fingerprint` (a resume would silently diverge),
 * restores the parameters and optimizer moments into `tensors`, and returns its trainer state. Shapes are all
 * checked before any parameter is assigned, so a bad checkpoint leaves the model untouched.
 */
export async function readCheckpoint(dir: string, tensors: CheckpointTensors, fingerprint: RunFingerprint): Promise<TrainerStateFile> {
  let state: TrainerStateFile;
  try {
    state = JSON.parse(await readFile(join(dir, TRAINER_STATE_NAME), 'utf8')) as TrainerStateFile;
  } catch (error) {
    throw new TrainingError(`${dir} is not a trainer checkpoint (cannot read ${TRAINER_STATE_NAME}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (state.version !== 1) throw new TrainingError(`${dir}: unsupported trainer_state version ${String(state.version)}.`);
  const diffs = Object.keys(fingerprint).filter((k) => state.fingerprint[k] !== fingerprint[k]).map((k) => `${k}: checkpoint ${String(state.fingerprint[k])}, now ${String(fingerprint[k])}`);
  if (diffs.length) throw new TrainingError(`Cannot resume from ${dir}: the run differs from the checkpoint's (${diffs.join('; ')}).`);
  const params = await loadSafetensors(join(dir, TRAINABLE_NAME));
  try {
    for (const [name, p] of tensors.params) {
      const t = params.get(name);
      if (!t) throw new TrainingError(`${dir}/${TRAINABLE_NAME} lacks the trainable parameter "${name}".`);
      if (t.shape.join(',') !== p.shape.join(',')) throw new TrainingError(`${dir}: "${name}" has shape [${t.shape.join(', ')}], the model [${p.shape.join(', ')}].`);
    }
    for (const [name, p] of tensors.params) p.assign(params.get(name)!);
  } finally {
    tf.dispose([...params.values()]);
  }
  const moments = await loadSafetensors(join(dir, OPTIMIZER_NAME));
  try {
    tensors.optimizer.loadState(moments, state.optimizer.stepCount);
  } finally {
    tf.dispose([...moments.values()]);
  }
  return state;
}

/** Deletes the oldest `checkpoint-*` folders of `dir` until at most `limit` remain. */
export async function pruneCheckpoints(dir: string, limit: number): Promise<void> {
  const steps = await checkpointSteps(dir);
  for (const step of steps.slice(0, Math.max(0, steps.length - limit))) {
    await rm(join(dir, `checkpoint-${step}`), { recursive: true, force: true });
  }
}

/** Steps of the `checkpoint-<step>` folders in `dir`, ascending. */
export async function checkpointSteps(dir: string): Promise<number[]> {
  if (!existsSync(dir)) return [];
  const names = await readdir(dir);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((x, y) => x - y);
}

/** The newest complete checkpoint folder in `dir`, if any. */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  const steps = await checkpointSteps(dir);
  const last = steps.at(-1);
  return last === undefined ? undefined : join(dir, `checkpoint-${last}`);
}
