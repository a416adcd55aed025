// Trainer building blocks against hand-computed numbers (AdamW, schedules, clipping), gradient accumulation
// against the big batch, leak-freedom, metrics, early stop, and bit-exact resume (in process and after SIGKILL).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import { ConfigError, TrainingError } from '../../src/errors.js';
import { PeftModel } from '../../src/peft-model.js';
import { LlamaForCausalLM } from '../../src/models/llama/index.js';
import {
  AdamW,
  Trainer,
  clipGradNorm,
  collate,
  cosineScheduleWithWarmup,
  epochOrder,
  linearScheduleWithWarmup,
  constantScheduleWithWarmup,
} from '../../src/training/index.js';
import type { MetricsRecord } from '../../src/training/index.js';
import { assertAllClose } from '../helpers/assert.js';
import { LLAMA, makePeft, resumeArgs, syntheticExamples } from './common.js';

process.env['PEFT_TS_QUIET'] = '1';
const here = dirname(fileURLToPath(import.meta.url));
let root: string;

before(async () => {
  await setBackend();
  root = await mkdtemp(join(tmpdir(), 'peft-ts-trainer-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const copy = (m: ReadonlyMap<string, tf.Variable>) => new Map([...m].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));

function assertBitEqual(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: names`);
  for (const [k, x] of a) {
    const y = b.get(k)!;
    assert.ok(Buffer.from(x.buffer).equals(Buffer.from(y.buffer)), `${what}: ${k} differs (max |d| ${Math.max(...x.map((v, i) => Math.abs(v - y[i]!)))})`);
  }
}

describe('AdamW', () => {
  test('two steps match the PyTorch AdamW update computed by hand', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const opt = new AdamW([['w', p]], { lr: 0.1, weightDecay: 0.01 });
    try {
      const g1 = tf.tensor1d([0.5, 0.1]);
      opt.step(new Map([['w', g1]]));
      // p*(1 - lr*wd) - lr/(1-b1) * m/(sqrt(v)/sqrt(1-b2) + eps), m = 0.1 g, v = 0.001 g²: the step is lr*sign(g)
      assertAllClose(p, [0.999 - (0.1 / (1 - 0.9)) * (0.05 / (0.5 + 1e-8)), -1.998 - (0.1 / (1 - 0.9)) * (0.01 / (0.1 + 1e-8))], { atol: 1e-7, rtol: 1e-6 });
      assertAllClose(p, [0.899, -2.098], { atol: 1e-6, rtol: 0 });
      // Step 2 written out in double precision, element by element.
      const g2 = [-0.2, 0.3];
      const expected = [0.899, -2.098].map((p1, i) => {
        const gg1 = [0.5, 0.1][i]!;
        const m = 0.9 * (0.1 * gg1) + 0.1 * g2[i]!;
        const v = 0.999 * (0.001 * gg1 * gg1) + 0.001 * g2[i]! * g2[i]!;
        const denom = Math.sqrt(v) / Math.sqrt(1 - 0.999 ** 2) + 1e-8;
        return p1 * (1 - 0.1 * 0.01) - (0.1 / (1 - 0.9 ** 2)) * (m / denom);
      });
      const g2t = tf.tensor1d(g2);
      opt.step(new Map([['w', g2t]]), 0.1);
      assertAllClose(p, expected, { atol: 1e-6, rtol: 1e-6 });
      assert.equal(opt.stepCount, 2);
      tf.dispose([g1, g2t]);
    } finally {
      opt.dispose();
      p.dispose();
    }
  });

  test('weight decay alone (zero gradient) shrinks by lr*wd; bad options are a ConfigError', () => {
    const p = tf.variable(tf.tensor1d([2]));
    const opt = new AdamW([['w', p]], { lr: 0.5, weightDecay: 0.1 });
    const g = tf.tensor1d([0]);
    opt.step(new Map([['w', g]]));
    assertAllClose(p, [2 * (1 - 0.05)], { atol: 1e-7 });
    tf.dispose([g]);
    opt.dispose();
    p.dispose();
    assert.throws(() => new AdamW([], { beta1: 1 }), ConfigError);
    assert.throws(() => new AdamW([], { lr: -1 }), ConfigError);
  });
});

describe('schedules and clipping', () => {
  test('linear and cosine with warmup give transformers\' values', () => {
    const lin = linearScheduleWithWarmup(2, 10);
    assert.deepEqual([0, 1, 2, 6, 9, 10, 12].map(lin), [0, 0.5, 1, 0.5, 0.125, 0, 0]);
    const cos = cosineScheduleWithWarmup(2, 10);
    assertAllClose([0, 1, 2, 4, 6, 8, 10].map(cos), [0, 0.5, 1, 0.8535533905932737, 0.5, 0.14644660940672627, 0], { atol: 1e-12 });
    assertAllClose([0, 3].map(cosineScheduleWithWarmup(0, 4, 1)), [1, 0.5], { atol: 1e-12 });
    assert.deepEqual([0, 2, 5].map(constantScheduleWithWarmup(4)), [0, 0.5, 1]);
    assert.throws(() => linearScheduleWithWarmup(-1, 10), ConfigError);
  });

  test('clipGradNorm scales by maxNorm / (norm + 1e-6) only above maxNorm', () => {
    const grads = new Map([['a', tf.tensor1d([3, 4])], ['b', tf.tensor1d([12])]]);
    const clipped = clipGradNorm(grads, 1);
    assert.ok(Math.abs(clipped.totalNorm - 13) < 1e-5);
    const c = 1 / (13 + 1e-6);
    assertAllClose(clipped.grads.get('a')!, [3 * c, 4 * c], { atol: 1e-7 });
    assertAllClose(clipped.grads.get('b')!, [12 * c], { atol: 1e-7 });
    const loose = clipGradNorm(grads, 100);
    assertAllClose(loose.grads.get('a')!, [3, 4], { atol: 0, rtol: 0 });
    tf.dispose([...grads.values(), ...clipped.grads.values(), ...loose.grads.values()]);
  });

  test('seeded epoch order: a permutation, the same for the same seed, different across epochs', () => {
    const a = epochOrder(20, 5, 0);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(epochOrder(20, 5, 0), a);
    assert.notDeepEqual(epochOrder(20, 5, 1), a);
    assert.deepEqual(epochOrder(4, 5, 0, false), [0, 1, 2, 3]);
  });
});

describe('Trainer', () => {
  test('accumulated micro-batch gradients equal the big batch\'s (token-weighted)', async () => {
    const peft = makePeft({ loraDropout: 0 });
    const trainer = new Trainer({ model: peft, args: { outputDir: join(root, 'ga'), progressBar: false }, trainDataset: syntheticExamples() });
    try {
      const ex = syntheticExamples(6);
      // Random B so the LoRA path (and every adapter gradient) is non-trivial.
      for (const [name, p] of trainer.trainableParameters) if (name.includes('lora_B')) p.assign(tf.randomNormal(p.shape, 0, 0.1, 'float32', 3));
      const micro = trainer.computeGradients([collate(ex.slice(0, 2), 0), collate(ex.slice(2, 3), 0), collate(ex.slice(3), 0)]);
      const big = trainer.computeGradients([collate(ex, 0)]);
      assert.ok(Math.abs(micro.loss - big.loss) < 1e-5, `loss ${micro.loss} vs ${big.loss}`);
      assert.equal(micro.lossTokens, big.lossTokens);
      assert.deepEqual([...micro.grads.keys()].sort(), [...big.grads.keys()].sort());
      for (const [k, g] of big.grads) assertAllClose(micro.grads.get(k)!, g, { atol: 1e-6, rtol: 1e-4 }, k);
      tf.dispose([...micro.grads.values(), ...big.grads.values()]);
    } finally {
      trainer.dispose();
      peft.dispose();
    }
  });

  test('trains without leaking tensors, writes metrics, loss falls, the base stays frozen', async () => {
    const out = join(root, 'leak');
    const peft = makePeft();
    const live: number[] = [];
    const losses: number[] = [];
    const baseBefore = Float32Array.from(peft.model.getSubmodule('model.layers.0.self_attn.q_proj.base_layer').parameters()[0]!.dataSync());
    const trainer = new Trainer({
      model: peft,
      args: { outputDir: out, learningRate: 0.02, maxSteps: 12, perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 2, loggingSteps: 3, warmupSteps: 2, progressBar: false },
      trainDataset: syntheticExamples(16),
      evalDataset: syntheticExamples(4),
      callbacks: { onStep: (s) => void (live.push(tf.memory().numTensors), losses.push(s.loss)) },
    });
    try {
      const result = await trainer.train();
      assert.equal(result.globalStep, 12);
      assert.equal(result.stopReason, 'max_steps');
      assert.ok(live.slice(1).every((n) => n === live[1]), `live tensors per step: ${live.join(', ')}`);
      assert.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} -> ${losses.at(-1)}`);
      const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricsRecord);
      const train = records.filter((r) => r.loss !== undefined);
      assert.deepEqual(train.map((r) => r.step), [3, 6, 9, 12]);
      for (const r of train) {
        assert.ok(r.tokensPerSecond! > 0 && r.elapsedSeconds >= 0 && r.remainingSeconds! >= 0 && r.learningRate! > 0 && r.gradNorm! > 0, JSON.stringify(r));
      }
      assert.equal(train[3]!.remainingSeconds, 0);
      assert.ok(records.some((r) => r.evalLoss !== undefined && r.step === 12));
      assert.ok(existsSync(join(out, 'adapter_model.safetensors')) && existsSync(join(out, 'adapter_config.json')));
      const baseAfter = Float32Array.from(peft.model.getSubmodule('model.layers.0.self_attn.q_proj.base_layer').parameters()[0]!.dataSync());
      assert.deepEqual(baseAfter, baseBefore);
      // The saved adapter loads in PeftModel.fromPretrained and reproduces the trained model's eval loss.
      const loaded = await PeftModel.fromPretrained(new LlamaForCausalLM(LLAMA, { seed: 7 }), out);
      const evalTrained = trainer.evaluate();
      const evalLoaded = new Trainer({ model: loaded, args: { outputDir: out, progressBar: false, perDeviceTrainBatchSize: 4 }, trainDataset: syntheticExamples(4), evalDataset: syntheticExamples(4) });
      assert.ok(Math.abs(evalLoaded.evaluate() - evalTrained) < 1e-5);
      evalLoaded.dispose();
      loaded.dispose();
    } finally {
      trainer.dispose();
      peft.dispose();
    }
  });

  test('early stop on a target training loss, and a callback can stop', async () => {
    const peft = makePeft({ loraDropout: 0 });
    const t1 = new Trainer({ model: peft, args: { outputDir: join(root, 'early'), learningRate: 0.05, maxSteps: 200, loggingSteps: 1, targetLoss: 3.5, progressBar: false, saveFinalAdapter: false }, trainDataset: syntheticExamples() });
    const r1 = await t1.train();
    assert.equal(r1.stopReason, 'target_loss');
    assert.ok(r1.globalStep < 200);
    t1.dispose();
    const t2 = new Trainer({ model: peft, args: { outputDir: join(root, 'early2'), maxSteps: 50, progressBar: false, saveFinalAdapter: false }, trainDataset: syntheticExamples(), callbacks: { onStep: (s) => (s.step === 4 ? 'stop' : undefined) } });
    const r2 = await t2.train();
    assert.deepEqual([r2.stopReason, r2.globalStep], ['callback', 4]);
    t2.dispose();
    peft.dispose();
    assert.throws(() => new Trainer({ model: makePeft(), args: { outputDir: root, evalSteps: 2 }, trainDataset: syntheticExamples() }), ConfigError);
  });

  /** The uninterrupted 6-step run (it also writes checkpoint-3); returns its final trainable parameters. */
  async function uninterrupted(out: string): Promise<Map<string, Float32Array>> {
    const peft = makePeft();
    const trainer = new Trainer({ model: peft, args: resumeArgs(out), trainDataset: syntheticExamples() });
    await trainer.train();
    const params = copy(trainer.trainableParameters);
    trainer.dispose();
    peft.dispose();
    return params;
  }

  async function resumed(out: string, from: string | true): Promise<Map<string, Float32Array>> {
    const peft = makePeft();
    const trainer = new Trainer({ model: peft, args: { ...resumeArgs(out), resumeFromCheckpoint: from }, trainDataset: syntheticExamples() });
    const result = await trainer.train();
    assert.equal(result.globalStep, 6);
    const params = copy(trainer.trainableParameters);
    trainer.dispose();
    peft.dispose();
    return params;
  }

  let reference: Map<string, Float32Array> | undefined;

  test('resuming from checkpoint-3 ends bit-identical to the uninterrupted run', async () => {
    const out = join(root, 'resume');
    reference = await uninterrupted(out);
    const ckpt = join(out, 'checkpoint-3');
    for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'optimizer.safetensors', 'trainable_params.safetensors', 'trainer_state.json']) {
      assert.ok(existsSync(join(ckpt, f)), f);
    }
    assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('.')), [], 'no temporary folders left');
    const state = JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8')) as { globalStep: number; microBatches: number; scheduler: { lastStep: number } };
    assert.deepEqual([state.globalStep, state.microBatches, state.scheduler.lastStep], [3, 6, 3]);
    // The checkpoint's adapter is a PEFT adapter.
    const loaded = await PeftModel.fromPretrained(new LlamaForCausalLM(LLAMA, { seed: 7 }), ckpt);
    loaded.dispose();

    const again = await resumed(join(root, 'resume-b'), ckpt);
    assertBitEqual(again, reference, 'resumed vs uninterrupted');

    // A resume with different data is refused rather than silently diverging.
    const peft = makePeft();
    const bad = new Trainer({ model: peft, args: { ...resumeArgs(join(root, 'resume-c')), resumeFromCheckpoint: ckpt }, trainDataset: syntheticExamples(10) });
    await assert.rejects(bad.train(), TrainingError);
    bad.dispose();
    peft.dispose();
  });

  test('a run SIGKILLed after its checkpoint resumes to the same weights', async () => {
    reference ??= await uninterrupted(join(root, 'resume-ref'));
    const out = join(root, 'killed');
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures/train-child.ts'), out], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('SAVED')) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => reject(new Error(`child exited before saving: ${stdout}`)));
    });
    assert.equal(await exit, 'SIGKILL');
    assert.ok(existsSync(join(out, 'checkpoint-3', 'trainer_state.json')));
    assert.ok(!existsSync(join(out, 'checkpoint-6')), 'the child did not finish');
    const again = await resumed(out, true);
    assertBitEqual(again, reference, 'resumed after SIGKILL vs uninterrupted');
  });
});
