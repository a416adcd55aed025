// getPeftModel(model, config, { seed }) makes LoRA's initial weights reproducible (peft-ts only).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { LlamaForCausalLM } from '../../../src/models/llama/modeling.js';

const base = () =>
  new LlamaForCausalLM({ vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2 }, { seed: 1 });
const config = new LoraConfig({ r: 2, targetModules: ['q_proj', 'v_proj'], initLoraWeights: false });

before(async () => {
  await setBackend();
});

test('the same seed gives the same adapter weights; another seed and each module differ', () => {
  const weights = (seed: number) => {
    const peft = getPeftModel(base(), config, { seed });
    const out = Object.entries(peft.stateDict())
      .filter(([k]) => k.includes('lora_'))
      .map(([k, v]) => [k, Array.from(v.dataSync())] as const);
    peft.dispose();
    return out;
  };
  const [a, b, c] = [weights(5), weights(5), weights(6)];
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map(([, v]) => v), c.map(([, v]) => v));
  const q = a.find(([k]) => k.endsWith('q_proj.lora_A.default.weight'))![1];
  const v = a.find(([k]) => k.endsWith('v_proj.lora_A.default.weight'))![1];
  assert.notDeepEqual(q, v);
});
