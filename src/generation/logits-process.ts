// Logit processors and warpers of transformers' generation/logits_process.py, on one row of next-token scores
// (a Float32Array over the vocabulary), applied in transformers' order by `processScores`.

export interface ScoreOptions {
  repetitionPenalty: number;
  minNewTokens: number;
  eosTokenIds: readonly number[];
  temperature: number;
  topK: number;
  topP: number;
  doSample: boolean;
}

/** RepetitionPenaltyLogitsProcessor: scores of tokens already present are divided (or, if negative, multiplied). */
export function applyRepetitionPenalty(scores: Float32Array, previous: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  for (const token of new Set(previous)) {
    const s = scores[token]!;
    scores[token] = s < 0 ? s * penalty : s / penalty;
  }
}

/** MinNewTokensLengthLogitsProcessor: EOS is impossible until `minNewTokens` tokens were generated. */
export function applyMinNewTokens(scores: Float32Array, generated: number, minNewTokens: number, eos: readonly number[]): void {
  if (generated >= minNewTokens) return;
  for (const token of eos) scores[token] = -Infinity;
}

export function applyTemperature(scores: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / temperature;
}

/** TopKLogitsWarper: everything below the k-th largest score is removed (ties at the threshold are kept). */
export function applyTopK(scores: Float32Array, k: number): void {
  if (k <= 0 || k >= scores.length) return;
  const threshold = Float32Array.from(scores).sort()[scores.length - k]!;
  for (let i = 0; i < scores.length; i++) if (scores[i]! < threshold) scores[i] = -Infinity;
}

/**
 * TopPLogitsWarper: sort ascending, remove tokens whose cumulative probability is <= 1 - p; the most likely
 * token always stays.
 */
export function applyTopP(scores: Float32Array, p: number): void {
  if (p >= 1) return;
  const order = Array.from(scores.keys()).sort((x, y) => scores[x]! - scores[y]! || x - y);
  const probs = softmax(Float32Array.from(order, (i) => scores[i]!));
  let cumulative = 0;
  for (let j = 0; j < order.length - 1; j++) {
    cumulative += probs[j]!;
    if (cumulative <= 1 - p) scores[order[j]!] = -Infinity;
  }
}

export function softmax(scores: Float32Array): Float64Array {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i]! - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

export function logSoftmax(scores: Float32Array): Float32Array {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  let sum = 0;
  for (const s of scores) sum += Math.exp(s - max);
  const logZ = max + Math.log(sum);
  return scores.map((s) => s - logZ);
}

/** First index of the largest score, as torch.argmax. */
export function argmax(scores: Float32Array): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/** Draws an index from softmax(scores) with uniform `u` in [0, 1). */
export function sampleIndex(scores: Float32Array, u: number): number {
  const probs = softmax(scores);
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! === 0) continue;
    last = i;
    cumulative += probs[i]!;
    if (u < cumulative) return i;
  }
  return last;
}
