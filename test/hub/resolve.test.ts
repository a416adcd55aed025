import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { HubError, HubNotCachedError } from '../../src/errors.js';
import { resolvePretrained, type DownloadProgress, type HubOptions } from '../../src/hub/index.js';
import { bytes, FakeHub, gitSha1, sha256 } from './fake-hub.js';

// Never let the real environment (token file, offline flag, cache) leak into these tests.
const home = await mkdtemp(join(tmpdir(), 'peft-ts-hf-home-'));
process.env['HF_HOME'] = home;
for (const v of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN_PATH']) {
  delete process.env[v];
}

const C1 = 'a'.repeat(40);
const C2 = 'b'.repeat(40);
const weights = bytes(300_000, 7);
const v1: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"gpt2"}'),
  'tokenizer.json': Buffer.from('{"model":{}}'),
  'model.safetensors': weights,
  'pytorch_model.bin': bytes(1000, 3),
  'README.md': Buffer.from('# readme'),
};
const v2 = { ...v1, 'config.json': Buffer.from('{"model_type":"gpt2","n_layer":2}') };

let hub: FakeHub;
let cacheDir: string;
const opts = (extra: HubOptions = {}): HubOptions => ({ hubUrl: hub.url, cacheDir, progressBar: false, ...extra });
const repoDir = () => join(cacheDir, 'models--org--tiny');

before(async () => {
  hub = await FakeHub.start([
    { id: 'org/tiny', refs: { main: C1 }, commits: { [C1]: v1, [C2]: v2 } },
    { id: 'org/private', refs: { main: C1 }, commits: { [C1]: v1 }, token: 'hf_secret' },
    { id: 'solo', refs: { main: C1 }, commits: { [C1]: { 'config.json': Buffer.from('{}') } } },
  ]);
});
after(async () => {
  await hub.close();
  await rm(home, { recursive: true, force: true });
});
beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'peft-ts-hub-cache-'));
  hub.requests.length = 0;
  hub.ignoreRange = false;
  hub.cdnFailures = 0;
  hub.repos.get('org/tiny')!.refs['main'] = C1;
});

describe('resolvePretrained: downloads into the huggingface_hub cache layout', () => {
  it('writes blobs, snapshot symlinks and refs/main, skipping .bin and unmatched files', async () => {
    const dir = await resolvePretrained('org/tiny', opts());
    assert.equal(dir, join(repoDir(), 'snapshots', C1));
    assert.equal((await readFile(join(repoDir(), 'refs', 'main'), 'utf8')).trim(), C1);
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);
    assert.deepEqual(await readFile(join(dir, 'config.json')), v1['config.json']);
    // Blob names are the LFS sha256 / the git blob sha1, and snapshot entries are relative links to them.
    assert.deepEqual(await readFile(join(repoDir(), 'blobs', sha256(weights))), weights);
    assert.ok((await lstat(join(dir, 'model.safetensors'))).isSymbolicLink());
    assert.equal(await readlink(join(dir, 'config.json')), join('..', '..', 'blobs', gitSha1(v1['config.json']!)));
    await assert.rejects(lstat(join(dir, 'pytorch_model.bin')));
    await assert.rejects(lstat(join(dir, 'README.md')));
    await assert.rejects(lstat(join(repoDir(), 'blobs', `${sha256(weights)}.incomplete`)));
  });

  it('a second call is served from the cache without any request', async () => {
    const first = await resolvePretrained('org/tiny', opts());
    const count = hub.requests.length;
    assert.equal(await resolvePretrained('org/tiny', opts()), first);
    assert.equal(hub.requests.length, count);
  });

  it('reuses blobs already present and fetches only what a wider allowPatterns adds', async () => {
    await resolvePretrained('org/tiny', opts({ allowPatterns: ['config.json'] }));
    hub.requests.length = 0;
    await resolvePretrained('org/tiny', opts());
    const fetched = hub.requests.filter((r) => r.method === 'GET' && !r.url.startsWith('/api/')).map((r) => r.url);
    assert.deepEqual(fetched.sort(), [`/cdn/${sha256(weights)}`, `/org/tiny/resolve/${C1}/model.safetensors`, `/org/tiny/resolve/${C1}/tokenizer.json`].sort());
  });

  it('a commit-hash revision resolves to that snapshot and writes no ref', async () => {
    const dir = await resolvePretrained('org/tiny', opts({ revision: C2 }));
    assert.equal(dir, join(repoDir(), 'snapshots', C2));
    assert.deepEqual(await readFile(join(dir, 'config.json')), v2['config.json']);
    await assert.rejects(lstat(join(repoDir(), 'refs', C2)));
  });

  it('checkForUpdates follows a moved branch; without it the cached snapshot is kept', async () => {
    await resolvePretrained('org/tiny', opts());
    hub.repos.get('org/tiny')!.refs['main'] = C2;
    assert.equal(await resolvePretrained('org/tiny', opts()), join(repoDir(), 'snapshots', C1));
    assert.equal(await resolvePretrained('org/tiny', opts({ checkForUpdates: true })), join(repoDir(), 'snapshots', C2));
    assert.equal((await readFile(join(repoDir(), 'refs', 'main'), 'utf8')).trim(), C2);
    // The weights blob is shared between the two commits: not downloaded again.
    assert.equal(hub.requests.filter((r) => r.url.startsWith('/cdn/')).length, 1);
  });

  it('reports progress and honours HF_ENDPOINT, HF_HUB_CACHE and single-name repo ids', async () => {
    const seen: DownloadProgress[] = [];
    await resolvePretrained('org/tiny', opts({ onProgress: (p) => seen.push(p) }));
    const last = seen.filter((p) => p.file === 'model.safetensors').at(-1);
    assert.deepEqual(last, { repoId: 'org/tiny', file: 'model.safetensors', downloadedBytes: weights.length, totalBytes: weights.length });
    process.env['HF_ENDPOINT'] = hub.url;
    process.env['HF_HUB_CACHE'] = cacheDir;
    try {
      const dir = await resolvePretrained('solo', { progressBar: false });
      assert.equal(dir, join(cacheDir, 'models--solo', 'snapshots', C1));
    } finally {
      delete process.env['HF_ENDPOINT'];
      delete process.env['HF_HUB_CACHE'];
    }
  });

  it('returns an existing local directory as is and rejects bad ids', async () => {
    assert.equal(await resolvePretrained(cacheDir), cacheDir);
    await assert.rejects(resolvePretrained('./does/not/exist'), (e: unknown) => e instanceof HubError && /does not exist/.test(e.message));
    await assert.rejects(resolvePretrained('bad--id', opts()), (e: unknown) => e instanceof HubError && /valid hub repo id/.test(e.message));
    assert.equal(hub.requests.length, 0);
  });
});

describe('resolvePretrained: offline and failures', () => {
  it('offline mode resolves from the cache with no request and fails cleanly when not cached', async () => {
    await assert.rejects(resolvePretrained('org/tiny', opts({ localFilesOnly: true })), (e: unknown) => {
      assert.ok(e instanceof HubNotCachedError);
      assert.match(e.message, /not in the cache.*offline/);
      return true;
    });
    const dir = await resolvePretrained('org/tiny', opts());
    hub.requests.length = 0;
    process.env['HF_HUB_OFFLINE'] = '1';
    try {
      assert.equal(await resolvePretrained('org/tiny', opts({ checkForUpdates: true })), dir);
    } finally {
      delete process.env['HF_HUB_OFFLINE'];
    }
    assert.equal(hub.requests.length, 0);
  });

  it('offline mode names the files a partial snapshot lacks', async () => {
    await resolvePretrained('org/tiny', opts({ allowPatterns: ['config.json'] }));
    await assert.rejects(resolvePretrained('org/tiny', opts({ localFilesOnly: true })), (e: unknown) => {
      assert.ok(e instanceof HubNotCachedError);
      assert.deepEqual([...e.missingFiles].sort(), ['model.safetensors', 'tokenizer.json']);
      return true;
    });
  });

  it('uses a cache written by Python (no peft-ts file list) offline, and online without re-downloading', async () => {
    const snap = join(repoDir(), 'snapshots', C1);
    await mkdir(snap, { recursive: true });
    await mkdir(join(repoDir(), 'refs'), { recursive: true });
    await writeFile(join(repoDir(), 'refs', 'main'), C1);
    for (const [name, content] of Object.entries(v1)) await writeFile(join(snap, name), content);
    assert.equal(await resolvePretrained('org/tiny', opts({ localFilesOnly: true })), snap);
    assert.equal(await resolvePretrained('org/tiny', opts()), snap);
    assert.deepEqual(hub.requests.map((r) => r.url), [`/api/models/org/tiny/revision/main`]);
  });

  it('sends the token (option or HF_TOKEN) and maps 401 to a HubError that says to set HF_TOKEN', async () => {
    await assert.rejects(resolvePretrained('org/private', opts()), (e: unknown) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.status, 401);
      assert.match(e.message, /HF_TOKEN/);
      return true;
    });
    await resolvePretrained('org/private', opts({ token: 'hf_secret' }));
    const hubRequests = hub.requests.filter((r) => !r.url.startsWith('/cdn/'));
    assert.ok(hubRequests.slice(1).every((r) => r.authorization === 'Bearer hf_secret'));
    await rm(cacheDir, { recursive: true });
    process.env['HF_TOKEN'] = 'hf_secret';
    try {
      await resolvePretrained('org/private', opts());
      await assert.rejects(resolvePretrained('org/private', opts({ token: false, checkForUpdates: true })), /401/);
    } finally {
      delete process.env['HF_TOKEN'];
    }
  });

  it('maps 404s to HubErrors naming the repo or the revision', async () => {
    await assert.rejects(resolvePretrained('org/missing', opts()), (e: unknown) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.status, 404);
      assert.equal(e.repoId, 'org/missing');
      assert.match(e.message, /org\/missing/);
      return true;
    });
    await assert.rejects(resolvePretrained('org/tiny', opts({ revision: 'nope' })), (e: unknown) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.status, 404);
      assert.match(e.message, /Revision "nope" not found in org\/tiny/);
      return true;
    });
  });

  it('a network failure says how to work offline, and falls back to a cached snapshot', async () => {
    const dead = await FakeHub.start([]);
    const deadUrl = dead.url;
    await dead.close();
    await assert.rejects(resolvePretrained('org/tiny', opts({ hubUrl: deadUrl })), (e: unknown) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.status, undefined);
      assert.match(e.message, /Could not reach .*HF_HUB_OFFLINE=1/s);
      return true;
    });
    const dir = await resolvePretrained('org/tiny', opts());
    assert.equal(await resolvePretrained('org/tiny', opts({ hubUrl: deadUrl, checkForUpdates: true })), dir);
  });
});

describe('resolvePretrained: resumable downloads', () => {
  const blob = () => join(repoDir(), 'blobs', sha256(weights));
  const cdnGets = () => hub.requests.filter((r) => r.url.startsWith('/cdn/'));

  it('resumes with a Range request after the connection drops midway', async () => {
    hub.dropAfter.set(sha256(weights), 120_000);
    const dir = await resolvePretrained('org/tiny', opts());
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);
    const gets = cdnGets();
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(resumedAt >= 100_000 && resumedAt <= 120_000, `resumed at ${resumedAt}`);
  });

  it('retries server errors, then fails with a HubError that keeps the partial for next time', async () => {
    hub.cdnFailures = 2;
    const dir = await resolvePretrained('org/tiny', opts());
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);
    assert.equal(cdnGets().length, 3);
    await rm(cacheDir, { recursive: true });
    hub.cdnFailures = 100;
    await assert.rejects(resolvePretrained('org/tiny', opts()), (e: unknown) => e instanceof HubError && /failed 6 times \(last: HTTP 503\)/.test(e.message));
    hub.cdnFailures = 0;
  });

  it('concurrent calls share one download', async () => {
    const [a, b] = await Promise.all([resolvePretrained('org/tiny', opts()), resolvePretrained('org/tiny', opts())]);
    assert.equal(a, b);
    assert.deepEqual(await readFile(join(a, 'model.safetensors')), weights);
    assert.equal(cdnGets().length, 1);
  });

  it('continues a .incomplete blob left by an earlier process', async () => {
    await mkdir(join(repoDir(), 'blobs'), { recursive: true });
    await writeFile(`${blob()}.incomplete`, weights.subarray(0, 200_000));
    const dir = await resolvePretrained('org/tiny', opts());
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);
    assert.deepEqual(cdnGets().map((r) => r.range), ['bytes=200000-']);
  });

  it('starts over when the server ignores Range, or when the partial is corrupt', async () => {
    await mkdir(join(repoDir(), 'blobs'), { recursive: true });
    await writeFile(`${blob()}.incomplete`, weights.subarray(0, 50_000));
    hub.ignoreRange = true;
    let dir = await resolvePretrained('org/tiny', opts());
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);

    await rm(cacheDir, { recursive: true });
    hub.ignoreRange = false;
    hub.requests.length = 0;
    await mkdir(join(repoDir(), 'blobs'), { recursive: true });
    await writeFile(`${blob()}.incomplete`, bytes(50_000, 99)); // wrong bytes: the checksum catches it
    dir = await resolvePretrained('org/tiny', opts());
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), weights);
    assert.deepEqual(cdnGets().map((r) => r.range), ['bytes=50000-', undefined]);
  });
});
