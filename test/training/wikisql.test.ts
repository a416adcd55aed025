// Real data end to end: WikiSQL (text records) trains a LoRA adapter on a tiny random Llama whose vocabulary is
// the tiny GPT-2 tokenizer's; the validation loss falls, and the saved adapter loads in PeftModel.fromPretrained
// with the same validation loss. Skipped when ../shared/realdata is absent.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { LlamaForCausalLM } from '../../src/models/llama/index.js';
import { PeftModel, getPeftModel } from '../../src/peft-model.js';
import { AutoTokenizer } from '../../src/tokenizers/index.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import { Trainer, loadJsonlDataset } from '../../src/training/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';

process.env['PEFT_TS_QUIET'] = '1';
const skip = skipReason('wikisql', 'train.jsonl') || skipReason('tiny-random-gpt2', 'tokenizer.json');
let out: string;

before(async () => {
  await setBackend();
  out = await mkdtemp(join(tmpdir(), 'peft-ts-wikisql-'));
});
after(async () => {
  await rm(out, { recursive: true, force: true });
});

test('WikiSQL trains a LoRA adapter on a tiny Llama: validation loss falls; the adapter reloads', { skip }, async () => {
  const tok = await AutoTokenizer.fromPretrained(realdataPath('tiny-random-gpt2')!);
  const config = {
    vocab_size: tok.vocabSize, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, max_position_embeddings: 128, initializer_range: 0.2, tie_word_embeddings: false,
  };
  assert.equal(tok.vocabSize, 1000);
  const train = await loadJsonlDataset(realdataPath('wikisql', 'train.jsonl')!, tok, { maxLength: 64, packing: true, limit: 240 });
  const valid = await loadJsonlDataset(realdataPath('wikisql', 'valid.jsonl')!, tok, { maxLength: 64, packing: true, limit: 20 });
  assert.deepEqual([train.problems, valid.problems], [[], []]);
  const base = new LlamaForCausalLM(config, { seed: 1 });
  const peft = getPeftModel(base, new LoraConfig({ targetModules: 'all-linear', r: 8, loraAlpha: 16, taskType: 'CAUSAL_LM' }));
  const trainer = new Trainer({
    model: peft,
    args: { outputDir: out, learningRate: 3e-2, maxSteps: 50, perDeviceTrainBatchSize: 8, warmupSteps: 4, lrSchedulerType: 'cosine', loggingSteps: 10, evalSteps: 25, weightDecay: 0.01, progressBar: false },
    trainDataset: train.examples,
    evalDataset: valid.examples,
    padTokenId: tok.eosTokenId!,
  });
  try {
    const before = trainer.evaluate();
    const started = performance.now();
    const result = await trainer.train();
    const after = result.evalLoss!;
    console.log(`WikiSQL: ${train.examples.length} train / ${valid.examples.length} valid blocks of 64 tokens; ` +
      `validation loss ${before.toFixed(4)} -> ${after.toFixed(4)} in ${result.globalStep} steps (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    assert.ok(before > 6.5, `initial loss ${before} (a random model: at least ln 1000 = 6.91)`);
    assert.ok(after < before - 1.5, `validation loss ${before} -> ${after}`);
    const reloaded = await PeftModel.fromPretrained(new LlamaForCausalLM(config, { seed: 1 }), out);
    const check = new Trainer({ model: reloaded, args: { outputDir: out, progressBar: false }, trainDataset: valid.examples, evalDataset: valid.examples });
    assert.ok(Math.abs(check.evaluate() - after) < 1e-4);
    check.dispose();
    reloaded.dispose();
  } finally {
    trainer.dispose();
    peft.dispose();
  }
});
