// Forward and generation speed of a GPT-2-small-shaped random model (12 layers, width 768, vocab 50257) on each
// backend, with peak RSS. `gpt2Case` measures one backend in the current process; bench/run.ts (section gpt2)
// runs it once per backend in its own child process, so memory numbers do not mix, next to PyTorch.
// Usage: npx tsx bench/gpt2.ts [--gpt2-backends wasm,cpu --gpt2-seq 128 --gpt2-new 32]  (= npm run bench -- --section gpt2 ...)
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { setBackend } from '../src/engine/index.js';
import type { BackendName } from '../src/engine/index.js';
import { GPT2LMHeadModel } from '../src/models/gpt2/modeling.js';
import { disposeOutput } from '../src/models/outputs.js';
import { median, peakRssMb, repeat, timeMsAsync } from './common.js';
import type { Measurement } from './common.js';

export interface Gpt2Args {
  backend: BackendName;
  layers: number;
  /** Forward sequence length (batch 1). */
  seq: number;
  /** Prompt length and new tokens of the generate run (greedy, KV cache). */
  prompt: number;
  newTokens: number;
  reps: number;
}

/** Deterministic ids, the same formula as bench_torch.py's gpt2 section. */
export function gpt2Ids(seq: number): number[] {
  return Array.from({ length: seq }, (_, i) => (i * 7919) % 50257);
}

export async function gpt2Case(args: Gpt2Args): Promise<Measurement> {
  await setBackend(args.backend);
  const model = new GPT2LMHeadModel({ n_layer: args.layers, n_embd: 768, n_head: 12, vocab_size: 50257 }, { seed: 0 });
  const ids = [gpt2Ids(args.seq)];
  const forward = async () => {
    const out = model.forward({ inputIds: ids });
    await out.logits.data();
    disposeOutput(out);
  };
  const forwardMs = median(await repeat(forward, args.reps, 1));
  const prompt = [ids[0]!.slice(0, args.prompt)];
  await model.generate(prompt, { maxNewTokens: 2, eosTokenId: [] }); // warm-up
  const genTimes: number[] = [];
  for (let i = 0; i < args.reps; i++) {
    genTimes.push(await timeMsAsync(async () => {
      const out = await model.generate(prompt, { maxNewTokens: args.newTokens, eosTokenId: [] });
      if (out[0]!.length !== args.prompt + args.newTokens) throw new Error('generation stopped early');
    }));
  }
  model.dispose();
  return {
    forwardMs,
    forwardTokensPerSecond: args.seq / (forwardMs / 1000),
    generateTokensPerSecond: args.newTokens / (median(genTimes) / 1000),
    peakRssMb: peakRssMb(),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { main } = await import('./run.js');
  await main(['--section', 'gpt2', ...process.argv.slice(2)]);
}
