// LoHa vs LoRA at the same trainable-parameter budget on a small Llama-shaped random model: Adam training-step
// time and tokens/s, plus the unmerged eval forward. LoHa with rank r has 2r(in + out) parameters per linear layer,
// LoRA with rank 2r the same, so the pair (LoHa r, LoRA 2r) compares equal budgets. LoHa rebuilds each ΔW on every
// forward (a dense [out, in] product), LoRA only multiplies activations by its factors.
// The full-size comparison with PyTorch + PEFT is section loha of bench/run.ts (npm run bench -- --section loha);
// this script is the quick in-process version (interleaved rounds, so both methods see the same machine load).
// Usage: npx tsx bench/loha.ts [-- --r 8 --layers 4 --hidden 256 --seq 64 --batch 4 --steps 5 --backend wasm]
import { parseArgs } from 'node:util';
import { setBackend, tf } from '../src/engine/index.js';
import type { BackendName } from '../src/engine/index.js';
import { LlamaForCausalLM } from '../src/models/llama/index.js';
import { disposeOutput } from '../src/models/outputs.js';
import { getPeftModel } from '../src/peft-model.js';
import type { AnyPeftConfig } from '../src/tuners/registry.js';
import { LoHaConfig } from '../src/tuners/loha/config.js';
import { LoraConfig } from '../src/tuners/lora/config.js';
import { median, timeMs } from './common.js';
import { makeTrainStep } from './llama-cases.js';

const { values } = parseArgs({
  options: {
    r: { type: 'string', default: '8' },
    layers: { type: 'string', default: '4' },
    hidden: { type: 'string', default: '256' },
    seq: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    steps: { type: 'string', default: '5' },
    backend: { type: 'string' },
  },
});

const r = Number(values.r);
const hidden = Number(values.hidden);
const seq = Number(values.seq);
const batch = Number(values.batch);
const steps = Number(values.steps);
const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const modelConfig = {
  model_type: 'llama', vocab_size: 1024, hidden_size: hidden, intermediate_size: Math.round((hidden * 8) / 3 / 8) * 8,
  num_hidden_layers: Number(values.layers), num_attention_heads: 8, num_key_value_heads: 8, max_position_embeddings: 2 * seq,
};

interface Runner {
  method: string;
  trainable: number;
  step(): void;
  forward(): void;
  dispose(): void;
}

function runner(method: string, config: AnyPeftConfig): Runner {
  const peft = getPeftModel(new LlamaForCausalLM(modelConfig, { seed: 0 }), config);
  const [trainable] = peft.getNbTrainableParameters();
  const ids = Array.from({ length: batch }, (_, b) => Array.from({ length: seq }, (_, i) => (b * 131 + i * 7919) % 1024));
  const vars = peft.parameters().filter((p) => p.trainable);
  const model = peft.model;
  const train = makeTrainStep(model, vars, ids);
  return {
    method,
    trainable,
    step() {
      peft.train();
      train.step();
    },
    forward() {
      peft.eval();
      const out = model.forward({ inputIds: ids });
      out.logits.dataSync();
      disposeOutput(out);
    },
    dispose() {
      train.dispose();
      peft.dispose();
    },
  };
}


await setBackend(values.backend as BackendName | undefined);
const runners = [
  runner(`LoHa r=${r}`, new LoHaConfig({ r, alpha: r, targetModules })),
  runner(`LoRA r=${2 * r}`, new LoraConfig({ r: 2 * r, loraAlpha: 2 * r, targetModules })),
];
for (const run of runners) {
  run.step(); // warm-up: kernels, allocations
  run.forward();
}
// Interleaved rounds, medians: robust to other load on the machine.
const stepMs = runners.map(() => [] as number[]);
const forwardMs = runners.map(() => [] as number[]);
for (let i = 0; i < steps; i++) {
  runners.forEach((run, k) => {
    stepMs[k]!.push(timeMs(() => run.step()));
    forwardMs[k]!.push(timeMs(() => run.forward()));
  });
}
const rows = runners.map((run, k) => ({
  method: run.method,
  trainable: run.trainable,
  stepMs: median(stepMs[k]!),
  trainTokensPerSecond: (batch * seq) / (median(stepMs[k]!) / 1000),
  evalForwardMs: median(forwardMs[k]!),
}));
for (const run of runners) run.dispose();
console.log(
  `Llama shape: ${modelConfig.num_hidden_layers} layers, hidden ${hidden}, MLP ${modelConfig.intermediate_size}, vocab 1024; ` +
    `batch ${batch} x seq ${seq}; adapters on ${targetModules.join(', ')}; backend ${tf.getBackend()}`,
);
console.table(
  rows.map((row) => ({
    method: row.method,
    'trainable params': row.trainable.toLocaleString('en-US'),
    'train step ms': row.stepMs.toFixed(1),
    'train tokens/s': row.trainTokensPerSecond.toFixed(0),
    'eval forward ms': row.evalForwardMs.toFixed(1),
  })),
);
