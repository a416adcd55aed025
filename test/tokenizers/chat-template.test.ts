import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { TokenizerError } from '../../src/errors.js';
import { PreTrainedTokenizer, type ChatMessage } from '../../src/tokenizers/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';

const TEMPLATE =
  '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}' +
  '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';
const TOOL_TEMPLATE = '{% for t in tools %}[{{ t.name }}]{% endfor %}{{ messages[-1].content }}';

const messages: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi!' },
];

const tokenizerJson = () => JSON.parse(readFileSync(realdataPath('tokenizers', 'gpt2_tokenizer.json')!, 'utf8')) as Record<string, unknown>;
const gpt2Config = { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', model_max_length: 1024 };

describe('applyChatTemplate', { skip: skipReason('tokenizers', 'gpt2_tokenizer.json') }, () => {
  let json: Record<string, unknown>;
  before(() => {
    json = tokenizerJson();
  });

  it('renders the config template with bos/eos tokens and the generation prompt', async () => {
    const tok = await PreTrainedTokenizer.fromFiles({ tokenizerJson: json, tokenizerConfig: { ...gpt2Config, chat_template: TEMPLATE } });
    const expected = '<|endoftext|><|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi!<|endoftext|>\n<|assistant|>\n';
    assert.equal(tok.applyChatTemplate(messages, { tokenize: false, addGenerationPrompt: true }), expected);
    assert.equal(
      tok.applyChatTemplate(messages, { tokenize: false }),
      '<|endoftext|><|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi!<|endoftext|>\n',
    );
    // Tokenized: the template's own special tokens, none added on top.
    const ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.deepEqual(ids, tok.encode(expected, { addSpecialTokens: false }));
    assert.equal(ids[0], 50256);
    assert.equal(ids.filter((id) => id === 50256).length, 3);
    assert.equal(tok.decode(ids), expected);
  });

  it('picks named templates: default, tool_use with tools, or one by name', async () => {
    const tok = await PreTrainedTokenizer.fromFiles({
      tokenizerJson: json,
      tokenizerConfig: {
        ...gpt2Config,
        chat_template: [
          { name: 'default', template: TEMPLATE },
          { name: 'tool_use', template: TOOL_TEMPLATE },
          { name: 'plain', template: '{{ messages | length }} messages' },
        ],
      },
    });
    assert.match(tok.applyChatTemplate(messages, { tokenize: false }), /^<\|endoftext\|><\|system\|>/);
    assert.equal(tok.applyChatTemplate(messages, { tokenize: false, tools: [{ name: 'search' }, { name: 'calc' }] }), '[search][calc]Hi!');
    assert.equal(tok.applyChatTemplate(messages, { tokenize: false, chatTemplate: 'plain' }), '2 messages');
    assert.equal(tok.applyChatTemplate(messages, { tokenize: false, chatTemplate: '{{ messages[0].role }}' }), 'system');
  });

  it('continueFinalMessage stops right after the last message, extra variables reach the template', async () => {
    const tok = await PreTrainedTokenizer.fromFiles({ tokenizerJson: json, tokenizerConfig: { ...gpt2Config, chat_template: TEMPLATE } });
    const chat: ChatMessage[] = [...messages, { role: 'assistant', content: 'Hello, I' }];
    assert.equal(
      tok.applyChatTemplate(chat, { tokenize: false, continueFinalMessage: true }),
      '<|endoftext|><|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi!<|endoftext|>\n<|assistant|>\nHello, I',
    );
    assert.throws(() => tok.applyChatTemplate(chat, { continueFinalMessage: true, addGenerationPrompt: true }), TokenizerError);
    assert.equal(tok.applyChatTemplate(chat, { tokenize: false, chatTemplate: '{{ greeting }}', templateKwargs: { greeting: 'hey' } }), 'hey');
  });

  it('typed errors: no template, template errors, raise_exception', async () => {
    const tok = await PreTrainedTokenizer.fromFiles({ tokenizerJson: json, tokenizerConfig: gpt2Config });
    assert.throws(() => tok.applyChatTemplate(messages), (e: unknown) => e instanceof TokenizerError && /no chat template/.test(e.message));
    assert.throws(() => tok.applyChatTemplate(messages, { chatTemplate: '{% for %}' }), (e: unknown) => e instanceof TokenizerError && /does not parse/.test(e.message));
    assert.throws(
      () => tok.applyChatTemplate(messages, { chatTemplate: "{{ raise_exception('roles must alternate') }}" }),
      (e: unknown) => e instanceof TokenizerError && /roles must alternate/.test(e.message),
    );
    tok.chatTemplate = '{{ messages | length }}';
    assert.equal(tok.applyChatTemplate(messages, { tokenize: false }), '2');
  });

  it('chat_template.jinja in a tokenizer folder is the default template', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peft-ts-chat-'));
    try {
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
      await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...gpt2Config, chat_template: 'from config' }));
      await writeFile(join(dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.role }};{% endfor %}');
      const tok = await PreTrainedTokenizer.fromDirectory(dir);
      assert.equal(tok.applyChatTemplate(messages, { tokenize: false }), 'system;user;');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('applyChatTemplate with Llama-2 special tokens', { skip: skipReason('tokenizers', 'llama_tokenizer.json') }, () => {
  it('passes AddedToken-style bos/eos from tokenizer_config as strings', async () => {
    const config = JSON.parse(readFileSync(realdataPath('tokenizers', 'llama_tokenizer_config.json')!, 'utf8')) as Record<string, unknown>;
    const tok = await PreTrainedTokenizer.fromFiles({
      tokenizerJson: realdataPath('tokenizers', 'llama_tokenizer.json')!,
      tokenizerConfig: { ...config, chat_template: '{{ bos_token }}[INST] {{ messages[0].content }} [/INST]{{ eos_token }}' },
    });
    const text = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: false });
    assert.equal(text, '<s>[INST] Hi [/INST]</s>');
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }])[0], 1);
  });
});
