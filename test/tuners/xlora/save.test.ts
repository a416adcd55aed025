// What XLoraModel.savePretrained writes: PEFT's classifier key numbering (j-th Linear at layers.{j*3} with dropout,
// layers.{j*2} without), so PEFT loads the folder instead of silently keeping a random last Linear.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import { loadSafetensors } from '../../../src/io/index.js';
import { addXLoraToModel, fromPretrained, XLoraConfig } from '../../../src/tuners/xlora/index.js';
import { assertAllClose } from '../../helpers/assert.js';
import { HIDDEN, saveExpert, tempDir, tinyLlama } from './fixture.js';

describe('X-LoRA save layout', () => {
  before(async () => {
    await setBackend();
  });

  for (const [dropout, expected] of [
    [0.2, ['layers.0', 'layers.3', 'layers.6']],
    [0, ['layers.0', 'layers.2', 'layers.4']],
  ] as const) {
    test(`depth 3, xlora_dropout_p ${dropout}: Linear keys ${expected.join(', ')}; reload gives the same scalings`, async () => {
      const { dir, cleanup } = tempDir('xlora-save-');
      try {
        const experts: Record<string, string> = {};
        for (const [i, name] of ['a', 'b'].entries()) {
          experts[name] = join(dir, 'experts', name);
          await saveExpert(experts[name]!, { r: 2, loraAlpha: 4, targetModules: ['q_proj'], seed: 10 + i });
        }
        const config = new XLoraConfig({ hiddenSize: HIDDEN, xloraDepth: 3, xloraSize: 8, xloraDropoutP: dropout, adapters: experts });
        const model = (await addXLoraToModel({ model: tinyLlama(), xloraConfig: config, seed: 3 })).eval();
        const out = join(dir, 'saved');
        await model.savePretrained(out);
        const tensors = await loadSafetensors(join(out, 'adapter_model.safetensors'));
        const linears = [...new Set([...tensors.keys()].map((k) => /internal_xlora_classifier\.(layers\.\d+)\./.exec(k)![1]!))].sort();
        assert.deepEqual(linears, [...expected]);
        for (const t of tensors.values()) t.dispose();
        const reloaded = await fromPretrained(out, tinyLlama());
        const ids = [[1, 2, 3, 4]];
        model.forward({ inputIds: ids }).logits.dispose();
        reloaded.forward({ inputIds: ids }).logits.dispose();
        const [a, b] = [model.getLatestScalings()!, reloaded.getLatestScalings()!];
        assertAllClose(b, a, { atol: 1e-6, rtol: 1e-6 });
        for (const t of [a, b]) t.dispose();
        model.dispose();
        reloaded.dispose();
      } finally {
        cleanup();
      }
    });
  }
});
