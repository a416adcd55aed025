/**
 * A small Hugging Face-style `Trainer` for adapters: AdamW with decoupled weight decay, linear/cosine schedules
 * with warmup, gradient clipping by global norm, gradient accumulation (token-weighted, so the accumulated
 * gradient equals the big batch's), periodic evaluation, seeded shuffling, early stop on a target loss,
 * callbacks, metrics (JSONL and a progress bar), and atomic checkpoints that resume bit for bit.
 *
 * Determinism: the data order of epoch `e` is a Fisher–Yates shuffle seeded from (`dataSeed`, `e`), and dropout
 * masks are reseeded before every micro-batch from (`seed`, micro-batch index, module index), so a run resumed
 * from a checkpoint sees exactly the batches and masks the uninterrupted run saw.
 */
import { mkdir } from 'node:fs/promises';
import { tf } from '../engine/tf.js';
import { TrainingError } from '../errors.js';
import type { CausalLMInput } from '../models/outputs.js';
import { Dropout, mulberry32 } from '../nn/dropout.js';
import type { Module } from '../nn/module.js';
import type { ResolvedTrainingArguments, TrainingArguments } from './arguments.js';
import { resolveTrainingArguments } from './arguments.js';
import type { CheckpointTensors, RunFingerprint, TrainerStateFile } from './checkpoint.js';
import { latestCheckpoint, pruneCheckpoints, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import type { Batch, TrainExample } from './data.js';
import { collate, countLossTokens } from './data.js';
import type { MetricsRecord } from './metrics.js';
import { appendMetrics, round, startProgressBar, truncateMetrics } from './metrics.js';
import { AdamW, clipGradNorm, globalNorm } from './optimizer.js';
import type { LrLambda } from './schedules.js';
import { getScheduler } from './schedules.js';

/**
 * What the trainer trains: a module (its trainable parameters are what it updates) whose `forward` takes
 * `{ inputIds, attentionMask, labels }` and returns the mean loss, and that saves its adapter in PEFT's format.
 * `PeftModel` (LoRA, LoHa) over a causal LM and `XLoraModel` fit.
 */
export type TrainableModel = Module & {
  forward(input: CausalLMInput): { loss?: tf.Scalar };
  savePretrained(dir: string): Promise<void>;
};

export interface StepInfo {
  /** Optimizer steps done (1 after the first update). */
  step: number;
  maxSteps: number;
  /** Token-mean training loss of this step. */
  loss: number;
  /** Learning rate used for this step's update. */
  learningRate: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Non-padding input tokens of this step. */
  tokens: number;
  /** Fractional epoch reached. */
  epoch: number;
}

export type StopReason = 'max_steps' | 'target_loss' | 'callback';

export interface TrainResult {
  globalStep: number;
  /** Mean training loss over the steps this call ran. */
  trainLoss: number;
  /** The last evaluation's loss, if any. */
  evalLoss?: number;
  stopReason: StopReason;
  elapsedSeconds: number;
}

/** A callback may return 'stop' to end training after the current step. */
type CallbackResult = void | 'stop' | Promise<void | 'stop'>;

export interface TrainerCallbacks {
  onStep?(info: StepInfo): CallbackResult;
  onLog?(record: MetricsRecord): CallbackResult;
  onEvaluate?(info: { step: number; evalLoss: number }): CallbackResult;
  onSave?(info: { step: number; dir: string }): CallbackResult;
  onEnd?(result: TrainResult): void | Promise<void>;
}

export interface TrainerInit {
  model: TrainableModel;
  args: TrainingArguments;
  trainDataset: readonly TrainExample[];
  evalDataset?: readonly TrainExample[];
  /** Padding id for batches (default 0: padding is masked out and carries label -100, so its value is moot). */
  padTokenId?: number;
  callbacks?: TrainerCallbacks | readonly TrainerCallbacks[];
}

/** Mixes integers into a 32-bit seed (murmur3's finalizer over a running hash). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** The data order of one epoch: a seeded Fisher–Yates shuffle of 0..n-1 (identity without shuffling). */
export function epochOrder(n: number, dataSeed: number, epoch: number, shuffle = true): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (!shuffle) return order;
  const random = mulberry32(mixSeed(dataSeed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Number of loss tokens of a batch (labels are shifted: position 0 never counts). */
function lossTokens(batch: Batch): number {
  return batch.labels.reduce((n, row) => n + countLossTokens(row), 0);
}

export class Trainer {
  readonly model: TrainableModel;
  readonly args: Readonly<ResolvedTrainingArguments>;
  readonly trainDataset: readonly TrainExample[];
  readonly evalDataset: readonly TrainExample[] | undefined;
  readonly optimizer: AdamW;
  readonly lrLambda: LrLambda;
  /** Optimizer steps done. */
  globalStep = 0;
  private microBatches = 0;
  private readonly padTokenId: number;
  private readonly callbacks: readonly TrainerCallbacks[];
  private readonly params: [string, tf.Variable][];
  private readonly varToParam: Map<string, string>;
  private readonly dropouts: Dropout[];
  private readonly batchesPerEpoch: number;
  private readonly orders = new Map<number, number[]>();
  private logWindow = { lossSum: 0, steps: 0 };
  private lossSum = 0;
  private lastEvalLoss: number | undefined;
  private lastEvalStep = -1;
  private readonly resumeFrom: string | boolean | undefined;

  constructor(init: TrainerInit) {
    this.model = init.model;
    this.trainDataset = init.trainDataset;
    this.evalDataset = init.evalDataset;
    this.padTokenId = init.padTokenId ?? 0;
    this.callbacks = init.callbacks === undefined ? [] : Array.isArray(init.callbacks) ? [...(init.callbacks as readonly TrainerCallbacks[])] : [init.callbacks as TrainerCallbacks];
    if (this.trainDataset.length === 0) throw new TrainingError('The training dataset is empty.');
    this.resumeFrom = init.args.resumeFromCheckpoint;
    const resolved = resolveTrainingArguments(init.args, this.trainDataset.length, this.evalDataset?.length ?? 0);
    this.args = resolved.args;
    this.batchesPerEpoch = resolved.batchesPerEpoch;
    this.lrLambda = getScheduler(this.args.lrSchedulerType, this.args.warmupSteps, this.args.maxSteps);
    this.params = [...this.model.namedParameters()].filter(([, p]) => p.trainable);
    this.varToParam = new Map(this.params.map(([name, p]) => [p.name, name]));
    this.dropouts = this.model.modules().filter((m): m is Dropout => m instanceof Dropout && m.p > 0);
    this.optimizer = new AdamW(this.params, {
      lr: this.args.learningRate,
      beta1: this.args.adamBeta1,
      beta2: this.args.adamBeta2,
      eps: this.args.adamEpsilon,
      weightDecay: this.args.weightDecay,
    });
  }

  /** Trainable parameters by name, in model order (the model's own variables). */
  get trainableParameters(): ReadonlyMap<string, tf.Variable> {
    return new Map(this.params);
  }

  /** The learning rate of the update at optimizer step `step` (0-based). */
  learningRateAt(step: number): number {
    return this.args.learningRate * this.lrLambda(step);
  }

  private order(epoch: number): number[] {
    let order = this.orders.get(epoch);
    if (!order) {
      order = epochOrder(this.trainDataset.length, this.args.dataSeed, epoch, this.args.shuffle);
      this.orders.clear();
      this.orders.set(epoch, order);
    }
    return order;
  }

  /** Micro-batch `k` of the data stream (epoch after epoch, each in its own seeded order). */
  microBatch(k: number): Batch {
    const epoch = Math.floor(k / this.batchesPerEpoch);
    const b = k % this.batchesPerEpoch;
    const order = this.order(epoch);
    const picked = order.slice(b * this.args.batchSize, (b + 1) * this.args.batchSize).map((i) => this.trainDataset[i]!);
    return collate(picked, this.padTokenId);
  }

  private toInput(batch: Batch): { inputIds: tf.Tensor2D; attentionMask: tf.Tensor2D; labels: tf.Tensor2D } {
    return {
      inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'),
      attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'),
      labels: tf.tensor2d(batch.labels, undefined, 'int32'),
    };
  }

  /**
   * Gradients of the token-mean loss over all `batches` together: each micro-batch's mean loss is weighted by
   * its share of the loss tokens, so the sum equals the loss (and gradient) of one batch holding them all. The
   * caller frees `grads`. `dropoutSeeds` (one per batch) reseeds dropout before each micro-batch.
   */
  computeGradients(batches: readonly Batch[], dropoutSeeds?: readonly number[]): { grads: Map<string, tf.Tensor>; loss: number; lossTokens: number; inputTokens: number } {
    const counts = batches.map(lossTokens);
    const total = counts.reduce((s, n) => s + n, 0);
    const inputTokens = batches.reduce((s, b) => s + b.attentionMask.reduce((t, row) => t + row.reduce((u, x) => u + x, 0), 0), 0);
    const grads = new Map<string, tf.Tensor>();
    let loss = 0;
    const vars = this.params.map(([, p]) => p);
    for (const [i, batch] of batches.entries()) {
      if (counts[i] === 0) continue;
      const seed = dropoutSeeds?.[i];
      if (seed !== undefined) for (const [d, dropout] of this.dropouts.entries()) dropout.reseed(mixSeed(seed, d));
      const input = this.toInput(batch);
      const weight = counts[i]! / total;
      try {
        const { value, grads: g } = tf.variableGrads(() => {
          const out = this.model.forward(input);
          if (!out.loss) throw new TrainingError('The model returned no loss: its forward must compute one from `labels`.');
          return weight === 1 ? out.loss : tf.mul(out.loss, tf.scalar(weight));
        }, vars);
        loss += value.dataSync()[0]!;
        value.dispose();
        for (const [varName, grad] of Object.entries(g)) {
          const name = this.varToParam.get(varName)!;
          const prev = grads.get(name);
          if (prev) {
            grads.set(name, tf.add(prev, grad));
            prev.dispose();
            grad.dispose();
          } else {
            grads.set(name, grad);
          }
        }
      } finally {
        tf.dispose([input.inputIds, input.attentionMask, input.labels]);
      }
    }
    return { grads, loss: total === 0 ? Number.NaN : loss, lossTokens: total, inputTokens };
  }

  /** One optimizer step over the next `gradientAccumulationSteps` micro-batches. */
  private trainStep(): StepInfo {
    const ga = this.args.gradientAccumulationSteps;
    const batches: Batch[] = [];
    const seeds: number[] = [];
    for (let j = 0; j < ga; j++) {
      batches.push(this.microBatch(this.microBatches + j));
      seeds.push(mixSeed(this.args.seed, this.microBatches + j));
    }
    const { grads, loss, inputTokens } = this.computeGradients(batches, seeds);
    let gradNorm: number;
    let used = grads;
    if (this.args.maxGradNorm > 0) {
      const clipped = clipGradNorm(grads, this.args.maxGradNorm);
      gradNorm = clipped.totalNorm;
      used = clipped.grads;
    } else {
      gradNorm = globalNorm(grads);
    }
    const lr = this.learningRateAt(this.globalStep);
    try {
      if (used.size) this.optimizer.step(used, lr);
    } finally {
      tf.dispose([...grads.values()]);
      if (used !== grads) tf.dispose([...used.values()]);
    }
    this.microBatches += ga;
    this.globalStep += 1;
    return {
      step: this.globalStep,
      maxSteps: this.args.maxSteps,
      loss,
      learningRate: lr,
      gradNorm,
      tokens: inputTokens,
      epoch: this.microBatches / this.batchesPerEpoch,
    };
  }

  /** Token-mean loss of `dataset` (default: the eval dataset) in eval mode, without gradients. */
  evaluate(dataset: readonly TrainExample[] | undefined = this.evalDataset): number {
    if (!dataset?.length) throw new TrainingError('evaluate() needs an eval dataset.');
    const wasTraining = this.model.training;
    this.model.eval();
    let sum = 0;
    let count = 0;
    try {
      for (let i = 0; i < dataset.length; i += this.args.evalBatchSize) {
        const batch = collate(dataset.slice(i, i + this.args.evalBatchSize), this.padTokenId);
        const n = lossTokens(batch);
        if (n === 0) continue;
        const value = tf.tidy(() => {
          const out = this.model.forward(this.toInput(batch));
          if (!out.loss) throw new TrainingError('The model returned no loss: its forward must compute one from `labels`.');
          return out.loss;
        });
        sum += value.dataSync()[0]! * n;
        value.dispose();
        count += n;
      }
    } finally {
      this.model.train(wasTraining);
    }
    return count === 0 ? Number.NaN : sum / count;
  }

  /** Runs training to `maxSteps` (or an early stop), resuming first when asked. */
  async train(options: { resumeFromCheckpoint?: string | boolean } = {}): Promise<TrainResult> {
    const a = this.args;
    if (this.params.length === 0) throw new TrainingError('The model has no trainable parameters (load adapters with isTrainable: true).');
    await mkdir(a.outputDir, { recursive: true });
    const resume = options.resumeFromCheckpoint ?? this.resumeFrom;
    if (resume) {
      const dir = resume === true ? await latestCheckpoint(a.outputDir) : resume;
      if (!dir) throw new TrainingError(`resumeFromCheckpoint: true, but ${a.outputDir} has no checkpoint-* folder.`);
      await this.loadCheckpoint(dir);
      await truncateMetrics(a.outputDir, this.globalStep);
    }
    this.model.train();
    const started = performance.now();
    const startStep = this.globalStep;
    let windowStart = started;
    let windowTokens = 0;
    let runLoss = 0;
    let stopReason: StopReason = 'max_steps';
    const bar = a.progressBar ? startProgressBar(a.maxSteps, this.globalStep) : undefined;
    const elapsed = () => (performance.now() - started) / 1000;
    const remaining = () => {
      const done = this.globalStep - startStep;
      return done > 0 ? (elapsed() / done) * (a.maxSteps - this.globalStep) : undefined;
    };
    try {
      while (this.globalStep < a.maxSteps) {
        const info = this.trainStep();
        this.lossSum += info.loss;
        runLoss += info.loss;
        this.logWindow.lossSum += info.loss;
        this.logWindow.steps += 1;
        windowTokens += info.tokens;
        let stop = await this.emit((c) => c.onStep?.(info));
        const step = this.globalStep;
        if (step % a.loggingSteps === 0 || step === a.maxSteps) {
          const now = performance.now();
          const meanLoss = this.logWindow.lossSum / this.logWindow.steps;
          const record: MetricsRecord = {
            step,
            epoch: round(info.epoch, 4),
            loss: meanLoss,
            learningRate: info.learningRate,
            gradNorm: info.gradNorm,
            tokensPerSecond: Math.round(windowTokens / Math.max(1e-9, (now - windowStart) / 1000)),
            elapsedSeconds: round(elapsed(), 3),
            remainingSeconds: round(remaining() ?? 0, 3),
          };
          this.logWindow = { lossSum: 0, steps: 0 };
          windowStart = now;
          windowTokens = 0;
          await appendMetrics(this.args.outputDir, record);
          bar?.update(step, { loss: meanLoss.toFixed(4), lr: info.learningRate.toExponential(2), tps: record.tokensPerSecond });
          stop = (await this.emit((c) => c.onLog?.(record))) || stop;
          if (a.targetLoss !== undefined && a.targetLossOn === 'train' && meanLoss <= a.targetLoss) {
            stopReason = 'target_loss';
          }
        } else {
          bar?.update(step);
        }
        if (a.evalSteps && step % a.evalSteps === 0) {
          if (await this.runEvaluation(elapsed())) stopReason = 'target_loss';
        }
        if (a.saveSteps && step % a.saveSteps === 0) await this.saveCheckpoint();
        if (stop && stopReason === 'max_steps') stopReason = 'callback';
        if (stopReason !== 'max_steps') break;
      }
      if (this.evalDataset?.length && this.lastEvalStep !== this.globalStep) await this.runEvaluation(elapsed());
      if (a.saveFinalAdapter) await this.model.savePretrained(a.outputDir);
    } finally {
      bar?.stop();
    }
    const ran = this.globalStep - startStep;
    const result: TrainResult = {
      globalStep: this.globalStep,
      trainLoss: ran > 0 ? runLoss / ran : Number.NaN,
      stopReason,
      elapsedSeconds: elapsed(),
      ...(this.lastEvalLoss === undefined ? {} : { evalLoss: this.lastEvalLoss }),
    };
    for (const c of this.callbacks) await c.onEnd?.(result);
    return result;
  }

  /** Evaluates, logs, calls back; true when the eval loss reached the target. */
  private async runEvaluation(elapsedSeconds: number): Promise<boolean> {
    const evalLoss = this.evaluate();
    this.lastEvalLoss = evalLoss;
    this.lastEvalStep = this.globalStep;
    const record: MetricsRecord = { step: this.globalStep, epoch: round(this.microBatches / this.batchesPerEpoch, 4), evalLoss, elapsedSeconds: round(elapsedSeconds, 3) };
    await appendMetrics(this.args.outputDir, record);
    await this.emit((c) => c.onEvaluate?.({ step: this.globalStep, evalLoss }));
    return this.args.targetLoss !== undefined && this.args.targetLossOn === 'eval' && evalLoss <= this.args.targetLoss;
  }

  private async emit(call: (c: TrainerCallbacks) => CallbackResult): Promise<boolean> {
    let stop = false;
    for (const c of this.callbacks) if ((await call(c)) === 'stop') stop = true;
    return stop;
  }

  private fingerprint(): RunFingerprint {
    const a = this.args;
    return {
      trainExamples: this.trainDataset.length,
      perDeviceTrainBatchSize: a.batchSize,
      gradientAccumulationSteps: a.gradientAccumulationSteps,
      maxSteps: a.maxSteps,
      learningRate: a.learningRate,
      lrSchedulerType: a.lrSchedulerType,
      warmupSteps: a.warmupSteps,
      seed: a.seed,
      dataSeed: a.dataSeed,
      shuffle: a.shuffle,
      trainableParameters: this.params.length,
    };
  }

  /** The state a checkpoint records (see `TrainerStateFile`). */
  stateFile(): TrainerStateFile {
    const a = this.args;
    return {
      version: 1,
      globalStep: this.globalStep,
      maxSteps: a.maxSteps,
      epoch: this.microBatches / this.batchesPerEpoch,
      microBatches: this.microBatches,
      optimizer: { stepCount: this.optimizer.stepCount, lr: a.learningRate, beta1: a.adamBeta1, beta2: a.adamBeta2, eps: a.adamEpsilon, weightDecay: a.weightDecay },
      scheduler: { type: a.lrSchedulerType, baseLr: a.learningRate, warmupSteps: a.warmupSteps, totalSteps: a.maxSteps, lastStep: this.globalStep },
      rng: { seed: a.seed, dataSeed: a.dataSeed, shuffle: a.shuffle, generator: 'mulberry32' },
      fingerprint: this.fingerprint(),
      logWindow: { ...this.logWindow },
      lossSum: this.lossSum,
      lastEvalLoss: this.lastEvalLoss ?? null,
    };
  }

  /**
   * Writes `<outputDir>/checkpoint-<step>/` atomically (see `writeCheckpoint`), prunes old checkpoints to
   * `saveTotalLimit`, and calls `onSave`.
   */
  async saveCheckpoint(): Promise<string> {
    const dir = await writeCheckpoint(this.args.outputDir, this.model, this.checkpointTensors(), this.stateFile());
    if (this.args.saveTotalLimit) await pruneCheckpoints(this.args.outputDir, this.args.saveTotalLimit);
    await this.emit((c) => c.onSave?.({ step: this.globalStep, dir }));
    return dir;
  }

  /** Restores parameters, optimizer, schedule position and data order from a checkpoint folder. */
  async loadCheckpoint(dir: string): Promise<void> {
    const state = await readCheckpoint(dir, this.checkpointTensors(), this.fingerprint());
    this.globalStep = state.globalStep;
    this.microBatches = state.microBatches;
    this.logWindow = { ...state.logWindow };
    this.lossSum = state.lossSum;
    this.lastEvalLoss = state.lastEvalLoss ?? undefined;
  }

  private checkpointTensors(): CheckpointTensors {
    return { params: this.params, optimizer: this.optimizer };
  }

  /** Frees the optimizer's state (the model stays the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
