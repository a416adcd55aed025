// peft-ts demo (`npm run demo`): LoRA experts, an X-LoRA mixture of them, and a merged LoHa adapter, all trained
// here from scratch on a tiny random Llama in a couple of minutes on a laptop CPU, with no network.
//
//   1. a tiny LlamaForCausalLM (word-level vocabulary of 112, hidden 64, 2 layers), seeded;
//   2. three LoRA experts, one per task (count up, alphabet backwards, animal sounds), trained with the Trainer;
//   3. an X-LoRA classifier trained on the mixture of the three tasks (the experts stay frozen);
//   4. losses on held-out evaluation sequences: the X-LoRA mixture must be at or below every single expert on
//      the mixed set (the demo exits with status 1 otherwise);
//   5. greedy answers from the X-LoRA model (one KV cache per pass);
//   6. the X-LoRA scalings heatmaps and the training curves, as PNG and SVG (peft-ts/viz);
//   7. a LoHa adapter trained on one task and merged into the base weights, checked against the unmerged model.
//
// Usage: npm run demo [-- <output folder>]   (default ./demo-output)
import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { LlamaForCausalLM, LoHaConfig, LoHaLayer, LoraConfig, Trainer, getPeftModel, setBackend, tf } from 'peft-ts';
import type { CausalLMInput, CausalLMOutput, TrainExample, TrainingArguments, TrainableModel } from 'peft-ts';
import { XLoraConfig, addXLoraToModel } from 'peft-ts/xlora';
import { textRenderingAvailable, writeScalingsHeatmap, writeTrainingCurves } from 'peft-ts/viz';
import { EOS_ID, PAD_ID, SEQ_WORDS, TASK_NAMES, decode, encode, makeTasks, scoreContinuation, unseenRun } from './demo/tasks.js';
import type { TaskData } from './demo/tasks.js';
import { mulberry32, table } from './demo/util.js';

const started = performance.now();
const out = resolve(process.argv[2] ?? 'demo-output');
const show = (p: string) => relative(process.cwd(), p) || '.';
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const failures: string[] = [];

const backend = await setBackend();

// 1. The base model: the same seeded weights every time it is built. -----------------------------------------
const LLAMA = {
  vocab_size: 112,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
  initializer_range: 0.2,
  eos_token_id: EOS_ID,
  pad_token_id: PAD_ID,
  tie_word_embeddings: false,
};
const baseModel = () => new LlamaForCausalLM(LLAMA, { seed: 7 });

/** Training settings (AdamW at a constant learning rate, no gradient clipping; the PRNG seeds are fixed). */
const STEPS = {
  expert: { maxSteps: 120, learningRate: 0.03, perDeviceTrainBatchSize: 24 },
  xlora: { maxSteps: 150, learningRate: 0.02, perDeviceTrainBatchSize: 24 },
  loha: { maxSteps: 120, learningRate: 0.02, perDeviceTrainBatchSize: 24 },
};

const tasks = makeTasks(mulberry32(2024));
const base = baseModel();
console.log(`peft-ts demo: backend ${backend}, output ${show(out)}`);
console.log(`base model: random LlamaForCausalLM, ${base.numParameters().toLocaleString('en-US')} parameters (vocabulary 112 words, hidden 64, 2 layers)`);
console.log('tasks (training / held-out evaluation sequences):');
for (const t of tasks) console.log(`  ${t.name.padEnd(5)} ${String(t.train.length).padStart(3)} / ${String(t.eval.length).padStart(2)}   e.g. "${t.evalTexts[0]}"`);
// Only the folders this demo writes are cleared (the Trainer appends to metrics.jsonl).
for (const dir of ['experts', 'xlora', 'loha', 'pictures']) await rm(join(out, dir), { recursive: true, force: true });

type CausalLM = { forward(input: CausalLMInput): CausalLMOutput };

/** Token-mean cross-entropy of `model` over `examples` (labels -100 are not counted). */
function lossOf(model: CausalLM, examples: readonly TrainExample[]): number {
  return tf.tidy(() => {
    const outp = model.forward({ inputIds: examples.map((e) => e.inputIds), labels: examples.map((e) => e.labels) });
    return outp.loss!.dataSync()[0]!;
  });
}

/** Loss on each task's held-out set, and on the mixed set (the mean of the three: equal task weights). */
function lossRow(model: CausalLM): number[] {
  const perTask = tasks.map((t) => lossOf(model, t.eval));
  return [...perTask, perTask.reduce((a, b) => a + b, 0) / perTask.length];
}

const baseRow = lossRow(base);
base.dispose();

/** Trains `model` with the peft-ts Trainer (AdamW, constant LR, no clipping); logs one line. */
async function train(label: string, model: TrainableModel, args: Omit<TrainingArguments, 'progressBar'>, trainDataset: TrainExample[], evalDataset: TrainExample[]): Promise<void> {
  const t0 = performance.now();
  const trainer = new Trainer({ model, args: { progressBar: false, ...args }, trainDataset, evalDataset });
  try {
    const result = await trainer.train();
    console.log(
      `  ${label.padEnd(22)} ${result.globalStep} steps, train loss ${result.trainLoss.toFixed(3)}, held-out loss ${result.evalLoss!.toFixed(3)}, ${seconds(t0)}`,
    );
  } finally {
    trainer.dispose();
  }
  model.eval();
}

// 2. Three LoRA experts, one per task. ------------------------------------------------------------------------
let t0 = performance.now();
console.log('\n[1/6] training one LoRA expert per task (r 4, q/v/up/down projections)');
const expertDirs: Record<string, string> = {};
const expertRows: number[][] = [];
for (const [i, task] of tasks.entries()) {
  const dir = join(out, 'experts', task.name);
  const lora = new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'], taskType: 'CAUSAL_LM' });
  const peft = getPeftModel(baseModel(), lora, { seed: 100 + i });
  await train(`expert "${task.name}"`, peft, expertArgs(dir, i), task.train, task.eval);
  expertRows.push(lossRow(peft));
  peft.dispose();
  expertDirs[task.name] = dir;
}
console.log(`  saved to ${show(join(out, 'experts'))}/{${TASK_NAMES.join(',')}} (PEFT format), ${seconds(t0)}`);

function expertArgs(outputDir: string, i: number): TrainingArguments {
  return { outputDir, ...STEPS.expert, lrSchedulerType: 'constant', maxGradNorm: null, loggingSteps: 5, evalSteps: 10, seed: 10 + i };
}

// 3. X-LoRA: a classifier that mixes the frozen experts per token. --------------------------------------------
t0 = performance.now();
console.log('\n[2/6] training the X-LoRA classifier on the mixture (experts and base frozen)');
const xlora = await addXLoraToModel({
  model: baseModel(),
  xloraConfig: new XLoraConfig({ xloraDepth: 2, xloraSize: 64, xloraDropoutP: 0, enableSoftmax: true, layerwiseScalings: false }),
  adapters: expertDirs,
  seed: 3,
});
const [trainable, total] = xlora.getNbTrainableParameters();
console.log(`  trainable ${trainable.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} parameters (the classifier)`);
await train(
  'X-LoRA classifier',
  xlora,
  { outputDir: join(out, 'xlora'), ...STEPS.xlora, lrSchedulerType: 'constant', maxGradNorm: null, loggingSteps: 5, evalSteps: 10, seed: 17 },
  balancedMixture(tasks),
  tasks.flatMap((t) => t.eval),
);
console.log(`  saved to ${show(join(out, 'xlora'))}, ${seconds(t0)}`);

/** The three training sets, each repeated to the size of the largest, interleaved. */
function balancedMixture(data: readonly TaskData[]): TrainExample[] {
  const n = Math.max(...data.map((t) => t.train.length));
  return Array.from({ length: n }, (_, i) => data.map((t) => t.train[i % t.train.length]!)).flat();
}

// 4. The loss table. -------------------------------------------------------------------------------------------
t0 = performance.now();
const xloraRow = lossRow(xlora);
const routing = tasks.map((task, t) => {
  // Which expert gets the largest scaling (mean over layers) at each position that predicts a token.
  let hits = 0;
  let count = 0;
  tf.tidy(() => {
    xlora.forward({ inputIds: task.eval.map((e) => e.inputIds) }).logits.dispose();
    const scalings = xlora.getLatestScalings()!;
    const picks = tf.argMax(tf.mean(scalings, 2), -1).arraySync() as number[][];
    for (const row of picks) {
      for (const e of row.slice(0, -1)) {
        count++;
        if (e === t) hits++;
      }
    }
  });
  return hits / count;
});
console.log(`\n[3/6] held-out loss per task (cross-entropy per predicted word; mixed = mean of the three), ${seconds(t0)}`);
const rows: [string, number[]][] = [['base model', baseRow], ...TASK_NAMES.map((n, i) => [`LoRA expert "${n}"`, expertRows[i]!] as [string, number[]]), ['X-LoRA (3 experts)', xloraRow]];
console.log(table(['model', ...TASK_NAMES, 'mixed'], rows.map(([name, r]) => [name, ...r.map((x) => x.toFixed(3))])));
console.log(`X-LoRA routing: the task's own expert gets the largest scaling at ${routing.map((r, i) => `${(100 * r).toFixed(0)}% (${TASK_NAMES[i]})`).join(', ')} of positions`);
const mixed = xloraRow[3]!;
const bestExpert = Math.min(...expertRows.map((r) => r[3]!));
if (mixed <= bestExpert) console.log(`check: X-LoRA mixed loss ${mixed.toFixed(3)} <= best single expert ${bestExpert.toFixed(3)}: ok`);
else failures.push(`X-LoRA mixed loss ${mixed.toFixed(4)} is above the best single expert's ${bestExpert.toFixed(4)}`);

// 5. Generation. -----------------------------------------------------------------------------------------------
console.log(`\n[4/6] greedy generation, 7 new words, X-LoRA with its dual KV cache (prompts of sequences not trained on)`);
const unseen = tasks.map((t) => unseenRun(t, mulberry32(5)));
const prompts = unseen.map((text) => text.split(' ').slice(0, 2).join(' '));
const newWords = SEQ_WORDS - 1;
const g0 = performance.now();
const generated = await xlora.generate(prompts.map(encode), { maxNewTokens: newWords });
const genSeconds = (performance.now() - g0) / 1000;
const recomputed = await xlora.generate(prompts.map(encode), { maxNewTokens: newWords, useCache: false });
const baseModelForGen = baseModel();
const baseGenerated = await baseModelForGen.generate(prompts.map(encode), { maxNewTokens: newWords });
baseModelForGen.dispose();
prompts.forEach((prompt, i) => {
  const answer = decode(generated[i]!.slice(2));
  const correct = scoreContinuation(prompt, answer.split(' '));
  console.log(`  ${prompt.padEnd(9)} -> ${answer.padEnd(40)} ${correct}/${newWords} words follow the rule   (base model: ${decode(baseGenerated[i]!.slice(2))})`);
});
const sameAsRecompute = JSON.stringify(generated) === JSON.stringify(recomputed);
console.log(`  ${((prompts.length * newWords) / genSeconds).toFixed(0)} words/s; cached decoding equals full recomputation: ${sameAsRecompute ? 'yes' : 'NO'}`);
if (!sameAsRecompute) failures.push('X-LoRA generation with the KV cache differs from full recomputation');

// 6. Pictures. -------------------------------------------------------------------------------------------------
const p0 = performance.now();
console.log('\n[5/6] pictures');
const pictures = join(out, 'pictures');
await mkdir(pictures, { recursive: true });
for (const [i, task] of tasks.entries()) {
  const text = unseen[i]!;
  xlora.forward({ inputIds: [encode(text)] }).logits.dispose();
  const scalings = xlora.getLatestScalings()!; // [1, tokens, layers, experts]
  for (const ext of ['png', 'svg']) {
    await writeScalingsHeatmap(join(pictures, `scalings-${task.name}.${ext}`), scalings, text.split(' '), [...xlora.experts], {
      title: `X-LoRA scalings (mean of layers): ${task.name}`,
      showValues: true,
      cellSize: 40,
    });
  }
  scalings.dispose();
}
const curves = [...TASK_NAMES.map((n) => [`expert-${n}`, join(out, 'experts', n)]), ['xlora', join(out, 'xlora')]];
for (const [name, dir] of curves) {
  for (const ext of ['png', 'svg']) await writeTrainingCurves(join(pictures, `curves-${name}.${ext}`), join(dir!, 'metrics.jsonl'), { title: `Training curves: ${name}` });
}
console.log(`  ${show(pictures)}: scalings-{${TASK_NAMES.join(',')}}.{png,svg}, curves-{expert-*,xlora}.{png,svg}, ${seconds(p0)}`);
if (!textRenderingAvailable()) console.log('  (no system fonts found: the PNGs have no text; the SVGs do)');
xlora.dispose();

// 7. LoHa on one task, then merged. ------------------------------------------------------------------------------
t0 = performance.now();
console.log('\n[6/6] a LoHa adapter (r 4) trained on "count", then merged into the base weights');
const countTask = tasks[0]!;
const loha = getPeftModel(baseModel(), new LoHaConfig({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'], taskType: 'CAUSAL_LM' }), { seed: 5 });
await train('LoHa "count"', loha, { ...expertArgs(join(out, 'loha'), 0), ...STEPS.loha }, countTask.train, countTask.eval);
const probe = countTask.eval.map((e) => e.inputIds);
const unmergedLogits = tf.tidy(() => loha.forward({ inputIds: probe }).logits);
const unmergedLoss = lossOf(loha, countTask.eval);
const merged = loha.mergeAndUnload();
const mergedLogits = tf.tidy(() => merged.forward({ inputIds: probe }).logits);
const mergedLoss = lossOf(merged, countTask.eval);
const maxDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(mergedLogits, unmergedLogits))).dataSync()[0]!);
const adapterLeft = merged.modules().some((m) => m instanceof LoHaLayer);
tf.dispose([unmergedLogits, mergedLogits]);
merged.dispose();
console.log(`  held-out "count" loss: base ${baseRow[0]!.toFixed(3)}, LoHa ${unmergedLoss.toFixed(3)}, merged ${mergedLoss.toFixed(3)}; adapter layers left after merge: ${adapterLeft ? 'yes' : 'none'}`);
console.log(`  merged vs unmerged logits: max |difference| = ${maxDiff.toExponential(2)}, ${seconds(t0)}`);
if (!(maxDiff < 1e-3) || adapterLeft) failures.push(`the merged LoHa model differs from the unmerged one (max |difference| ${maxDiff})`);

console.log(`\ntotal ${seconds(started)}; live tensors at exit: ${tf.memory().numTensors}`);
if (failures.length) {
  for (const f of failures) console.error(`FAILED: ${f}`);
  process.exitCode = 1;
} else {
  console.log('all checks passed');
}
