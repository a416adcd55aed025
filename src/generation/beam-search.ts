import type { ForwardContext } from '../nn/context.js';
import type { ResolvedGenerationOptions } from './config.js';
import type { GenerativeModel } from './generate.js';
import { DecodingState, createDecodingCache } from './generate.js';
import { applyMinNewTokens, applyRepetitionPenalty, logSoftmax } from './logits-process.js';

// Beam search as transformers' BeamSearchScorer + BeamHypotheses: finished hypotheses are stored without their
// EOS token and scored sum_logprobs / generated_len ** length_penalty; EOS is appended again at the end.

interface Hypothesis {
  score: number;
  tokens: number[];
}

class BeamHypotheses {
  readonly beams: Hypothesis[] = [];
  private worstScore = 1e9;

  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
    private readonly earlyStopping: boolean | 'never',
    private readonly maxLength: number,
  ) {}

  add(tokens: number[], sumLogprobs: number, generatedLength: number): void {
    const score = sumLogprobs / generatedLength ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        const sorted = this.beams.map((b, i) => [b.score, i] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        this.beams.splice(sorted[0]![1], 1);
        this.worstScore = sorted[1]![0];
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
  }

  /** Whether no beam still running can beat the worst finished hypothesis. */
  isDone(bestSumLogprobs: number, generatedLength: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    if (this.earlyStopping === false) return this.worstScore >= bestSumLogprobs / generatedLength ** this.lengthPenalty;
    // 'never': the best attainable score depends on the sign of the length penalty.
    const length = this.lengthPenalty > 0 ? this.maxLength : generatedLength;
    return this.worstScore >= bestSumLogprobs / length ** this.lengthPenalty;
  }
}

export async function beamSearch(
  model: GenerativeModel,
  prompts: number[][],
  mask: number[][],
  o: ResolvedGenerationOptions,
  ctx?: ForwardContext,
): Promise<number[][]> {
  const k = o.numBeams;
  const batch = prompts.length;
  const promptLength = prompts[0]!.length;
  const expand = <T>(rows: T[][]) => rows.flatMap((r) => Array.from({ length: k }, () => [...r]));
  let state = new DecodingState(expand(prompts), expand(mask), createDecodingCache(model, o, promptLength));
  // Only the first beam of each prompt is live at the start, so the first step does not pick k copies.
  let beamScores: number[] = Array.from({ length: batch * k }, (_, i) => (i % k === 0 ? 0 : -1e9));
  const hyps = prompts.map(() => new BeamHypotheses(k, o.lengthPenalty, o.earlyStopping, o.maxNewTokens));
  const done = prompts.map(() => false);
  const keep = Math.max(2, 1 + o.eosTokenIds.length) * k;
  try {
    for (let step = 0; step < o.maxNewTokens && !done.every(Boolean); step++) {
      const scores = await state.nextScores(model, ctx);
      const generatedLength = step + 1;
      const nextTokens: number[] = [];
      const nextSources: number[] = [];
      const nextScores: number[] = [];
      for (let b = 0; b < batch; b++) {
        if (done[b]) {
          for (let j = 0; j < k; j++) {
            nextTokens.push(o.padTokenId ?? 0);
            nextSources.push(b * k);
            nextScores.push(0);
          }
          continue;
        }
        const candidates = topCandidates(b, k, keep, scores, state.rows, beamScores, step, o);
        let filled = 0;
        for (let rank = 0; rank < candidates.length && filled < k; rank++) {
          const { token, beam, score } = candidates[rank]!;
          const source = b * k + beam;
          if (o.eosTokenIds.includes(token)) {
            if (rank >= k) continue;
            hyps[b]!.add(state.rows[source]!.slice(), score, generatedLength);
          } else {
            nextTokens.push(token);
            nextSources.push(source);
            nextScores.push(score);
            filled++;
          }
        }
        done[b] = hyps[b]!.isDone(candidates[0]!.score, generatedLength);
      }
      state = reorder(state, nextSources);
      state.append(nextTokens);
      beamScores = nextScores;
    }
    return finalize(hyps, done, state.rows, beamScores, k, promptLength, o);
  } finally {
    state.dispose();
  }
}

/** The best `keep` (beam, token) continuations of prompt `b`, scored by accumulated log-probability. */
function topCandidates(
  b: number,
  k: number,
  keep: number,
  scores: Float32Array[],
  rows: number[][],
  beamScores: number[],
  step: number,
  o: ResolvedGenerationOptions,
): { token: number; beam: number; score: number }[] {
  const all: { token: number; beam: number; score: number }[] = [];
  for (let beam = 0; beam < k; beam++) {
    const row = scores[b * k + beam]!;
    const logprobs = logSoftmax(row);
    applyRepetitionPenalty(logprobs, rows[b * k + beam]!, o.repetitionPenalty);
    applyMinNewTokens(logprobs, step, o.minNewTokens, o.eosTokenIds);
    const base = beamScores[b * k + beam]!;
    // The overall best `keep` are among each beam's best `keep`: select those instead of sorting the vocabulary.
    for (const token of topIndices(logprobs, keep)) all.push({ token, beam, score: logprobs[token]! + base });
  }
  // Ties keep torch.topk's flattened [beam * vocab + token] order.
  all.sort((x, y) => y.score - x.score || x.beam - y.beam || x.token - y.token);
  return all.slice(0, keep);
}

function reorder(state: DecodingState, sources: number[]): DecodingState {
  state.cache?.reorder(sources);
  return new DecodingState(
    sources.map((s) => [...state.rows[s]!]),
    sources.map((s) => [...state.mask[s]!]),
    state.cache,
  );
}

function finalize(
  hyps: BeamHypotheses[],
  done: boolean[],
  rows: number[][],
  beamScores: number[],
  k: number,
  promptLength: number,
  o: ResolvedGenerationOptions,
): number[][] {
  hyps.forEach((h, b) => {
    if (done[b]) return;
    for (let j = 0; j < k; j++) h.add(rows[b * k + j]!.slice(), beamScores[b * k + j]!, rows[b * k + j]!.length - promptLength);
  });
  // The best `numReturnSequences` hypotheses of each prompt, best first.
  const best = hyps.flatMap((h) =>
    [...h.beams]
      .sort((x, y) => x.score - y.score)
      .reverse() // ties: the later hypothesis first, as Python's sorted(...).pop()
      .slice(0, o.numReturnSequences)
      .map((b) => b.tokens),
  );
  const maxLen = Math.min(Math.max(...best.map((t) => t.length)) + 1, promptLength + o.maxNewTokens);
  // transformers fills with `pad_token_id or eos_token_id[0]`: a pad id of 0 counts as unset there, and here.
  const fill = (o.padTokenId || o.eosTokenIds[0]) ?? 0;
  return best.map((tokens) => {
    const out = [...tokens];
    if (out.length < maxLen && o.eosTokenIds.length) out.push(o.eosTokenIds[0]!);
    while (out.length < maxLen) out.push(fill);
    return out;
  });
}

/** Indices of the `n` largest values, ties to the lower index. */
function topIndices(values: Float32Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (top.length === n && v <= values[top[n - 1]!]!) continue;
    let at = top.length;
    while (at > 0 && values[top[at - 1]!]! < v) at--;
    top.splice(at, 0, i);
    if (top.length > n) top.pop();
  }
  return top;
}
