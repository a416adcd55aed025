import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tf } from '../../src/engine/tf.js';
import { saveSafetensors, writeFileAtomic, writeJsonAtomic } from '../../src/io/index.js';
import { patchFileHandle, withTempDir } from './_util.js';

const diskFull = () => Object.assign(new Error('ENOSPC: no space left on device (simulated)'), { code: 'ENOSPC' });

describe('writeFileAtomic', () => {
  it('writes, overwrites, and leaves no temporary file', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'out.bin');
      await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
      await writeFileAtomic(path, 'second');
      assert.equal(await readFile(path, 'utf8'), 'second');
      assert.deepEqual(await readdir(dir), ['out.bin']);
    });
  });

  it('a write that fails halfway leaves the old target intact and removes the temporary file', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'model.safetensors');
      await writeFile(path, 'old complete file');
      const halfThenFail = async (_orig: unknown, self: { write: (b: Uint8Array) => Promise<unknown> }, args: unknown[]) => {
        const data = args[0] as Uint8Array;
        await self.write(data.subarray(0, data.length >> 1)); // a partial file really exists on disk
        assert.equal((await readdir(dir)).length, 2, 'temp file present during the write');
        throw diskFull();
      };
      await patchFileHandle('writeFile', halfThenFail, async () => {
        await assert.rejects(writeFileAtomic(path, new Uint8Array(1 << 16).fill(7)), { code: 'ENOSPC' });
        const t = tf.ones([100]);
        await assert.rejects(saveSafetensors(path, { t }), { code: 'ENOSPC' });
        t.dispose();
      });
      assert.equal(await readFile(path, 'utf8'), 'old complete file');
      assert.deepEqual(await readdir(dir), ['model.safetensors']);
    });
  });

  it('a failing fsync aborts before the rename', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'x.json');
      await patchFileHandle('sync', () => Promise.reject(Object.assign(new Error('EIO (simulated)'), { code: 'EIO' })), async () => {
        await assert.rejects(writeJsonAtomic(path, { a: 1 }), { code: 'EIO' });
      });
      assert.deepEqual(await readdir(dir), []);
    });
  });

  it('a failing rename (target is a directory) removes the temporary file', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'taken');
      await mkdir(path);
      await writeFile(join(path, 'keep'), 'x');
      await assert.rejects(writeFileAtomic(path, 'data'));
      assert.deepEqual(await readdir(dir), ['taken']);
      assert.deepEqual(await readdir(path), ['keep']);
    });
  });

  it('a missing directory fails without creating anything', async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(writeFileAtomic(join(dir, 'no', 'such.txt'), 'x'), { code: 'ENOENT' });
      assert.deepEqual(await readdir(dir), []);
    });
  });
});

describe('writeJsonAtomic', () => {
  it('2-space indent and a trailing newline', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'adapter_config.json');
      await writeJsonAtomic(path, { r: 8, target_modules: ['c_attn'] });
      assert.equal(await readFile(path, 'utf8'), '{\n  "r": 8,\n  "target_modules": [\n    "c_attn"\n  ]\n}\n');
    });
  });
});
