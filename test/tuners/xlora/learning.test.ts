// X-LoRA learns to route (spec xlora.md §1, §6): three LoRA experts are trained on three synthetic next-token tasks
// on the same tiny Llama, each in its own token range; then only an X-LoRA classifier is trained on the mixture
// with the plain LM loss. The mixture must beat every single expert on the mixed evaluation set, stay close to
// the matching expert on each task, and its logged scalings must pick the task's expert for most tokens.
//
// Tasks (the next token depends on the current one only; the ranges tell the tasks apart):
//   A, tokens 1..15:  successor, x -> x + 1 (wrapping inside the range)
//   B, tokens 16..30: predecessor, x -> x - 1 (wrapping inside the range)
//   C, tokens 31..45: constant, x -> x
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import type { CausalLMInput, CausalLMOutput } from '../../../src/models/outputs.js';
import { Dropout, mulberry32 } from '../../../src/nn/dropout.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { XLoraConfig, addXLoraToModel } from '../../../src/tuners/xlora/index.js';
import type { XLoraModel } from '../../../src/tuners/xlora/index.js';
import { loraLayers, seedLoraWeights, tempDir, tinyLlama, values, withWarnings } from './fixture.js';

const SEQ = 8;
const RANGES: readonly (readonly [number, number])[] = [
  [1, 16],
  [16, 31],
  [31, 46],
];
const TASKS = ['A successor', 'B predecessor', 'C constant'];
const EXPERT_STEPS = 60;
const XLORA_STEPS = 120;
/** Thresholds; the measured values (wasm backend) are printed by the test. */
const ROUTING_ACCURACY_MIN = 0.8;
const PER_TASK_MARGIN = 0.35;

/** One sequence of task `task` starting at `start` (an offset into its range). */
function sequence(task: number, start: number): number[] {
  const [lo, hi] = RANGES[task]!;
  const n = hi - lo;
  const step = [1, -1, 0][task]!;
  return Array.from({ length: SEQ }, (_, i) => lo + ((((start + step * i) % n) + n) % n));
}

/** `count` sequences of `task` with seeded random starts. */
function batchOf(task: number, count: number, random: () => number): number[][] {
  const n = RANGES[task]![1] - RANGES[task]![0];
  return Array.from({ length: count }, () => sequence(task, Math.floor(random() * n)));
}

/** The evaluation set of a task: every sequence it has (one per start token). */
function evalSet(task: number): number[][] {
  const n = RANGES[task]![1] - RANGES[task]![0];
  return Array.from({ length: n }, (_, start) => sequence(task, start));
}

type CausalLM = { forward(input: CausalLMInput): CausalLMOutput };

/** Mean next-token cross-entropy of `model` on `ids`. */
function lossOf(model: CausalLM, ids: number[][]): number {
  const out = model.forward({ inputIds: ids, labels: ids });
  const loss = out.loss!.dataSync()[0]!;
  out.logits.dispose();
  out.loss!.dispose();
  return loss;
}

/** Adam on `tf.variableGrads` of the LM loss over `vars`, on batches from `next`. */
function train(model: CausalLM, vars: tf.Variable[], steps: number, learningRate: number, next: () => number[][]): void {
  const optimizer = tf.train.adam(learningRate);
  try {
    for (let step = 0; step < steps; step++) {
      const ids = next();
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward({ inputIds: ids, labels: ids });
        out.logits.dispose();
        return out.loss!;
      }, vars);
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
      value.dispose();
      tf.dispose(grads);
    }
  } finally {
    optimizer.dispose();
  }
}

const fmt = (xs: readonly number[]) => xs.map((x) => x.toFixed(3)).join(' / ');
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('X-LoRA learns to route between three task experts', () => {
  const tmp = tempDir('xlora-learn-');
  const evalSets = [0, 1, 2].map(evalSet);
  /** expertLoss[e][t]: expert e alone on task t. */
  const expertLoss: number[][] = [];
  let baseLoss: number[];
  let xlora: XLoraModel;

  before(async () => {
    await setBackend();
    const base = tinyLlama();
    baseLoss = evalSets.map((ids) => lossOf(base, ids));
    base.dispose();
    // Three experts, each trained on its own task only.
    for (let e = 0; e < 3; e++) {
      const peft = getPeftModel(tinyLlama(), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'], taskType: 'CAUSAL_LM' }));
      try {
        seedLoraWeights(peft, 'default', 1000 * (e + 1), 0.05);
        const vars = peft.parameters().filter((p) => p.trainable);
        assert.equal(vars.length, 2 * 4 * 2, 'A and B of 4 modules in 2 blocks');
        const random = mulberry32(10 + e);
        train(peft, vars, EXPERT_STEPS, 0.02, () => batchOf(e, 16, random));
        expertLoss.push(evalSets.map((ids) => lossOf(peft, ids)));
        await peft.savePretrained(join(tmp.dir, `expert-${e}`));
      } finally {
        peft.dispose();
      }
    }
    const { result } = await withWarnings(() =>
      addXLoraToModel({
        model: tinyLlama(),
        xloraConfig: new XLoraConfig({ xloraDepth: 2, xloraSize: 32, enableSoftmax: true, layerwiseScalings: false }),
        adapters: { a: join(tmp.dir, 'expert-0'), b: join(tmp.dir, 'expert-1'), c: join(tmp.dir, 'expert-2') },
        seed: 3,
      }),
    );
    xlora = result;
  });
  after(() => {
    xlora?.dispose();
    tmp.cleanup();
  });

  test('the experts specialise: each is good on its own task only', () => {
    console.log(`base model loss per task (${TASKS.join(', ')}): ${fmt(baseLoss)}`);
    expertLoss.forEach((row, e) => console.log(`expert ${'abc'[e]} loss per task: ${fmt(row)}`));
    for (let e = 0; e < 3; e++) {
      for (let t = 0; t < 3; t++) {
        if (t === e) assert.ok(expertLoss[e]![t]! < 0.6 && expertLoss[e]![t]! < baseLoss[t]! - 3, `expert ${e} learnt task ${t}`);
        else assert.ok(expertLoss[e]![t]! > expertLoss[t]![t]! + 3, `expert ${e} does not solve task ${t}`);
      }
    }
  });

  test('training only the classifier on the mixture beats every single expert and routes tokens to the right expert', () => {
    const classifierParams = xlora.internal_xlora_classifier.parameters();
    const vars = xlora.parameters().filter((p) => p.trainable);
    assert.deepEqual(vars, classifierParams, 'only the classifier is trainable');
    const frozen = loraLayers(xlora.inner).map(([, layer]) => layer.lora_A.get('a')!.weight);
    const before = frozen.map(values);

    // Seeded classifier dropout masks, so the run is reproducible.
    for (const m of xlora.internal_xlora_classifier.modules()) if (m instanceof Dropout) m.reseed(17);
    xlora.train();
    const random = mulberry32(99);
    train(xlora, vars, XLORA_STEPS, 0.01, () => [0, 1, 2].flatMap((t) => batchOf(t, 6, random)));
    xlora.eval();
    frozen.forEach((w, i) => assert.deepEqual(values(w), before[i], 'experts are unchanged'));

    // Losses: X-LoRA and each single expert on every task and on the mixture (equal task weights).
    const xloraLoss = evalSets.map((ids) => lossOf(xlora, ids));
    const mixed = mean(xloraLoss);
    const expertMixed = expertLoss.map(mean);
    console.log(`X-LoRA loss per task: ${fmt(xloraLoss)}; mixed ${mixed.toFixed(3)} vs single experts mixed ${fmt(expertMixed)}`);

    // Routing: argmax over experts of the scalings (averaged over layers) at every position that has a label.
    xlora.clearScalingsLog();
    xlora.enableScalingsLogging();
    const accuracy = evalSets.map((ids, t) => {
      xlora.clearScalingsLog();
      xlora.forward({ inputIds: ids }).logits.dispose();
      const [scalings] = xlora.getScalingsLog();
      const picks = tf.tidy(() => tf.argMax(tf.mean(scalings!, 2), -1).arraySync() as number[][]);
      const relevant = picks.flatMap((row) => row.slice(0, SEQ - 1));
      return relevant.filter((e) => e === t).length / relevant.length;
    });
    xlora.disableScalingsLogging();
    xlora.clearScalingsLog();
    const overall = mean(accuracy);
    console.log(`X-LoRA routing accuracy per task: ${fmt(accuracy)}; overall ${overall.toFixed(3)} (threshold ${ROUTING_ACCURACY_MIN})`);

    for (let e = 0; e < 3; e++) assert.ok(mixed < expertMixed[e]!, `mixed loss ${mixed} below expert ${e}'s ${expertMixed[e]}`);
    for (let t = 0; t < 3; t++) {
      assert.ok(xloraLoss[t]! < expertLoss[t]![t]! + PER_TASK_MARGIN, `task ${t}: X-LoRA ${xloraLoss[t]} within ${PER_TASK_MARGIN} of its expert's ${expertLoss[t]![t]}`);
      for (let e = 0; e < 3; e++) if (e !== t) assert.ok(xloraLoss[t]! < expertLoss[e]![t]!, `task ${t}: X-LoRA below expert ${e}`);
      assert.ok(accuracy[t]! >= ROUTING_ACCURACY_MIN, `task ${t}: routing accuracy ${accuracy[t]}`);
    }
  });
});
