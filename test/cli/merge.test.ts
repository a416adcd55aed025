// `peft-ts merge`: the merged parity fixture loads with AutoModelForCausalLM and reproduces PEFT's merged logits;
// a tied model is saved without `lm_head.weight`, as transformers does, and still computes the adapter's outputs.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setBackend, tf } from '../../src/engine/index.js';
import { SafetensorsFile, loadSafetensors } from '../../src/io/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { disposeOutput } from '../../src/models/outputs.js';
import { PeftModel, getPeftModel } from '../../src/peft-model.js';
import { LoraConfig } from '../../src/tuners/lora/config.js';
import { cli, tokenizerSkip, writeTinyLlama } from './helpers.js';

process.env['PEFT_TS_QUIET'] = '1';
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = join(repoRoot, 'test/fixtures/parity');
let tmp: string;

before(async () => {
  await setBackend();
  tmp = await mkdtemp(join(tmpdir(), 'peft-ts-cli-merge-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Max |a - b| over the positions the mask attends to (logits [B, S, V], mask [B, S]). */
function maskedMaxAbsDiff(a: tf.Tensor, b: tf.Tensor, mask: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.mul(tf.abs(tf.sub(a, b)), tf.expandDims(tf.cast(mask, 'float32'), -1))).dataSync()[0]!);
}

test('merge: the fixture LoRA merged into the fixture Llama loads and gives PEFT merged logits (1e-4)', async () => {
  const out = join(tmp, 'merged-llama');
  const r = await cli('merge', '--model', join(fixtures, 'models/llama'), '--adapter', join(fixtures, 'adapters/lora-llama-qv'), '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^merged /m);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), JSON.parse(readFileSync(join(fixtures, 'models/llama/config.json'), 'utf8')));
  const header = await SafetensorsFile.open(join(out, 'model.safetensors'));
  const keys = header.keys();
  await header.close();
  assert.ok(keys.includes('lm_head.weight'), 'an untied head is written');
  assert.ok(!keys.some((k) => k.includes('lora')), 'no adapter tensors');

  const ref = await loadSafetensors(join(fixtures, 'adapters/lora-llama-qv/reference.safetensors'));
  const model = await AutoModelForCausalLM.fromPretrained(out);
  try {
    const output = model.forward({ inputIds: ref.get('input_ids')!, attentionMask: ref.get('attention_mask')! });
    const err = maskedMaxAbsDiff(output.logits, ref.get('merged.logits')!, ref.get('attention_mask')!);
    disposeOutput(output);
    assert.ok(err <= 1e-4, `merged logits max abs error ${err}`);
    // The merged weights themselves equal PEFT's.
    const state = model.stateDict();
    for (const [key, expected] of ref) {
      if (!key.startsWith('merged.') || key === 'merged.logits') continue;
      const name = key.slice('merged.'.length);
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(state[name]!, expected))).dataSync()[0]!);
      assert.ok(diff <= 1e-5, `${name}: ${diff}`);
    }
  } finally {
    model.dispose();
    for (const t of ref.values()) t.dispose();
  }
});

test('merge: tied embeddings are written once (no lm_head.weight); tokenizer files are copied', { skip: tokenizerSkip }, async () => {
  const baseDir = join(tmp, 'tied');
  await writeTinyLlama(baseDir, { tied: true, seed: 3 });
  const adapterDir = join(tmp, 'tied-adapter');
  const inputIds = tf.tensor2d([[5, 17, 99, 300, 42, 7]], undefined, 'int32');
  let expected: tf.Tensor;
  {
    const base = await AutoModelForCausalLM.fromPretrained(baseDir);
    const peft = getPeftModel(base, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], initLoraWeights: false, taskType: 'CAUSAL_LM' }), { seed: 5 });
    await peft.savePretrained(adapterDir);
    const out = peft.forward({ inputIds });
    expected = out.logits;
    peft.dispose();
  }
  const out = join(tmp, 'tied-merged');
  const r = await cli('merge', '--model', baseDir, '--adapter', adapterDir, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /tied, not written: lm_head\.weight/);
  const header = await SafetensorsFile.open(join(out, 'model.safetensors'));
  const keys = header.keys();
  await header.close();
  assert.ok(!keys.includes('lm_head.weight'), 'lm_head.weight is not written when tied');
  assert.ok(keys.includes('model.embed_tokens.weight'));
  assert.ok(existsSync(join(out, 'tokenizer.json')) && existsSync(join(out, 'tokenizer_config.json')));
  const merged = await AutoModelForCausalLM.fromPretrained(out);
  try {
    const o = merged.forward({ inputIds });
    const err = tf.tidy(() => tf.max(tf.abs(tf.sub(o.logits, expected))).dataSync()[0]!);
    disposeOutput(o);
    assert.ok(err <= 1e-4, `merged vs adapter logits ${err}`);
    // The reloaded adapter still loads on the base (sanity of the saved adapter).
    const again = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(baseDir), adapterDir);
    again.dispose();
  } finally {
    merged.dispose();
    expected.dispose();
    inputIds.dispose();
  }
});

test('merge: --out equal to --model is refused', async () => {
  const dir = join(fixtures, 'models/llama');
  const r = await cli('merge', '--model', dir, '--adapter', join(fixtures, 'adapters/lora-llama-qv'), '--out', dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^peft-ts: --out must differ from --model/);
});
