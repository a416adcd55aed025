// Forward and generation speed of a GPT-2-small-shaped random model (12 layers, width 768, vocab 50257) on each
// backend, with peak RSS. Each backend runs in its own child process so memory numbers do not mix.
// Usage: npm run bench [-- --backends wasm,cpu --seq 128 --new 32]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GPT2LMHeadModel } from '../src/models/gpt2/modeling.js';
import { setBackend } from '../src/engine/index.js';
import type { BackendName } from '../src/engine/index.js';
import { disposeOutput } from '../src/models/outputs.js';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm,cpu' },
    backend: { type: 'string' },
    seq: { type: 'string', default: '128' },
    new: { type: 'string', default: '32' },
    layers: { type: 'string', default: '12' },
  },
});

interface Row {
  backend: string;
  forwardTokensPerSecond: number;
  generateTokensPerSecond: number;
  peakRssMb: number;
}

async function measure(backend: BackendName): Promise<Row> {
  await setBackend(backend);
  const seq = Number(values.seq);
  const newTokens = Number(values.new);
  const model = new GPT2LMHeadModel({ n_layer: Number(values.layers), n_embd: 768, n_head: 12, vocab_size: 50257 }, { seed: 0 });
  const ids = [Array.from({ length: seq }, (_, i) => (i * 7919) % 50257)];
  const forward = async () => {
    const out = model.forward({ inputIds: ids });
    await out.logits.data();
    disposeOutput(out);
  };
  await forward(); // warm-up: kernel compilation, allocations
  const reps = backend === 'cpu' ? 1 : 3;
  let t0 = performance.now();
  for (let i = 0; i < reps; i++) await forward();
  const forwardTokensPerSecond = (reps * seq) / ((performance.now() - t0) / 1000);
  const prompt = [ids[0]!.slice(0, 16)];
  await model.generate(prompt, { maxNewTokens: 2, eosTokenId: [] });
  t0 = performance.now();
  await model.generate(prompt, { maxNewTokens: newTokens, eosTokenId: [] });
  const generateTokensPerSecond = newTokens / ((performance.now() - t0) / 1000);
  model.dispose();
  return { backend, forwardTokensPerSecond, generateTokensPerSecond, peakRssMb: process.resourceUsage().maxRSS / 1024 };
}

if (values.backend) {
  console.log(JSON.stringify(await measure(values.backend as BackendName)));
} else {
  const rows: Row[] = [];
  for (const backend of values.backends.split(',')) {
    const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--backend', backend, '--seq', values.seq, '--new', values.new, '--layers', values.layers];
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, PEFT_TS_QUIET: '1' } });
    rows.push(JSON.parse(out.trim().split('\n').pop()!) as Row);
  }
  console.log(`GPT-2 small shape (${values.layers} layers, 768 wide), forward seq ${values.seq}, generate 16 + ${values.new} tokens (KV cache)`);
  console.table(
    rows.map((r) => ({
      backend: r.backend,
      'forward tokens/s': r.forwardTokensPerSecond.toFixed(1),
      'generate tokens/s': r.generateTokensPerSecond.toFixed(2),
      'peak RSS MB': r.peakRssMb.toFixed(0),
    })),
  );
}
