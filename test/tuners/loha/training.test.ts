// LoHa trains: on the parity Llama (causal LM, memorising fixed sequences) and on the tiny conv net (Tucker-form
// convolutions, memorising labels), with tf.train.adam over the trainable variables. Only hada_* tensors change;
// every base weight stays bit for bit the same.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { AutoModelForCausalLM } from '../../../src/models/auto.js';
import { crossEntropy } from '../../../src/models/loss.js';
import type { Parameter } from '../../../src/nn/index.js';
import { PeftModel, getPeftModel } from '../../../src/peft-model.js';
import type { AdaptableModel } from '../../../src/peft-model.js';
import { LoHaConfig } from '../../../src/tuners/loha/config.js';
import { repoRoot } from '../adapter-parity-suite.js';
import { TinyConvNet } from '../tiny-convnet.js';

before(async () => {
  await setBackend();
});

const HADA = /\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)\.default$/;

/** Runs `steps` Adam steps on `loss` over the model's trainable variables; returns the losses. */
function train(peft: PeftModel<AdaptableModel>, loss: () => tf.Scalar, steps: number, learningRate: number): number[] {
  const vars = peft.parameters().filter((p) => p.trainable);
  const optimizer = tf.train.adam(learningRate);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const { value, grads } = tf.variableGrads(loss, vars);
    optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    losses.push(value.dataSync()[0]!);
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
  }
  optimizer.dispose();
  return losses;
}

/** Copies of every parameter's values, by name. */
function snapshot(peft: PeftModel<AdaptableModel>): Map<string, { param: Parameter; values: Float32Array }> {
  return new Map([...peft.namedParameters()].map(([name, param]) => [name, { param, values: (param.dataSync() as Float32Array).slice() }]));
}

/** Asserts the trainable tensors are exactly the hada_* ones, all changed, and every other tensor is bit-identical. */
function assertOnlyHadaChanged(before: Map<string, { param: Parameter; values: Float32Array }>, expectTucker: boolean): void {
  const trainable = [...before].filter(([, { param }]) => param.trainable).map(([n]) => n);
  assert.ok(trainable.length > 0 && trainable.every((n) => HADA.test(n)), `trainable: ${trainable.join(', ')}`);
  assert.equal(trainable.some((n) => n.includes('.hada_t1.')), expectTucker);
  for (const [name, { param, values }] of before) {
    const now = param.dataSync();
    if (param.trainable) assert.ok(now.some((v, i) => v !== values[i]), `${name} did not change`);
    else assert.ok(now.every((v, i) => Object.is(v, values[i])), `base tensor ${name} changed`);
  }
}

describe('LoHa training', () => {
  test('Llama (parity fixture): memorises 4 sequences of 12 tokens, loss 6.9 -> < 0.1 in 60 Adam steps', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(join(repoRoot, 'test/fixtures/parity/models/llama'));
    const peft = getPeftModel(model as unknown as AdaptableModel, new LoHaConfig({
      taskType: 'CAUSAL_LM', r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    }));
    peft.train();
    let s = 12345;
    const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    const ids = Array.from({ length: 4 }, () => Array.from({ length: 12 }, () => 3 + Math.floor(rand() * 250)));
    const loss = () => {
      const out = (peft.model as unknown as typeof model).forward({ inputIds: ids, labels: ids });
      out.logits.dispose();
      return out.loss!;
    };
    const before = snapshot(peft);
    const losses = train(peft, loss, 60, 1e-2);
    assert.ok(losses[0]! > 5, `initial loss ${losses[0]}`);
    assert.ok(losses.at(-1)! < 0.1, `final loss ${losses.at(-1)} (losses: ${losses.filter((_, i) => i % 10 === 0).map((l) => l.toFixed(3)).join(', ')})`);
    assertOnlyHadaChanged(before, false);
    peft.dispose();
  });

  test('tiny conv net (Conv1d/Conv2d Tucker, 1x1 Conv2d and Linear flat): memorises 16 labels, loss < 0.05 in 60 steps; the trained adapter saves and reloads', async () => {
    const peft = getPeftModel(new TinyConvNet({ seed: 3 }), new LoHaConfig({
      r: 4, alpha: 8, targetModules: ['conv1d', 'conv2d', 'conv2d_1x1', 'linear'], useEffectiveConv2d: true,
    }), { seed: 4 });
    peft.train();
    const x = tf.randomNormal([16, 4, 16], 0, 1, 'float32', 1);
    const labels = tf.tensor1d(Array.from({ length: 16 }, (_, i) => (i * 7) % 5), 'int32');
    const loss = () => crossEntropy(peft.forward(x) as tf.Tensor2D, labels);
    const before = snapshot(peft);
    const losses = train(peft, loss, 60, 1e-2);
    assert.ok(losses[0]! > 1, `initial loss ${losses[0]}`);
    assert.ok(losses.at(-1)! < 0.05, `final loss ${losses.at(-1)} (losses: ${losses.filter((_, i) => i % 10 === 0).map((l) => l.toFixed(3)).join(', ')})`);
    assertOnlyHadaChanged(before, true);

    peft.eval();
    const trained = peft.forward(x);
    const dir = mkdtempSync(join(tmpdir(), 'peft-ts-loha-trained-'));
    try {
      await peft.savePretrained(dir);
      const fresh = new TinyConvNet({ seed: 3 });
      const reloaded = await PeftModel.fromPretrained(fresh, dir);
      const again = reloaded.forward(x);
      assert.equal(tf.max(tf.abs(tf.sub(again, trained))).dataSync()[0], 0);
      reloaded.dispose();
      again.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const t of [x, labels, trained]) t.dispose();
    peft.dispose();
  });
});
