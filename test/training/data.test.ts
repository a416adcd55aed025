// JSONL data: the three record shapes, loss masks, bad lines (reported with line numbers, skipped or fatal),
// truncation, packing and padding. Uses the tiny GPT-2 tokenizer from realdata (skipped when absent).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DataError } from '../../src/errors.js';
import { AutoTokenizer } from '../../src/tokenizers/index.js';
import type { PreTrainedTokenizer } from '../../src/tokenizers/index.js';
import { collate, countLossTokens, loadJsonlDataset, packExamples, readJsonl } from '../../src/training/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';

const skip = skipReason('tiny-random-gpt2');
const CHAT = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";
let dir: string;
let tok: PreTrainedTokenizer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-ts-data-'));
  if (!skip) tok = await AutoTokenizer.fromPretrained(realdataPath('tiny-random-gpt2')!);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const LINES = [
  JSON.stringify({ text: 'SELECT name FROM t' }),
  '{"text": broken',
  JSON.stringify({ prompt: 'Q: how many?\nA:', completion: ' SELECT COUNT(*) FROM t' }),
  '',
  JSON.stringify({ messages: [{ role: 'user', content: 'hi there' }, { role: 'assistant', content: 'hello you' }] }),
  JSON.stringify([1, 2]),
  JSON.stringify({ question: 'no known field' }),
  JSON.stringify({ prompt: 'p', completion: 3 }),
];

describe('JSONL training data', { skip }, () => {
  test('text, prompt/completion and chat records; bad lines reported with their line numbers', async () => {
    const path = join(dir, 'mixed.jsonl');
    await writeFile(path, LINES.join('\n') + '\n');
    const data = await loadJsonlDataset(path, tok, { maxLength: 64, chatTemplate: CHAT });
    assert.deepEqual(data.formats, { text: 1, prompt_completion: 1, messages: 1 });
    assert.deepEqual(data.problems.map((p) => p.line), [2, 6, 7, 8]);
    assert.match(data.problems[0]!.message, /invalid JSON/);
    assert.match(data.problems[2]!.message, /no "text"/);
    assert.match(data.problems[3]!.message, /"completion" must be a string/);
    const [text, pc, chat] = data.examples;
    const eos = tok.eosTokenId!;
    assert.deepEqual(text!.inputIds, [...tok.encode('SELECT name FROM t'), eos]);
    assert.deepEqual(text!.labels, text!.inputIds);
    const prompt = tok.encode('Q: how many?\nA:');
    assert.deepEqual(pc!.labels.slice(0, prompt.length), prompt.map(() => -100));
    assert.deepEqual(pc!.labels.slice(prompt.length), [...tok.encode(' SELECT COUNT(*) FROM t'), eos]);
    assert.equal(chat!.assistantOnly, true);
    const userPart = tok.applyChatTemplate([{ role: 'user', content: 'hi there' }], { chatTemplate: CHAT, addGenerationPrompt: true });
    assert.ok(chat!.labels.slice(0, userPart.length).every((l) => l === -100));
    assert.deepEqual(chat!.labels.slice(userPart.length), chat!.inputIds.slice(userPart.length));
    assert.deepEqual(text!.line, 1);
  });

  test("onBadLine: 'error' throws a DataError listing every bad line", async () => {
    const path = join(dir, 'bad.jsonl');
    await writeFile(path, LINES.join('\n'));
    await assert.rejects(loadJsonlDataset(path, tok, { onBadLine: 'error', chatTemplate: CHAT }), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.deepEqual(e.problems.map((p) => p.line), [2, 6, 7, 8]);
      assert.match(e.message, /bad\.jsonl:2: invalid JSON/);
      return true;
    });
    await assert.rejects(readJsonl(path, { onBadLine: 'error' }), DataError);
    await assert.rejects(loadJsonlDataset(join(dir, 'missing.jsonl'), tok), DataError);
  });

  test('truncation, a prompt longer than maxLength, packing and padding', async () => {
    const path = join(dir, 'long.jsonl');
    await writeFile(path, [JSON.stringify({ text: 'a b c d e f g h i j k l m n o p' }), JSON.stringify({ prompt: 'one two three four five six seven', completion: ' x' })].join('\n'));
    const cut = await loadJsonlDataset(path, tok, { maxLength: 6 });
    assert.equal(cut.truncated, 1);
    assert.equal(cut.examples.length, 1);
    assert.equal(cut.examples[0]!.inputIds.length, 6);
    assert.equal(cut.problems.length, 1);
    assert.match(cut.problems[0]!.message, /no completion tokens within maxLength 6/);
    const packed = await loadJsonlDataset(path, tok, { maxLength: 8, packing: true });
    assert.ok(packed.examples.slice(0, -1).every((e) => e.inputIds.length === 8));
    const total = packed.examples.reduce((n, e) => n + e.inputIds.length, 0);
    assert.ok(total >= 20, `${total} tokens packed`);
    const blocks = packExamples([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }, { inputIds: [4, 5, 6], labels: [-100, -100, 6] }], 4);
    assert.deepEqual(blocks, [{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, -100] }, { inputIds: [5, 6], labels: [-100, 6] }]);
    const batch = collate(blocks, 0);
    assert.deepEqual(batch, { inputIds: [[1, 2, 3, 4], [5, 6, 0, 0]], attentionMask: [[1, 1, 1, 1], [1, 1, 0, 0]], labels: [[1, 2, 3, -100], [-100, 6, -100, -100]] });
    assert.equal(countLossTokens([1, 2, -100, 4]), 2);
  });
});
