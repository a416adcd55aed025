import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tf } from '../../src/engine/tf.js';
import { ConfigError, SafetensorsError, type SafetensorsErrorReason } from '../../src/errors.js';
import { loadCheckpoint, parseShardSize, planShards, saveCheckpoint, SafetensorsFile, saveSafetensors } from '../../src/io/index.js';
import { assertNoLeak } from '../helpers/assert.js';
import { realdataPath, skipReason } from '../helpers/realdata.js';
import { withTempDir } from './_util.js';

function makeTensors(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['a', tf.range(0, 10)], // 40 bytes
    ['b', tf.range(10, 20)], // 40
    ['big', tf.range(0, 50)], // 200: over the limit, gets a shard of its own
    ['c', tf.range(20, 30)], // 40
    ['ids', tf.tensor([1, 2, 3], [3], 'int32')], // 12
  ]);
}

function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

async function assertSameTensors(got: Map<string, tf.Tensor>, want: Map<string, tf.Tensor>): Promise<void> {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, t] of want) {
    assert.equal(got.get(k)!.dtype, t.dtype, k);
    assert.deepEqual(got.get(k)!.shape, t.shape, k);
    assert.deepEqual([...got.get(k)!.dataSync()], [...t.dataSync()], k);
  }
}

const isReason = (reason: SafetensorsErrorReason) => (e: unknown) => e instanceof SafetensorsError && e.reason === reason;

describe('checkpoint shard planning', () => {
  it('splits like huggingface_hub: in order, oversize tensors alone', () => {
    const t = makeTensors();
    // huggingface_hub 2.4 split_state_dict_into_shards_factory gives exactly this for sizes 40, 40, 200, 40, 12
    // (the oversize tensor's shard is emitted at once, before the still-open one)
    assert.deepEqual(planShards(t, 100), { shards: [['big'], ['a', 'b'], ['c', 'ids']], totalSize: 332 });
    assert.deepEqual(planShards(t, 1000).shards, [['a', 'b', 'big', 'c', 'ids']]);
    assert.equal(planShards(t, 100, 'F16').totalSize, 80 * 2 + 12); // floats halve, int32 stays 4 bytes
    disposeAll(t);
  });

  it('parses sizes as transformers does', () => {
    assert.equal(parseShardSize('5GB'), 5e9);
    assert.equal(parseShardSize('500MB'), 5e8);
    assert.equal(parseShardSize('2GiB'), 2 * 2 ** 30);
    assert.equal(parseShardSize(1234), 1234);
    assert.throws(() => parseShardSize('lots'), ConfigError);
    assert.throws(() => parseShardSize(0), ConfigError);
  });
});

describe('saveCheckpoint / loadCheckpoint', () => {
  it('single file when everything fits', async () => {
    const t = makeTensors();
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, t);
      assert.deepEqual(await readdir(dir), ['model.safetensors']);
      const f = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      assert.deepEqual(f.metadata, { format: 'pt' });
      await f.close();
      const got = await loadCheckpoint(dir);
      await assertSameTensors(got, t);
      disposeAll(got);
    });
    disposeAll(t);
  });

  it('shards + index named as transformers names them, and loads back', async () => {
    const t = makeTensors();
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, t, { maxShardSize: 100 });
      assert.deepEqual((await readdir(dir)).sort(), [
        'model-00001-of-00003.safetensors',
        'model-00002-of-00003.safetensors',
        'model-00003-of-00003.safetensors',
        'model.safetensors.index.json',
      ]);
      const indexText = await readFile(join(dir, 'model.safetensors.index.json'), 'utf8');
      assert.ok(indexText.endsWith('}\n'));
      assert.deepEqual(JSON.parse(indexText), {
        metadata: { total_size: 332 },
        weight_map: {
          a: 'model-00002-of-00003.safetensors',
          b: 'model-00002-of-00003.safetensors',
          big: 'model-00001-of-00003.safetensors',
          c: 'model-00003-of-00003.safetensors',
          ids: 'model-00003-of-00003.safetensors',
        },
      });
      await assertNoLeak(async () => disposeAll(await loadCheckpoint(dir)), 'sharded load + dispose');
      const loaded = await loadCheckpoint(dir);
      await assertSameTensors(loaded, t);
      disposeAll(loaded);
    });
    disposeAll(t);
  });

  it('replaces an earlier save in the other layout (no stale file shadows the new one)', async () => {
    const t = makeTensors();
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'config.json'), '{}');
      await saveCheckpoint(dir, t);
      await saveCheckpoint(dir, t, { maxShardSize: 100 });
      assert.ok(!(await readdir(dir)).includes('model.safetensors'));
      await saveCheckpoint(dir, new Map([['only', t.get('a')!]]));
      assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'model.safetensors']);
      const got = await loadCheckpoint(dir);
      assert.deepEqual([...got.keys()], ['only']);
      disposeAll(got);
    });
    disposeAll(t);
  });

  it('writes F16 / BF16 when asked', async () => {
    const t = new Map([['w', tf.tensor([1, 0.5, -2])]]);
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, t, { dtype: 'BF16' });
      const f = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      assert.equal(f.info('w').dtype, 'BF16');
      await f.close();
    });
    disposeAll(t);
  });
});

describe('loadCheckpoint errors', () => {
  async function sharded(dir: string): Promise<void> {
    const t = makeTensors();
    await saveCheckpoint(dir, t, { maxShardSize: 100 });
    disposeAll(t);
  }

  it('neither model.safetensors nor an index: not_found, naming a .bin checkpoint when there is one', async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(loadCheckpoint(dir), isReason('not_found'));
      await writeFile(join(dir, 'pytorch_model.bin'), 'x');
      await assert.rejects(loadCheckpoint(dir), (e: unknown) => isReason('not_found')(e) && /pytorch_model\.bin/.test((e as Error).message));
    });
  });

  it('a shard listed in the index is missing: index_invalid', async () => {
    await withTempDir(async (dir) => {
      await sharded(dir);
      await rm(join(dir, 'model-00003-of-00003.safetensors'));
      await assertNoLeak(() => assert.rejects(loadCheckpoint(dir), isReason('index_invalid')));
    });
  });

  it('a key the index maps to a shard that lacks it: missing_tensor, and nothing leaks', async () => {
    await withTempDir(async (dir) => {
      await sharded(dir);
      const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
      index.weight_map['ghost'] = 'model-00003-of-00003.safetensors';
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
      // shards 1 and 2 load before the failure in shard 3: their tensors must be disposed
      await assertNoLeak(() => assert.rejects(loadCheckpoint(dir), isReason('missing_tensor')));
    });
  });

  for (const [what, text] of [
    ['not JSON', '{'],
    ['no weight_map', '{"metadata":{}}'],
    ['a shard outside the folder', '{"weight_map":{"a":"../model.safetensors"}}'],
    ['a non-string shard', '{"weight_map":{"a":3}}'],
  ] as const) {
    it(`an index with ${what}: index_invalid`, async () => {
      await withTempDir(async (dir) => {
        await writeFile(join(dir, 'model.safetensors.index.json'), text);
        await assert.rejects(loadCheckpoint(dir), isReason('index_invalid'));
      });
    });
  }

  it('a corrupt single file: the safetensors reason comes through', async () => {
    await withTempDir(async (dir) => {
      const t = tf.ones([4]);
      await saveSafetensors(join(dir, 'model.safetensors'), { t });
      t.dispose();
      const bytes = await readFile(join(dir, 'model.safetensors'));
      await writeFile(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1));
      await assert.rejects(loadCheckpoint(dir), isReason('truncated'));
    });
  });
});

describe('loadCheckpoint on a real model folder', () => {
  it('tiny-random-gpt2', { skip: skipReason('tiny-random-gpt2', 'model.safetensors') }, async () => {
    const got = await loadCheckpoint(realdataPath('tiny-random-gpt2')!);
    assert.equal(got.size, 64);
    assert.deepEqual(got.get('transformer.wte.weight')!.shape, [1000, 32]);
    disposeAll(got);
  });
});
