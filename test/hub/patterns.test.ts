import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_ALLOW_PATTERNS, DEFAULT_IGNORE_PATTERNS, filterRepoFiles, fnmatchToRegExp, isValidRepoId, TOKENIZER_PATTERNS } from '../../src/hub/index.js';

describe('fnmatch patterns (huggingface_hub allow_patterns semantics)', () => {
  it('* and ? cross "/", [seq] and [!seq] are classes, everything else is literal', () => {
    assert.ok(fnmatchToRegExp('*.safetensors').test('sub/model.safetensors'));
    assert.ok(fnmatchToRegExp('model-0000?-of-00002.safetensors').test('model-00001-of-00002.safetensors'));
    assert.ok(fnmatchToRegExp('[ab].json').test('a.json'));
    assert.ok(!fnmatchToRegExp('[!ab].json').test('a.json'));
    assert.ok(!fnmatchToRegExp('config.json').test('configXjson'));
    assert.ok(fnmatchToRegExp('a+(b).txt').test('a+(b).txt'));
  });

  it('the defaults fetch configs, tokenizer files and safetensors but never pickles or other formats', () => {
    const files = [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'merges.txt',
      'vocab.json',
      'tokenizer.model',
      'model-00001-of-00002.safetensors',
      'model.safetensors.index.json',
      'adapter/adapter_config.json',
      'adapter/adapter_model.safetensors',
      'pytorch_model.bin',
      'pytorch_model.bin.index.json',
      'tf_model.h5',
      'onnx/model.onnx',
      'flax_model.msgpack',
      'README.md',
      '.gitattributes',
    ];
    assert.deepEqual(filterRepoFiles(files, DEFAULT_ALLOW_PATTERNS, DEFAULT_IGNORE_PATTERNS), files.slice(0, 12));
    assert.deepEqual(filterRepoFiles(files, TOKENIZER_PATTERNS, DEFAULT_IGNORE_PATTERNS), files.slice(2, 8));
    assert.deepEqual(filterRepoFiles(['a/x', 'b/y'], ['a/'], undefined), ['a/x']);
  });

  it('validates repo ids like huggingface_hub', () => {
    for (const id of ['gpt2', 'org/name', 'HuggingFaceTB/SmolLM2-135M', 'a.b_c-d/e.f']) assert.ok(isValidRepoId(id), id);
    for (const id of ['', 'a/b/c', 'a--b', 'a..b', '-a', 'a/b.git', 'org/', 'sp ace']) assert.ok(!isValidRepoId(id), id);
  });
});
