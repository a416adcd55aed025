import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { TokenizerError } from '../../src/errors.js';
import { AutoTokenizer, PreTrainedTokenizer } from '../../src/tokenizers/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';

interface Reference {
  text: string;
  bpe_tokens: string[];
  token_ids: number[];
  decoded_text: string;
}

const TOK = 'tokenizers';
const readRef = (name: string): Reference => JSON.parse(readFileSync(realdataPath(TOK, name)!, 'utf8')) as Reference;
const load = (prefix: string, config: object = {}) =>
  PreTrainedTokenizer.fromFiles({
    tokenizerJson: realdataPath(TOK, `${prefix}_tokenizer.json`)!,
    tokenizerConfig: { ...(JSON.parse(readFileSync(realdataPath(TOK, `${prefix}_tokenizer_config.json`)!, 'utf8')) as object), ...config },
  });

describe('reference encodings made by the Hugging Face tokenizers', () => {
  it('GPT-2 reproduces gpt2_encoded_tokens.json', { skip: skipReason(TOK, 'gpt2_tokenizer.json') }, async () => {
    const tok = await load('gpt2');
    const ref = readRef('gpt2_encoded_tokens.json');
    assert.deepEqual(tok.tokenize(ref.text), ref.bpe_tokens);
    assert.deepEqual(tok.encode(ref.text), ref.token_ids);
    assert.equal(tok.decode(ref.token_ids), ref.decoded_text);
    assert.deepEqual(tok.convertIdsToTokens(ref.token_ids), ref.bpe_tokens);
    assert.deepEqual(tok.convertTokensToIds(ref.bpe_tokens), ref.token_ids);
  });

  it('Llama-2 reproduces llama_encoded.json (BOS added, "<s> " decoded)', { skip: skipReason(TOK, 'llama_tokenizer.json') }, async () => {
    const tok = await load('llama');
    const ref = readRef('llama_encoded.json');
    assert.deepEqual(tok.tokenize(ref.text), ref.bpe_tokens);
    assert.deepEqual(tok.encode(ref.text), ref.token_ids);
    assert.equal(ref.token_ids[0], tok.bosTokenId);
    assert.equal(tok.decode(ref.token_ids), ref.decoded_text);
    assert.equal(tok.decode(ref.token_ids, { skipSpecialTokens: true }), ref.text);
  });

  // llama_3.2_encoded.json was made with the Llama 3 tokenizer (ids from 128000: <|begin_of_text|> = 128000), whose
  // tokenizer.json is not in realdata; the test runs when it is added as tokenizers/llama_3.2_tokenizer.json.
  it(
    'Llama-3.2 reproduces llama_3.2_encoded.json',
    { skip: skipReason(TOK, 'llama_3.2_tokenizer.json') && 'realdata lacks the Llama 3.2 tokenizer (llama_3.2_tokenizer.json) that llama_3.2_encoded.json was made with' },
    async () => {
      const tok = await PreTrainedTokenizer.fromFiles({ tokenizerJson: realdataPath(TOK, 'llama_3.2_tokenizer.json')! });
      const ref = readRef('llama_3.2_encoded.json');
      assert.deepEqual(tok.tokenize(ref.text), ref.bpe_tokens);
      assert.deepEqual(tok.encode(ref.text), ref.token_ids);
      assert.equal(tok.decode(ref.token_ids), ref.decoded_text);
    },
  );
});

describe('tiny-random-gpt2 folder via AutoTokenizer', { skip: skipReason('tiny-random-gpt2', 'tokenizer.json') }, () => {
  let tok: PreTrainedTokenizer;
  before(async () => {
    tok = await AutoTokenizer.fromPretrained(realdataPath('tiny-random-gpt2')!);
  });

  it('loads special tokens, sizes and limits from the folder', () => {
    assert.equal(tok.bosToken, '<|endoftext|>');
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.unkTokenId, 0);
    assert.equal(tok.padToken, undefined);
    assert.equal(tok.padTokenId, undefined);
    assert.equal(tok.vocabSize, 1000);
    assert.equal(tok.length, 1000);
    assert.equal(tok.modelMaxLength, 1024);
    assert.equal(tok.paddingSide, 'right');
  });

  it('round-trips text and skips special tokens on request', () => {
    const ids = tok.encode('Hello, my dog is cute');
    assert.ok(ids.every((id) => id > 0 && id < 1000));
    assert.equal(tok.decode(ids), 'Hello, my dog is cute');
    assert.equal(tok.decode([0, ...ids, 0], { skipSpecialTokens: true }), 'Hello, my dog is cute');
    assert.equal(tok.decode([0, ...ids]), '<|endoftext|>Hello, my dog is cute');
    assert.equal(tok.decode([]), '');
    assert.deepEqual(tok.batchDecode([ids, []]), ['Hello, my dog is cute', '']);
  });
});

describe('batch encoding: padding, truncation, attention masks', { skip: skipReason(TOK, 'llama_tokenizer.json') }, () => {
  let gpt2: PreTrainedTokenizer;
  let llama: PreTrainedTokenizer;
  before(async () => {
    gpt2 = await load('gpt2');
    llama = await load('llama');
  });

  it('without padding rows keep their lengths', () => {
    const out = gpt2.encodeBatch(['Hello world', 'Hi']);
    assert.deepEqual(out.inputIds, [[15496, 995], [17250]]);
    assert.deepEqual(out.attentionMask, [[1, 1], [1]]);
    assert.deepEqual(gpt2.encodeBatch('Hello world').inputIds, [[15496, 995]]);
  });

  it('asks for a pad token when padding is needed, then pads right or left', () => {
    assert.throws(
      () => gpt2.encodeBatch(['Hello world', 'Hi'], { padding: true }),
      (e: unknown) => e instanceof TokenizerError && e.message.includes('tokenizer.padToken = tokenizer.eosToken'),
    );
    const tok = gpt2;
    tok.padToken = tok.eosToken;
    assert.equal(tok.padTokenId, 50256);
    const right = tok.encodeBatch(['Hello world', 'Hi'], { padding: true });
    assert.deepEqual(right.inputIds, [[15496, 995], [17250, 50256]]);
    assert.deepEqual(right.attentionMask, [[1, 1], [1, 0]]);
    const left = tok.encodeBatch(['Hello world', 'Hi'], { padding: 'longest', paddingSide: 'left' });
    assert.deepEqual(left.inputIds, [[15496, 995], [50256, 17250]]);
    assert.deepEqual(left.attentionMask, [[1, 1], [0, 1]]);
    const fixed = tok.encodeBatch(['Hi'], { padding: 'max_length', maxLength: 4 });
    assert.deepEqual(fixed.attentionMask, [[1, 0, 0, 0]]);
    assert.deepEqual(tok.encodeBatch(['Hello world', 'Hi'], { padding: true, padToMultipleOf: 4 }).inputIds[1]!.length, 4);
    assert.throws(() => (tok.padToken = '<definitely-not-a-token>'), TokenizerError);
  });

  it('padding side defaults to tokenizer_config padding_side', async () => {
    const tok = await load('llama', { padding_side: 'left', pad_token: '<unk>' });
    assert.equal(tok.paddingSide, 'left');
    const out = tok.encodeBatch(['Hello world', 'Hi'], { padding: true });
    assert.deepEqual(out.inputIds, [[1, 15043, 3186], [0, 1, 6324]]);
    assert.deepEqual(out.attentionMask, [[1, 1, 1], [0, 1, 1]]);
  });

  it('truncation keeps the special tokens and honours the side', () => {
    const text = 'Hello world, how are you';
    assert.deepEqual(llama.encode(text), [1, 15043, 3186, 29892, 920, 526, 366]);
    assert.deepEqual(llama.encode(text, { maxLength: 4 }), [1, 15043, 3186, 29892]);
    assert.deepEqual(llama.encode(text, { maxLength: 4, truncationSide: 'left' }), [1, 920, 526, 366]);
    assert.deepEqual(llama.encode(text, { maxLength: 4, truncation: false }).length, 7);
    const batch = llama.encodeBatch([text, 'Hi'], { truncation: true, maxLength: 3 });
    assert.deepEqual(batch.inputIds, [[1, 15043, 3186], [1, 6324]]);
    assert.throws(() => llama.encode(text, { maxLength: 0 }), TokenizerError);
  });

  it('modelMaxLength bounds truncation=true without maxLength', () => {
    const long = 'word '.repeat(3000);
    assert.equal(llama.encode(long, { truncation: true }).length, 2048);
  });

  it('encodes text pairs and truncates them longest-first', () => {
    // Llama: <s> A <s> B (add_bos_token true, add_eos_token false)
    assert.deepEqual(llama.encode('Hello world', { textPair: 'Hi' }), [1, 15043, 3186, 1, 6324]);
    const pair = llama.encodeBatch(['Hello world, how are you'], { textPairs: 'Hello world, how', truncation: 'longest_first', maxLength: 8 });
    assert.deepEqual(pair.inputIds, [[1, 15043, 3186, 29892, 1, 15043, 3186, 29892]]);
    const second = llama.encode('Hello world', { textPair: 'Hello world, how are you', truncation: 'only_second', maxLength: 6 });
    assert.deepEqual(second, [1, 15043, 3186, 1, 15043, 3186]);
    assert.deepEqual(gpt2.encode('Hello', { textPair: ' world' }), [15496, 995]);
  });

  it('add_eos_token in tokenizer_config adds EOS for Llama tokenizers; addSpecialTokens: false adds nothing', async () => {
    const tok = await load('llama', { add_eos_token: true });
    assert.deepEqual(tok.encode('Hello world'), [1, 15043, 3186, 2]);
    assert.deepEqual(tok.encode('Hello world', { maxLength: 3 }), [1, 15043, 2]);
    assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: false }), [15043, 3186]);
    assert.deepEqual(tok.tokenize('Hello world', { addSpecialTokens: true }), ['<s>', '▁Hello', '▁world', '</s>']);
  });

  it('decode options and vocabulary helpers', () => {
    assert.equal(gpt2.decode(gpt2.encode('Hello world . I am here !')), 'Hello world. I am here!');
    assert.equal(gpt2.decode(gpt2.encode('Hello world . I am here !'), { cleanUpTokenizationSpaces: false }), 'Hello world . I am here !');
    assert.equal(gpt2.decode([15496, 995, 999_999]), 'Hello world');
    assert.throws(() => gpt2.decode([1.5]), TokenizerError);
    assert.equal(gpt2.convertTokensToIds('Hello'), 15496);
    assert.equal(gpt2.convertIdsToTokens(995), 'Ġworld');
    assert.throws(() => gpt2.convertIdsToTokens(60_000), TokenizerError);
    assert.equal(llama.convertTokensToIds('not-a-llama-token'), 0);
    assert.equal(llama.vocabSize, 32000);
    assert.equal(llama.getVocab().get('▁Hello'), 15043);
    assert.deepEqual(llama.allSpecialIds.sort(), [0, 1, 2]);
  });
});

describe('loading errors', () => {
  it('a folder without tokenizer.json says how to make one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peft-ts-tok-'));
    try {
      await writeFile(join(dir, 'vocab.json'), '{}');
      await assert.rejects(PreTrainedTokenizer.fromDirectory(dir), (e: unknown) => {
        assert.ok(e instanceof TokenizerError);
        assert.match(e.message, /no tokenizer\.json \(only slow-tokenizer files: vocab\.json\).*save_pretrained/);
        return true;
      });
      await writeFile(join(dir, 'tokenizer.json'), '{"model": 3}');
      await assert.rejects(PreTrainedTokenizer.fromDirectory(dir), /no "model" section/);
      await writeFile(join(dir, 'tokenizer.json'), '{not json');
      await assert.rejects(PreTrainedTokenizer.fromDirectory(dir), /not valid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
