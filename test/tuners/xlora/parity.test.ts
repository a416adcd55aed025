// X-LoRA parity with PEFT 0.21.2 on the fixtures test/fixtures/parity/adapters/xlora-llama* (see tools/parity):
// scalings, logits, disabled output and greedy decoding, for classifiers and experts saved by PEFT; then the
// same through a peft-ts save (self-contained) and through the original package's layout.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../../src/io/index.js';
import { AutoModelForCausalLM } from '../../../src/models/auto.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import { fromPretrained, processLayerScalings } from '../../../src/tuners/xlora/index.js';
import type { XLoraModel } from '../../../src/tuners/xlora/index.js';
import { getAdapterStateDict } from '../../../src/tuners/adapter-state.js';
import { savePeftConfig } from '../../../src/tuners/config.js';
import { repoRoot } from '../adapter-parity-suite.js';

interface Reference {
  base_model: string;
  generation: { greedy_padded: { kwargs: { max_new_tokens: number; eos_token_id: number; pad_token_id: number }; sequences: number[][] } };
}

for (const name of ['xlora-llama', 'xlora-llama-softmax-topk']) {
  const dir = join(repoRoot, 'test/fixtures/parity/adapters', name);
  describe(`X-LoRA parity with PEFT: ${name}`, { skip: existsSync(dir) ? false : `no fixture ${name}` }, () => {
    let ref: Reference;
    let tensors: Map<string, tf.Tensor>;
    let model: XLoraModel;
    const tol = 1e-4;
    const inputs = () => ({ inputIds: tensors.get('input_ids')!, attentionMask: tensors.get('attention_mask')! });
    const mask = () => tensors.get('attention_mask')!;
    const logitsOf = (m: XLoraModel) => {
      const out = m.forward(inputs());
      const logits = out.logits;
      out.loss?.dispose();
      return logits;
    };
    const close = (actual: tf.Tensor, key: string) => {
      const expected = tensors.get(key)!;
      const err = tf.tidy(() => {
        // Padded query positions are not part of the contract: compare where the attention mask is 1.
        const m = tf.cast(mask(), 'float32');
        const weight = actual.rank === 4 ? m.reshape([...m.shape, 1, 1]) : m.reshape([...m.shape, 1]);
        return tf.max(tf.mul(tf.abs(tf.sub(actual, expected)), weight)).dataSync()[0]!;
      });
      actual.dispose();
      assert.ok(err <= tol, `${key}: max abs error ${err}`);
    };
    const baseModel = () => AutoModelForCausalLM.fromPretrained(join(repoRoot, ref.base_model));

    before(async () => {
      await setBackend();
      ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
      tensors = await loadSafetensors(join(dir, 'reference.safetensors'));
      model = await fromPretrained(dir, await baseModel());
    });
    after(() => {
      model?.dispose();
      for (const t of tensors?.values() ?? []) t.dispose();
    });

    test('predicted scalings, per-layer effective scalings and logits match PEFT', () => {
      close(logitsOf(model), 'logits');
      const scalings = model.getLatestScalings()!;
      const effective = tf.tidy(() =>
        tf.stack(
          Array.from({ length: model.numLayers }, (_, l) =>
            processLayerScalings(tf.squeeze(tf.slice(scalings, [0, 0, l, 0], [-1, -1, 1, -1]), [2]) as tf.Tensor3D, model.getTopkLora(), model.config.enableSoftmaxTopk),
          ),
          2,
        ),
      );
      close(scalings, 'scalings');
      close(effective, 'effective_scalings');
    });

    test('with adapters disabled the output is PEFT\'s disabled output', () => {
      close(model.disableAdapter(() => logitsOf(model)), 'disabled.logits');
    });

    test('greedy decoding matches PEFT, cached (one cache per pass) and uncached', async () => {
      const g = ref.generation.greedy_padded;
      for (const useCache of [true, false]) {
        const out = await model.generate(tensors.get('input_ids')!, {
          attentionMask: mask(),
          maxNewTokens: g.kwargs.max_new_tokens,
          eosTokenId: g.kwargs.eos_token_id,
          padTokenId: g.kwargs.pad_token_id,
          useCache,
        });
        assert.deepEqual(out, g.sequences, `useCache ${useCache}`);
      }
    });

    test('a peft-ts save is self-contained and reloads to the same outputs', async () => {
      const out = mkdtempSync(join(tmpdir(), 'xlora-save-'));
      try {
        await model.savePretrained(out);
        const reloaded = await fromPretrained(out, await baseModel());
        close(logitsOf(reloaded), 'logits');
        reloaded.dispose();
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    test('the original package layout (xlora_config.json, inner.N/last classifier keys) loads too', async () => {
      const out = mkdtempSync(join(tmpdir(), 'xlora-original-'));
      try {
        writeFileSync(join(out, 'xlora_config.json'), model.currentConfig().toOriginalJson());
        const linear = model.internal_xlora_classifier.linearIndices();
        const renamed = new Map<string, tf.Tensor>();
        for (const [key, value] of Object.entries(model.internal_xlora_classifier.stateDict())) {
          const [, index, param] = /^layers\.(\d+)\.(\w+)$/.exec(key)!;
          renamed.set(Number(index) === linear.at(-1) ? `last.${param}` : `inner.${index}.${param}`, value);
        }
        await saveSafetensors(join(out, 'xlora_classifier.safetensors'), renamed, { metadata: { format: 'pt' } });
        for (const expert of model.experts) {
          await mkdir(join(out, expert));
          const state = getAdapterStateDict(model.lora_model, expert);
          await saveSafetensors(join(out, expert, 'adapter_model.safetensors'), state, { metadata: { format: 'pt' } });
          for (const t of state.values()) t.dispose();
          await savePeftConfig(join(out, expert), model.lora_model.peftConfig.get(expert)!);
        }
        const reloaded = await fromPretrained(out, await baseModel(), [...model.experts]);
        close(logitsOf(reloaded), 'logits');
        reloaded.dispose();
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    test('no tensors leak across forward and generate', async () => {
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        disposeOutput(model.forward(inputs()));
        await model.generate([[1, 2, 3]], { maxNewTokens: 3 });
      }
      assert.equal(tf.memory().numTensors, before);
    });
  });
}
