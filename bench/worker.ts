// Runs one benchmark configuration in this process and prints its measurements as one JSON line (last line of
// stdout). bench/run.ts starts one worker per configuration, so each reports its own peak RSS.
// Usage: node --import tsx bench/worker.ts <case> '<json args>'
import { setBackend, tf } from '../src/engine/index.js';
import type { Measurement } from './common.js';

const [caseName, json] = process.argv.slice(2);
if (!caseName) throw new Error('usage: worker.ts <case> <json args>');
const args = JSON.parse(json ?? '{}') as Record<string, unknown>;

async function run(): Promise<Measurement> {
  if (caseName === 'gpt2') {
    const { gpt2Case } = await import('./gpt2.js');
    return gpt2Case(args as never);
  }
  await setBackend(); // the engine's default: wasm in Node without tfjs-node
  const cases = await import('./llama-cases.js');
  switch (caseName) {
    case 'llama':
      return cases.llamaCase(args as never);
    case 'profile':
      return cases.profileCase(args as never);
    case 'adapters-create':
      return cases.createAdapters(args as never);
    case 'adapters':
      return cases.adapterLoadCase(args as never);
    case 'xlora-generate':
      return cases.xloraGenerateCase(args as never);
    default:
      throw new Error(`unknown case ${caseName}`);
  }
}

const result = await run();
console.log(JSON.stringify({ ...result, backend: result['backend'] ?? tf.getBackend() }));
