// The original package's convenience loader: base model + tokenizer (pad = EOS, right padding) + X-LoRA.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { loadSafetensors } from '../../../src/io/index.js';
import { loadModel, XLoraModel } from '../../../src/tuners/xlora/index.js';
import { realdataPath, skipReason } from '../../helpers/realdata.js';
import { repoRoot } from '../adapter-parity-suite.js';

const fixture = join(repoRoot, 'test/fixtures/parity/adapters/xlora-llama');

describe('loadModel (xlora_utils.load_model)', { skip: skipReason('tokenizers', 'llama_tokenizer.json') }, () => {
  before(async () => {
    await setBackend();
  });

  test('returns the X-LoRA model with the fixture outputs and a right-padding tokenizer whose pad is EOS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xlora-load-model-'));
    try {
      cpSync(fixture, dir, { recursive: true });
      cpSync(realdataPath('tokenizers', 'llama_tokenizer.json')!, join(dir, 'tokenizer.json'));
      cpSync(realdataPath('tokenizers', 'llama_tokenizer_config.json')!, join(dir, 'tokenizer_config.json'));
      const { model, tokenizer } = await loadModel({ modelName: join(repoRoot, 'test/fixtures/parity/models/llama'), fineTuneModelName: dir });
      assert.ok(model instanceof XLoraModel);
      assert.equal(tokenizer.padToken, tokenizer.eosToken);
      assert.equal(tokenizer.paddingSide, 'right');
      const ref = await loadSafetensors(join(fixture, 'reference.safetensors'));
      const out = model.forward({ inputIds: ref.get('input_ids')!, attentionMask: ref.get('attention_mask')! });
      const err = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(out.logits, [0], [1]), tf.slice(ref.get('logits')!, [0], [1])))).dataSync()[0]!);
      assert.ok(err <= 1e-4, `logits max abs error ${err}`);
      out.logits.dispose();
      for (const t of ref.values()) t.dispose();
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
