/** Truncation and padding with transformers' strategies and semantics. */
import { TokenizerError } from '../errors.js';
import type { Side } from './config.js';

export type PaddingStrategy = boolean | 'longest' | 'max_length' | 'do_not_pad';
export type TruncationStrategy = boolean | 'longest_first' | 'only_first' | 'only_second' | 'do_not_truncate';

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

function cut(ids: number[], keep: number, side: Side): number[] {
  return keep >= ids.length ? ids : side === 'left' ? ids.slice(ids.length - keep) : ids.slice(0, keep);
}

/**
 * Shortens the content tokens (special tokens excluded) of a sequence or pair to `budget` tokens in total.
 * `longest_first` follows the Rust tokenizers (what transformers' fast tokenizers use).
 */
export function truncateSequences(
  a: number[],
  b: number[] | undefined,
  budget: number,
  strategy: Exclude<TruncationStrategy, boolean | 'do_not_truncate'>,
  side: Side,
): [number[], number[] | undefined] {
  const total = a.length + (b?.length ?? 0);
  if (total <= budget) return [a, b];
  if (budget < 0) throw new TokenizerError(`maxLength is too small: the special tokens alone need ${-budget} more positions.`);
  if (strategy === 'only_second' && !b) throw new TokenizerError("truncation 'only_second' needs a text pair.");
  if (!b || strategy === 'only_first') {
    const keep = budget - (b?.length ?? 0);
    if (keep < 0) throw new TokenizerError(`Cannot truncate with 'only_first': the pair alone is longer than maxLength.`);
    return [cut(a, keep, side), b];
  }
  if (strategy === 'only_second') {
    const keep = budget - a.length;
    if (keep < 0) throw new TokenizerError(`Cannot truncate with 'only_second': the first sequence alone is longer than maxLength.`);
    return [a, cut(b, keep, side)];
  }
  // The Rust tokenizers' rule: the shorter sequence keeps its length if the longer can still fill the rest,
  // otherwise both get half (the longer one the odd token; the pair on ties).
  let n1 = a.length;
  let n2 = b.length;
  const swap = n1 > n2;
  if (swap) [n1, n2] = [n2, n1];
  n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = Math.floor(budget / 2);
    n2 = n1 + (budget % 2);
  }
  const [x, y] = swap ? [n2, n1] : [n1, n2];
  return [cut(a, x, side), cut(b, y, side)];
}

export interface PadOptions {
  readonly strategy: 'longest' | 'max_length';
  readonly maxLength: number | undefined;
  readonly padToMultipleOf: number | undefined;
  readonly side: Side;
  readonly padId: number | undefined;
}

/** Pads every row to a common length and builds the attention masks (1 = real token, 0 = padding). */
export function padBatch(rows: number[][], o: PadOptions): BatchEncoding {
  let target: number;
  if (o.strategy === 'max_length') {
    if (o.maxLength === undefined || !Number.isFinite(o.maxLength)) {
      throw new TokenizerError("padding: 'max_length' needs maxLength (this tokenizer has no finite model_max_length).");
    }
    target = o.maxLength;
  } else {
    target = rows.reduce((m, r) => Math.max(m, r.length), 0);
  }
  if (o.padToMultipleOf !== undefined && o.padToMultipleOf > 0) target = Math.ceil(target / o.padToMultipleOf) * o.padToMultipleOf;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const row of rows) {
    const n = Math.max(0, target - row.length);
    if (n > 0 && o.padId === undefined) {
      throw new TokenizerError(
        'Asking to pad but the tokenizer has no padding token. Set one first, e.g. tokenizer.padToken = tokenizer.eosToken, ' +
          'or pass { padding: false }.',
      );
    }
    const pad = new Array<number>(n).fill(o.padId ?? 0);
    const ones = new Array<number>(row.length).fill(1);
    const zeros = new Array<number>(n).fill(0);
    inputIds.push(o.side === 'left' ? [...pad, ...row] : [...row, ...pad]);
    attentionMask.push(o.side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
  }
  return { inputIds, attentionMask };
}
