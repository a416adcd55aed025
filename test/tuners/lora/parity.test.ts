// LoRA and DoRA adapters saved by Python PEFT load and run with the same outputs (see adapter-parity-suite.ts).
import { adapterParitySuite } from '../adapter-parity-suite.js';

adapterParitySuite([
  'lora-llama-qv',
  'lora-llama-rslora',
  'lora-llama-patterns',
  'lora-llama-embedding',
  'lora-llama-two-adapters',
  'lora-gpt2-conv1d',
  'lora-bert-seqcls-mts',
  'dora-llama',
  'dora-gpt2-conv1d',
]);
