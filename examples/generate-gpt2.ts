// Loads a GPT-2 checkpoint (the real tiny-random-gpt2 from ../shared/realdata when present, otherwise a randomly
// initialised GPT-2), tokenizes a prompt, and generates with greedy, beam and sampled decoding, streaming tokens.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, setBackend, tf } from 'peft-ts';
import type { PreTrainedCausalLM, PreTrainedTokenizer } from 'peft-ts';

const dir = process.argv[2] ?? fileURLToPath(new URL('../../shared/realdata/tiny-random-gpt2', import.meta.url));
const backend = await setBackend();

let model: PreTrainedCausalLM;
let tokenizer: PreTrainedTokenizer | undefined;
if (existsSync(dir)) {
  console.log(`Loading ${dir}`);
  model = await AutoModelForCausalLM.fromPretrained(dir);
  tokenizer = await AutoTokenizer.fromPretrained(dir);
  // GPT-2 has no padding token; as in transformers, pad (on the left, for generation) with EOS.
  tokenizer.padToken = tokenizer.eosToken;
} else {
  console.log(`${dir} not found: using a randomly initialised GPT-2 (2 layers, width 64, vocabulary 1000).`);
  model = new GPT2LMHeadModel({ n_layer: 2, n_embd: 64, n_head: 4, vocab_size: 1000, n_positions: 128 }, { seed: 0 });
}
console.log(`backend: ${backend}, parameters: ${model.numParameters().toLocaleString()}`);

const prompts = ['Hello, my dog is', 'The weather today'];
const encoded = tokenizer ? tokenizer.encodeBatch(prompts, { padding: true, paddingSide: 'left' }) : { inputIds: [[10, 11, 12, 13], [20, 21, 22, 23]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 1]] };
const show = (ids: number[]) => (tokenizer ? JSON.stringify(tokenizer.decode(ids, { skipSpecialTokens: true })) : ids.join(' '));

const started = performance.now();
process.stdout.write('streamed (row 0): ');
const greedy = await model.generate(encoded.inputIds, {
  attentionMask: encoded.attentionMask,
  maxNewTokens: 16,
  onToken: ({ tokens }) => process.stdout.write(`${tokens[0]} `),
});
const seconds = (performance.now() - started) / 1000;
console.log(`\ngreedy: ${((2 * 16) / seconds).toFixed(1)} tokens/s`);
greedy.forEach((ids) => console.log(`  ${show(ids)}`));

const beams = await model.generate(encoded.inputIds, { attentionMask: encoded.attentionMask, maxNewTokens: 12, numBeams: 4 });
console.log('beam search (4 beams):');
beams.forEach((ids) => console.log(`  ${show(ids)}`));

const sampled = await model.generate(encoded.inputIds, { attentionMask: encoded.attentionMask, maxNewTokens: 12, doSample: true, topP: 0.9, seed: 42 });
console.log('sampled (top-p 0.9, seed 42):');
sampled.forEach((ids) => console.log(`  ${show(ids)}`));

model.dispose();
console.log(`live tensors at exit: ${tf.memory().numTensors}`);
