// `peft-ts train`, `xlora train`, `generate` and `scalings` end to end on a tiny random Llama with the tiny GPT-2
// tokenizer (vocabulary 1000), in a temporary folder.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { PeftModel, getPeftModel } from '../../src/peft-model.js';
import { AutoTokenizer } from '../../src/tokenizers/index.js';
import type { MetricsRecord } from '../../src/training/index.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import { fromPretrained as xloraFromPretrained } from '../../src/tuners/xlora/io.js';
import { cli, cliOk, tokenizerSkip, writeTinyJsonl, writeTinyLlama } from './helpers.js';

process.env['PEFT_TS_QUIET'] = '1';

function metrics(dir: string): MetricsRecord[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as MetricsRecord);
}

describe('CLI training and generation on a tiny Llama', { skip: tokenizerSkip }, () => {
  let tmp: string;
  let model: string;
  let data: string;
  let evalData: string;
  const trainArgs = (out: string, ...extra: string[]) => [
    'train', '--model', model, '--data', data, '--out', out, '--r', '4', '--alpha', '8', '--target-modules', 'q_proj,v_proj,down_proj',
    '--lr', '1e-2', '--batch-size', '4', '--max-length', '32', '--logging-steps', '2', '--seed', '1', ...extra,
  ];

  before(async () => {
    await setBackend();
    tmp = await mkdtemp(join(tmpdir(), 'peft-ts-cli-train-'));
    model = join(tmp, 'tiny-llama');
    await writeTinyLlama(model);
    data = join(tmp, 'train.jsonl');
    evalData = join(tmp, 'valid.jsonl');
    await writeTinyJsonl(data, 32);
    await writeTinyJsonl(evalData, 8, 1);
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('train (LoRA): the loss falls, the adapter is saved and loads with PeftModel.fromPretrained', async () => {
    const out = join(tmp, 'lora');
    const r = await cliOk(...trainArgs(out, '--max-steps', '12', '--eval-data', evalData, '--eval-steps', '6'));
    assert.match(r.stdout, /^trainable params: [\d,]+ \|\| all params/m);
    assert.match(r.stdout, /^step 12\/12 {2}loss /m);
    assert.match(r.stdout, /^saved adapter to /m);
    const records = metrics(out);
    const losses = records.filter((m) => m.loss !== undefined).map((m) => m.loss!);
    assert.ok(losses.at(-1)! < losses[0]!, `training loss ${losses.join(', ')}`);
    const evals = records.filter((m) => m.evalLoss !== undefined);
    assert.deepEqual(evals.map((m) => m.step), [0, 6, 12]);
    assert.ok(evals.at(-1)!.evalLoss! < evals[0]!.evalLoss!, `eval loss ${evals.map((m) => m.evalLoss).join(', ')}`);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; r: number; lora_alpha: number; target_modules: string[] };
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, 4);
    assert.equal(config.lora_alpha, 8);
    assert.deepEqual([...config.target_modules].sort(), ['down_proj', 'q_proj', 'v_proj']);
    const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(model), out);
    peft.dispose();
  });

  test('train (LoHa) with --packing saves a LoHa adapter', async () => {
    const out = join(tmp, 'loha');
    const r = await cliOk(...trainArgs(out, '--method', 'loha', '--max-steps', '4', '--packing'));
    assert.match(r.stdout, /^done: 4 steps/m);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; r: number; alpha: number };
    assert.deepEqual([config.peft_type, config.r, config.alpha], ['LOHA', 4, 8]);
    const inspected = await cliOk('inspect', out);
    assert.match(inspected.stdout, /^method: LoHa, PEFT layout$/m);
    const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(model), out);
    peft.dispose();
  });

  test('train --resume continues from the newest checkpoint to the same adapter', async () => {
    const full = join(tmp, 'resume-full');
    await cliOk(...trainArgs(full, '--max-steps', '6', '--save-steps', '3'));
    assert.ok(existsSync(join(full, 'checkpoint-3')) && existsSync(join(full, 'checkpoint-6')));
    const part = join(tmp, 'resume-part');
    await cliOk(...trainArgs(part, '--max-steps', '6', '--save-steps', '3'));
    await rm(join(part, 'checkpoint-6'), { recursive: true });
    await rm(join(part, 'adapter_model.safetensors'));
    const r = await cliOk(...trainArgs(part, '--max-steps', '6', '--save-steps', '3', '--resume'));
    assert.match(r.stdout, /^done: 6 steps/m);
    assert.deepEqual(readFileSync(join(part, 'adapter_model.safetensors')), readFileSync(join(full, 'adapter_model.safetensors')));
  });

  test('generate streams the greedy continuation (with and without an adapter)', async () => {
    const adapter = join(tmp, 'lora');
    const tok = await AutoTokenizer.fromPretrained(model);
    const prompt = 'the red sees';
    for (const withAdapter of [false, true]) {
      const base = await AutoModelForCausalLM.fromPretrained(model);
      const m = withAdapter ? await PeftModel.fromPretrained(base, adapter) : base;
      const ids = tok.encode(prompt);
      const [row] = await m.generate([ids], { maxNewTokens: 8 });
      m.dispose();
      const expected = tok.decode(row!.slice(ids.length), { skipSpecialTokens: true });
      const pieces: string[] = [];
      const { run } = await import('../../src/cli/index.js');
      const code = await run(['generate', '--model', model, ...(withAdapter ? ['--adapter', adapter] : []), '--prompt', prompt, '--max-new-tokens', '8'], {
        stdout: (t) => void pieces.push(t),
        stderr: (t) => assert.fail(`stderr: ${t}`),
      });
      assert.equal(code, 0);
      assert.equal(pieces.join(''), expected + '\n');
      assert.ok(pieces.length >= 2, 'streamed in pieces');
    }
    const sampled = await cliOk('generate', '--model', model, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '6', '--do-sample', '--temperature', '0.8', '--top-p', '0.9', '--seed', '3');
    const again = await cliOk('generate', '--model', model, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '6', '--do-sample', '--temperature', '0.8', '--top-p', '0.9', '--seed', '3');
    assert.equal(sampled.stdout, again.stdout, 'seeded sampling repeats');
    const beams = await cliOk('generate', '--model', model, '--prompt', prompt, '--max-new-tokens', '5', '--num-beams', '2');
    assert.ok(beams.stdout.endsWith('\n'));
    const bad = await cli('generate', '--model', model, '--prompt', prompt, '--temperature', '0.5');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^peft-ts: --temperature, --top-p and --top-k apply to sampling: add --do-sample\.\n$/);
  });

  test('xlora train, generate --xlora --scalings-log, scalings heatmap', async () => {
    const experts: string[] = [];
    for (const seed of [11, 12]) {
      const dir = join(tmp, `expert-${seed}`);
      const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(model), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], initLoraWeights: false, taskType: 'CAUSAL_LM' }), { seed });
      await peft.savePretrained(dir);
      peft.dispose();
      experts.push(dir);
    }
    const out = join(tmp, 'xlora');
    const r = await cliOk('xlora', 'train', '--model', model, '--experts', `a=${experts[0]}`, `b=${experts[1]}`, '--data', data, '--out', out,
      '--depth', '2', '--size', '8', '--layerwise', '--max-steps', '4', '--batch-size', '4', '--max-length', '32', '--lr', '1e-2', '--logging-steps', '2');
    assert.match(r.stdout, /^done: 4 steps/m);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; xlora_depth: number; layerwise_scalings: boolean; adapters: Record<string, string> };
    assert.deepEqual([config.peft_type, config.xlora_depth, config.layerwise_scalings, Object.keys(config.adapters)], ['XLORA', 2, true, ['a', 'b']]);
    const loaded = await xloraFromPretrained(out, await AutoModelForCausalLM.fromPretrained(model));
    loaded.dispose();
    const inspected = JSON.parse((await cliOk('inspect', out, '--json')).stdout) as { method: string; xlora: { experts: { name: string }[] } };
    assert.equal(inspected.method, 'X-LoRA');
    assert.deepEqual(inspected.xlora.experts.map((e) => e.name), ['a', 'b']);

    const log = join(out, 'scalings');
    const g = await cliOk('generate', '--model', model, '--xlora', out, '--prompt', 'the red sees', '--max-new-tokens', '4', '--scalings-log', log);
    assert.ok(g.stdout.endsWith('\n'));
    const tokens = JSON.parse(readFileSync(`${log}-tokens.json`, 'utf8')) as string[];
    const svg = join(out, 'heatmap.svg');
    const s = await cliOk('scalings', log, '--out', svg, '--tokens', `${log}-tokens.json`, '--experts', 'a,b', '--layer', '0');
    assert.match(s.stdout, new RegExp(`^wrote .*heatmap\\.svg: ${tokens.length} tokens x 2 experts`, 'm'));
    const text = readFileSync(svg, 'utf8');
    assert.match(text, /^<svg/);
    const mean = await cliOk('scalings', log, '--out', join(out, 'first.svg'), '--entry', '0');
    assert.match(mean.stdout, /layer mean/);
    const bad = await cli('scalings', log, '--out', join(out, 'x.svg'), '--tokens', `${log}-tokens.json`, '--entry', '0');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^peft-ts: --tokens has \d+ tokens but the scalings cover \d+ positions\.\n$/);
  });
});
