/**
 * Pieces shared by the encoder architectures (BERT, DistilBERT, CLIP text): the classification fields of
 * `PreTrainedConfig`, transformers' sequence-classification loss, and the default `_init_weights`.
 */
import { tf } from '../engine/tf.js';
import { normal } from '../nn/init.js';
import { ShapeError } from '../errors.js';
import { Embedding, LayerNorm, Linear } from '../nn/index.js';
import type { Module } from '../nn/index.js';
import type { ConfigReader, RawConfig } from './config-fields.js';
import { idsTensor } from './inputs.js';
import { crossEntropy } from './loss.js';
import type { IdsInput } from './outputs.js';
import type { ClassificationLabels } from './pretrained.js';

export type ProblemType = 'regression' | 'single_label_classification' | 'multi_label_classification';

const PROBLEM_TYPES: readonly ProblemType[] = ['regression', 'single_label_classification', 'multi_label_classification'];

/** The label fields transformers' `PreTrainedConfig` gives every config. */
export interface ClassificationConfig {
  /** `len(id2label)` when the config has one, else `num_labels`, else 2 (transformers' default). */
  readonly numLabels: number;
  readonly id2label: Readonly<Record<number, string>>;
  readonly label2id: Readonly<Record<string, number>>;
  /** How the loss is chosen; `undefined` lets the labels' dtype and `numLabels` decide (as transformers does). */
  readonly problemType: ProblemType | undefined;
}

/** Reads `id2label` / `label2id` / `num_labels` / `problem_type` with transformers' defaults and checks. */
export function readClassificationConfig(r: ConfigReader, raw: RawConfig): ClassificationConfig {
  let id2label: Record<number, string> | undefined;
  const rawId2label = raw['id2label'];
  if (rawId2label !== undefined && rawId2label !== null) {
    const ok =
      typeof rawId2label === 'object' &&
      !Array.isArray(rawId2label) &&
      Object.entries(rawId2label).every(([k, v]) => /^\d+$/.test(k) && typeof v === 'string');
    r.check(ok, 'id2label', 'must map label ids ("0", "1", ...) to label names');
    if (ok) {
      id2label = {};
      for (const [k, v] of Object.entries(rawId2label as Record<string, string>)) id2label[Number(k)] = v;
    }
  }
  let numLabels: number;
  if (id2label) {
    numLabels = Object.keys(id2label).length;
    r.check(numLabels > 0, 'id2label', 'must name at least one label');
  } else {
    numLabels = r.size('num_labels', 2);
    id2label = Object.fromEntries(Array.from({ length: numLabels }, (_, i) => [i, `LABEL_${i}`]));
  }
  let label2id: Record<string, number>;
  const rawLabel2id = raw['label2id'];
  if (typeof rawLabel2id === 'object' && rawLabel2id !== null && !Array.isArray(rawLabel2id)) {
    label2id = { ...(rawLabel2id as Record<string, number>) };
  } else {
    label2id = Object.fromEntries(Object.entries(id2label).map(([id, name]) => [name, Number(id)]));
  }
  const rawProblem = raw['problem_type'];
  let problemType: ProblemType | undefined;
  if (rawProblem !== undefined && rawProblem !== null) {
    const ok = typeof rawProblem === 'string' && (PROBLEM_TYPES as readonly string[]).includes(rawProblem);
    r.check(ok, 'problem_type', `must be one of ${PROBLEM_TYPES.join(', ')}, got ${JSON.stringify(rawProblem)}`);
    if (ok) problemType = rawProblem as ProblemType;
  }
  r.check(
    !(problemType === 'single_label_classification' && numLabels === 1),
    'problem_type',
    '"single_label_classification" requires num_labels > 1; use num_labels 2 for binary classification or "regression"',
  );
  return { numLabels, id2label, label2id, problemType };
}

/**
 * transformers' loss of `*ForSequenceClassification`: with no `problemType`, 1 label means regression, integer
 * labels mean single-label classification, float labels multi-label classification; then MSE, cross-entropy
 * (ignoring -100) or BCE-with-logits, each a mean. Call inside `tf.tidy`.
 */
export function sequenceClassificationLoss(
  logits: tf.Tensor2D,
  labels: ClassificationLabels,
  problemType: ProblemType | undefined,
): tf.Scalar {
  const [batch, numLabels] = logits.shape;
  const { tensor, integer } = labelsTensor(labels);
  const problem = problemType ?? (numLabels === 1 ? 'regression' : integer ? 'single_label_classification' : 'multi_label_classification');
  const target = tf.cast(tensor, 'float32');
  if (problem === 'regression') {
    if (numLabels === 1) {
      // logits.squeeze() vs labels.squeeze(): one value per row.
      if (target.size !== batch) throw new ShapeError(`regression labels must hold ${batch} values (one per row), got shape [${tensor.shape.join(', ')}].`);
      return tf.mean(tf.square(tf.sub(logits.reshape([batch]), target.reshape([batch])))) as tf.Scalar;
    }
    assertSameShape(target, logits, 'regression');
    return tf.mean(tf.square(tf.sub(logits, target))) as tf.Scalar;
  }
  if (problem === 'single_label_classification') {
    if (tensor.size !== batch) {
      throw new ShapeError(`single-label classification labels must hold ${batch} class ids (one per row), got shape [${tensor.shape.join(', ')}].`);
    }
    return crossEntropy(logits, tf.cast(tensor.reshape([batch]), 'int32') as tf.Tensor1D);
  }
  assertSameShape(target, logits, 'multi-label classification');
  // BCEWithLogitsLoss: max(x, 0) - x y + log(1 + exp(-|x|)), mean over all elements.
  const perElement = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, target)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
  return tf.mean(perElement) as tf.Scalar;
}

function labelsTensor(labels: ClassificationLabels): { tensor: tf.Tensor; integer: boolean } {
  if (labels instanceof tf.Tensor) return { tensor: labels, integer: labels.dtype === 'int32' || labels.dtype === 'bool' };
  if (!Array.isArray(labels) || labels.length === 0) throw new ShapeError('labels must be a non-empty number[] / number[][] or a tensor.');
  if (labels.every((v) => typeof v === 'number')) return { tensor: tf.tensor1d(labels as number[], 'float32'), integer: true };
  if (!labels.every(Array.isArray)) throw new ShapeError('labels must be a number[] (one per row) or a number[][] (one row of numLabels values per row).');
  const rows = labels as number[][];
  const width = rows[0]!.length;
  if (rows.some((row) => row.length !== width)) throw new ShapeError('labels rows have different lengths.');
  return { tensor: tf.tensor2d(rows, [rows.length, width], 'float32'), integer: false };
}

function assertSameShape(target: tf.Tensor, logits: tf.Tensor2D, what: string): void {
  if (target.shape.join() !== logits.shape.join()) {
    throw new ShapeError(`${what} labels must have the logits' shape [${logits.shape.join(', ')}], got [${target.shape.join(', ')}].`);
  }
}

/**
 * transformers' default `PreTrainedModel._init_weights` over every module of `root`: Linear weights N(0, std²)
 * and zero biases, Embedding weights N(0, std²) with the padding row zeroed, LayerNorm ones and zeros.
 * `stdFor` overrides the std of a Linear/Embedding weight by module path (architectures' own `_init_weights`).
 * With a seed, draws use seed, seed + 1, ... in module order.
 */
export function initWeightsLikeTransformers(
  root: Module,
  std: number,
  seed: number | undefined,
  stdFor: (path: string) => number | undefined = () => undefined,
): void {
  let next = seed;
  const drawInto = (param: tf.Variable, scale: number, paddingIdx: number | null = null) => {
    const value = tf.tidy(() => {
      const drawn = normal(param.shape, 0, scale, next === undefined ? {} : { seed: next++ });
      if (paddingIdx === null) return drawn;
      const rows = param.shape[0]!;
      const isPad = tf.reshape(tf.equal(tf.range(0, rows, 1, 'int32'), paddingIdx), [rows, 1]);
      return tf.where(tf.broadcastTo(isPad, param.shape), tf.zerosLike(drawn), drawn);
    });
    param.assign(value);
    value.dispose();
  };
  const fill = (param: tf.Variable | null, value: number) => {
    if (!param) return;
    const t = tf.fill(param.shape, value);
    param.assign(t);
    t.dispose();
  };
  for (const [path, module] of root.namedModules()) {
    if (module instanceof Linear) {
      drawInto(module.weight, stdFor(path) ?? std);
      fill(module.bias, 0);
    } else if (module instanceof Embedding) {
      drawInto(module.weight, stdFor(path) ?? std, module.paddingIdx);
    } else if (module instanceof LayerNorm) {
      fill(module.weight, 1);
      fill(module.bias, 0);
    }
  }
}

/** `[batch, seq]` position ids 0..seq-1 (the rows of transformers' `position_ids` buffer). Call inside `tf.tidy`. */
export function defaultPositionIds(batch: number, seq: number, maxPositions: number, what: string): tf.Tensor2D {
  if (seq > maxPositions) {
    throw new ShapeError(`Sequence length ${seq} exceeds max_position_embeddings (${maxPositions}) of this ${what}.`);
  }
  return tf.add(tf.range(0, seq, 1, 'int32').reshape([1, seq]), tf.zeros([batch, 1], 'int32')) as tf.Tensor2D;
}

/** `[batch, seq]` ids (mask, token types, positions) that must line up with `inputIds`. Call inside `tf.tidy`. */
export function checkedIds(input: IdsInput, name: string, batch: number, seq: number): tf.Tensor2D {
  const t = idsTensor(input, name);
  if (t.shape[0] !== batch || t.shape[1] !== seq) {
    throw new ShapeError(`${name} must have the shape of inputIds [${batch}, ${seq}], got [${t.shape.join(', ')}].`);
  }
  return t;
}
