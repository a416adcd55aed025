// Shared fixtures of the training tests: a tiny random Llama with LoRA (dropout on, to exercise reseeding) and a
// synthetic next-token data set with varied lengths and prompt-masked labels.
import { tf } from '../../src/engine/tf.js';
import { LlamaForCausalLM } from '../../src/models/llama/index.js';
import { getPeftModel } from '../../src/peft-model.js';
import type { PeftModel } from '../../src/peft-model.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import type { TrainExample, TrainingArguments } from '../../src/training/index.js';

export const LLAMA = {
  vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  max_position_embeddings: 32, initializer_range: 0.2,
};

/** The same model in every process: seeded base, and LoRA A re-drawn with fixed seeds (PEFT's init is unseeded). */
export function makePeft(options: { loraDropout?: number } = {}): PeftModel<LlamaForCausalLM> {
  const model = new LlamaForCausalLM(LLAMA, { seed: 7 });
  const peft = getPeftModel(model, new LoraConfig({ targetModules: ['q_proj', 'v_proj', 'down_proj'], r: 4, loraAlpha: 8, taskType: 'CAUSAL_LM', loraDropout: options.loraDropout ?? 0.1 }));
  for (const [i, [name, p]] of [...peft.namedParameters()].entries()) {
    if (name.includes('lora_A')) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -0.3, 0.3, 'float32', 100 + i)));
  }
  return peft.train();
}

/** `n` sequences following t -> 5t + 3 (mod 64), lengths 5..10; every third masks its first two labels. */
export function syntheticExamples(n = 12): TrainExample[] {
  const out: TrainExample[] = [];
  for (let i = 0; i < n; i++) {
    const ids = [(i * 7 + 1) % 64];
    const len = 5 + (i % 6);
    while (ids.length < len) ids.push((5 * ids.at(-1)! + 3) % 64);
    const labels = ids.map((t, j) => (i % 3 === 0 && j < 2 ? -100 : t));
    out.push({ inputIds: ids, labels });
  }
  return out;
}

/** The run the resume tests repeat: 6 steps, accumulation 2, a checkpoint at step 3. */
export function resumeArgs(outputDir: string): TrainingArguments {
  return {
    outputDir,
    learningRate: 0.01,
    weightDecay: 0.01,
    maxSteps: 6,
    perDeviceTrainBatchSize: 2,
    gradientAccumulationSteps: 2,
    lrSchedulerType: 'cosine',
    warmupSteps: 1,
    maxGradNorm: 1,
    loggingSteps: 2,
    saveSteps: 3,
    seed: 123,
    progressBar: false,
  };
}
