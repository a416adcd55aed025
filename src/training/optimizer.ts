/**
 * AdamW with decoupled weight decay, step for step PyTorch's `torch.optim.AdamW` (single-tensor path), and
 * `clip_grad_norm_`. TF.js's `tf.train.adam` has no decoupled decay, hence this optimizer: its moments are
 * plain variables keyed by parameter name, so they can be saved and restored bit for bit.
 */
import { tf } from '../engine/tf.js';
import { ConfigError, TrainingError } from '../errors.js';

export interface AdamWOptions {
  /** Base learning rate (default 1e-3, as PyTorch); `step` may pass the scheduled one. */
  lr?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (default 0.01, as PyTorch): `p -= lr * weightDecay * p` before the Adam update. */
  weightDecay?: number;
}

/** Optimizer-state tensor names in a checkpoint: PyTorch's state keys, then the parameter name. */
export const EXP_AVG_PREFIX = 'exp_avg.';
export const EXP_AVG_SQ_PREFIX = 'exp_avg_sq.';

interface Moments {
  readonly m: tf.Variable;
  readonly v: tf.Variable;
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Updates done so far (PyTorch's per-parameter `step`; all parameters step together here). */
  stepCount = 0;
  private readonly params: ReadonlyMap<string, tf.Variable>;
  private readonly moments = new Map<string, Moments>();

  constructor(params: Iterable<readonly [string, tf.Variable]>, options: AdamWOptions = {}) {
    this.params = new Map(params);
    this.lr = options.lr ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    const issues: { code: 'invalid_value'; path: string[]; message: string }[] = [];
    if (!(this.lr >= 0)) issues.push({ code: 'invalid_value', path: ['lr'], message: `Invalid learning rate: ${this.lr}` });
    if (!(this.eps >= 0)) issues.push({ code: 'invalid_value', path: ['eps'], message: `Invalid epsilon value: ${this.eps}` });
    if (!(this.beta1 >= 0 && this.beta1 < 1)) issues.push({ code: 'invalid_value', path: ['beta1'], message: `Invalid beta parameter at index 0: ${this.beta1}` });
    if (!(this.beta2 >= 0 && this.beta2 < 1)) issues.push({ code: 'invalid_value', path: ['beta2'], message: `Invalid beta parameter at index 1: ${this.beta2}` });
    if (!(this.weightDecay >= 0)) issues.push({ code: 'invalid_value', path: ['weightDecay'], message: `Invalid weight_decay value: ${this.weightDecay}` });
    if (issues.length) throw new ConfigError(issues, 'AdamW options');
  }

  /**
   * One update with `grads` (by parameter name; the caller keeps ownership). Parameters without a gradient are
   * skipped, as PyTorch skips those whose `.grad` is None.
   */
  step(grads: ReadonlyMap<string, tf.Tensor>, lr = this.lr): void {
    for (const name of grads.keys()) {
      if (!this.params.has(name)) throw new TrainingError(`AdamW got a gradient for "${name}", which is not one of its parameters.`);
    }
    this.stepCount += 1;
    const t = this.stepCount;
    const biasCorrection1 = 1 - this.beta1 ** t;
    const biasCorrection2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    const stepSize = lr / biasCorrection1;
    const decay = 1 - lr * this.weightDecay;
    for (const [name, param] of this.params) {
      const grad = grads.get(name);
      if (!grad) continue;
      const state = this.momentsOf(name, param);
      tf.tidy(() => {
        const g = grad.dtype === 'float32' ? grad : tf.cast(grad, 'float32');
        const p = this.weightDecay !== 0 ? tf.mul(param, tf.scalar(decay)) : param;
        // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        const m = tf.add(state.m, tf.mul(tf.sub(g, state.m), tf.scalar(1 - this.beta1)));
        const v = tf.add(tf.mul(state.v, tf.scalar(this.beta2)), tf.mul(tf.mul(g, g), tf.scalar(1 - this.beta2)));
        const denom = tf.add(tf.div(tf.sqrt(v), tf.scalar(biasCorrection2Sqrt)), tf.scalar(this.eps));
        const updated = tf.sub(p, tf.mul(tf.div(m, denom), tf.scalar(stepSize)));
        state.m.assign(m);
        state.v.assign(v);
        param.assign(updated);
      });
    }
  }

  private momentsOf(name: string, param: tf.Variable): Moments {
    let state = this.moments.get(name);
    if (!state) {
      const zeros = tf.zerosLike(param);
      // A variable keeps its own reference to the data, so the initial tensor can go.
      state = { m: tf.variable(zeros, false), v: tf.variable(zeros, false) };
      zeros.dispose();
      this.moments.set(name, state);
    }
    return state;
  }

  /** The moments as `exp_avg.<name>` / `exp_avg_sq.<name>` (the optimizer's own tensors: do not dispose). */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, { m, v }] of this.moments) {
      out.set(EXP_AVG_PREFIX + name, m);
      out.set(EXP_AVG_SQ_PREFIX + name, v);
    }
    return out;
  }

  /** Restores moments saved by `stateTensors` and the step count (values are copied; the caller keeps `tensors`). */
  loadState(tensors: ReadonlyMap<string, tf.Tensor>, stepCount: number): void {
    const loaded = new Map<string, { m?: tf.Tensor; v?: tf.Tensor }>();
    for (const [key, tensor] of tensors) {
      const isM = key.startsWith(EXP_AVG_PREFIX);
      const isV = key.startsWith(EXP_AVG_SQ_PREFIX);
      const name = isM ? key.slice(EXP_AVG_PREFIX.length) : isV ? key.slice(EXP_AVG_SQ_PREFIX.length) : undefined;
      const param = name === undefined ? undefined : this.params.get(name);
      if (name === undefined || !param) throw new TrainingError(`Optimizer state has "${key}", which matches no trainable parameter of this model.`);
      if (tensor.shape.join(',') !== param.shape.join(',')) {
        throw new TrainingError(`Optimizer state "${key}" has shape [${tensor.shape.join(', ')}], the parameter [${param.shape.join(', ')}].`);
      }
      const entry = loaded.get(name) ?? {};
      if (isM) entry.m = tensor;
      else entry.v = tensor;
      loaded.set(name, entry);
    }
    for (const [name, entry] of loaded) {
      if (!entry.m || !entry.v) throw new TrainingError(`Optimizer state for "${name}" lacks ${entry.m ? EXP_AVG_SQ_PREFIX : EXP_AVG_PREFIX}${name}.`);
    }
    this.disposeMoments();
    for (const [name, entry] of loaded) {
      const state = this.momentsOf(name, this.params.get(name)!);
      state.m.assign(tf.cast(entry.m!, 'float32'));
      state.v.assign(tf.cast(entry.v!, 'float32'));
    }
    this.stepCount = stepCount;
  }

  private disposeMoments(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
  }

  dispose(): void {
    this.disposeMoments();
  }
}

/**
 * `torch.nn.utils.clip_grad_norm_` (L2): the global norm of all gradients; when it exceeds `maxNorm` every
 * gradient is scaled by `maxNorm / (norm + 1e-6)`. Returns new gradient tensors (the caller frees both maps)
 * and the norm before clipping.
 */
export function clipGradNorm(grads: ReadonlyMap<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; totalNorm: number } {
  if (grads.size === 0) return { grads: new Map(), totalNorm: 0 };
  const entries = [...grads];
  const [total, clipped] = tf.tidy(() => {
    const norms = entries.map(([, g]) => tf.norm(g));
    const totalNorm = tf.norm(tf.stack(norms)) as tf.Scalar;
    const coef = tf.minimum(tf.div(tf.scalar(maxNorm), tf.add(totalNorm, tf.scalar(1e-6))), tf.scalar(1));
    return [totalNorm, entries.map(([, g]) => tf.mul(g, coef))] as const;
  });
  const totalNorm = total.dataSync()[0]!;
  total.dispose();
  return { grads: new Map(entries.map(([name], i) => [name, clipped[i]!])), totalNorm };
}

/** The global L2 norm of `grads`, without clipping. */
export function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): number {
  if (grads.size === 0) return 0;
  const total = tf.tidy(() => tf.norm(tf.stack([...grads.values()].map((g) => tf.norm(g)))));
  const value = total.dataSync()[0]!;
  total.dispose();
  return value;
}
