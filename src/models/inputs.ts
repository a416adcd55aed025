import { tf } from '../engine/tf.js';
import { ShapeError } from '../errors.js';
import type { IdsInput } from './outputs.js';

/**
 * A `[batch, seq]` int32 tensor from ids given as a tensor or nested arrays. Call inside `tf.tidy`: a tensor
 * created here is then freed with the scope, while a caller's tensor is left alone.
 */
export function idsTensor(input: IdsInput, name: string): tf.Tensor2D {
  if (input instanceof tf.Tensor) {
    if (input.rank !== 2) throw new ShapeError(`${name} must be 2-D [batch, seq], got shape [${input.shape.join(', ')}].`);
    return (input.dtype === 'int32' ? input : tf.cast(input, 'int32')) as tf.Tensor2D;
  }
  if (!Array.isArray(input) || input.length === 0 || !input.every(Array.isArray)) {
    throw new ShapeError(`${name} must be a non-empty number[][] (one row per sequence) or a 2-D tensor.`);
  }
  const width = input[0]!.length;
  if (input.some((row) => row.length !== width)) {
    throw new ShapeError(`${name} rows have different lengths (${input.map((r) => r.length).join(', ')}); pad them first (the tokenizer's encodeBatch does).`);
  }
  return tf.tensor2d(input, [input.length, width], 'int32');
}
