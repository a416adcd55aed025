// Real data through the CLI: `peft-ts train` on WikiSQL (text records) with --eval-data on a tiny random Llama
// whose vocabulary is the tiny GPT-2 tokenizer's. The validation loss falls and the saved adapter loads with
// PeftModel.fromPretrained. Skipped when ../shared/realdata is absent.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { PeftModel } from '../../src/peft-model.js';
import type { MetricsRecord } from '../../src/training/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';
import { cliOk, writeTinyLlama } from './helpers.js';

process.env['PEFT_TS_QUIET'] = '1';
const skip = skipReason('wikisql', 'train.jsonl') || skipReason('wikisql', 'valid.jsonl') || skipReason('tiny-random-gpt2', 'tokenizer.json');
let tmp: string;

before(async () => {
  await setBackend();
  tmp = await mkdtemp(join(tmpdir(), 'peft-ts-cli-wikisql-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('peft-ts train on WikiSQL: validation loss falls; the adapter loads with PeftModel.fromPretrained', { skip }, async () => {
  const model = join(tmp, 'tiny-llama');
  await writeTinyLlama(model, { hidden: 64, maxPositions: 128 });
  const out = join(tmp, 'adapter');
  const started = performance.now();
  const r = await cliOk(
    'train', '--model', model, '--data', realdataPath('wikisql', 'train.jsonl')!, '--eval-data', realdataPath('wikisql', 'valid.jsonl')!,
    '--out', out, '--method', 'lora', '--r', '8', '--alpha', '16', '--target-modules', 'all-linear',
    '--packing', '--max-length', '64', '--limit', '240', '--eval-limit', '20',
    '--max-steps', '50', '--batch-size', '8', '--lr', '3e-2', '--warmup-steps', '4', '--scheduler', 'cosine', '--weight-decay', '0.01',
    '--eval-steps', '25', '--logging-steps', '10', '--seed', '1',
  );
  const seconds = (performance.now() - started) / 1000;
  const evals = readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l !== '')
    .map((l) => JSON.parse(l) as MetricsRecord).filter((m) => m.evalLoss !== undefined);
  assert.deepEqual(evals.map((m) => m.step), [0, 25, 50]);
  const [first, , last] = evals.map((m) => m.evalLoss!);
  console.log(`CLI WikiSQL: validation loss ${first!.toFixed(4)} -> ${last!.toFixed(4)} in 50 steps (${seconds.toFixed(1)} s)`);
  assert.ok(first! > 6.5, `initial loss ${first} (random model: about ln 1000 = 6.91)`);
  assert.ok(last! < first! - 1.5, `validation loss ${first} -> ${last}`);
  assert.match(r.stdout, /^eval: .*valid\.jsonl: \d+ examples/m);
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(model), out);
  try {
    assert.equal(peft.peftConfig.get('default')?.peftType, 'LORA');
  } finally {
    peft.dispose();
  }
});
