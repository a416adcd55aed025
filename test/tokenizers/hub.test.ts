import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoTokenizer } from '../../src/tokenizers/index.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';
import { FakeHub } from '../hub/fake-hub.js';

const home = await mkdtemp(join(tmpdir(), 'peft-ts-hf-home-'));
process.env['HF_HOME'] = home;
for (const v of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_TOKEN_PATH']) delete process.env[v];

const COMMIT = 'c'.repeat(40);

describe('AutoTokenizer.fromPretrained through a (loopback) hub', { skip: skipReason('tiny-random-gpt2', 'tokenizer.json') }, () => {
  let hub: FakeHub;
  let cacheDir: string;
  before(async () => {
    const dir = realdataPath('tiny-random-gpt2')!;
    const files: Record<string, Buffer> = {};
    for (const name of await readdir(dir)) files[name] = await readFile(join(dir, name));
    hub = await FakeHub.start([{ id: 'hf-internal-testing/tiny-random-gpt2', refs: { main: COMMIT }, commits: { [COMMIT]: files } }]);
    cacheDir = await mkdtemp(join(tmpdir(), 'peft-ts-tok-cache-'));
  });
  after(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
    await rm(home, { recursive: true, force: true });
  });

  it('downloads only tokenizer files and loads the same tokenizer as the local folder', async () => {
    const opts = { hubUrl: hub.url, cacheDir, progressBar: false, paddingSide: 'left' } as const;
    const remote = await AutoTokenizer.fromPretrained('hf-internal-testing/tiny-random-gpt2', opts);
    const local = await AutoTokenizer.fromPretrained(realdataPath('tiny-random-gpt2')!);
    const snapshot = join(cacheDir, 'models--hf-internal-testing--tiny-random-gpt2', 'snapshots', COMMIT);
    assert.deepEqual((await readdir(snapshot)).sort(), ['merges.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    assert.equal(remote.paddingSide, 'left');
    const text = 'Hello, my dog is cute';
    assert.deepEqual(remote.encode(text), local.encode(text));
    assert.equal(remote.decode(remote.encode(text)), text);
    const count = hub.requests.length;
    await AutoTokenizer.fromPretrained('hf-internal-testing/tiny-random-gpt2', opts);
    assert.equal(hub.requests.length, count, 'second load is served from the cache');
  });
});
