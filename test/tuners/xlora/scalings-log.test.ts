/**
 * X-LoRA's scalings log: recording, bucketing by sequence length, and the `.npy` files of the original's
 * `flush_log_scalings` / `load_scalings_log`.
 *
 * The NumPy bytes below were written once by the parity venv (numpy 2.4.6), emulating the original's flush with
 * sequence-length buckets; entry k of sequence length S is `arange(1*S*2*2).reshape(1, S, 2, 2) * 0.125 + k`
 * (float32, exact):
 *   e = [entry(3, 0), entry(2, 1), entry(3, 2)]
 *   np.save('log-3', np.concatenate([e[0][None], e[2][None]], 0)); np.save('log-2', e[1][None])
 *   open('log-mapping.json', 'w').write(json.dumps({'log-3.npy': [0, 2], 'log-2.npy': [1]}))
 *   np.save('single', np.stack([entry(2, 0), entry(2, 1)]))
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tf } from '../../../src/engine/tf.js';
import { NpyError, ScalingsLogError, ShapeError } from '../../../src/errors.js';
import { loadNpy } from '../../../src/io/npy.js';
import { ScalingsLog, loadScalingsLog } from '../../../src/tuners/xlora/scalings-log.js';
import { assertNoLeak } from '../../helpers/assert.js';

const HEADER = (shape: string) =>
  '934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a20' +
  shape +
  '2c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a';
const NUMPY_FILES = {
  'log-3.npy':
    HEADER('28322c20312c20332c20322c203229') +
    '000000000000003e0000803e0000c03e0000003f0000203f0000403f0000603f0000803f0000903f0000a03f0000b03f000000400000084000001040000018400000204000002840000030400000384000004040000048400000504000005840',
  'log-2.npy': HEADER('28312c20312c20322c20322c203229') + '0000803f0000903f0000a03f0000b03f0000c03f0000d03f0000e03f0000f03f',
  'single.npy':
    HEADER('28322c20312c20322c20322c203229') +
    '000000000000003e0000803e0000c03e0000003f0000203f0000403f0000603f0000803f0000903f0000a03f0000b03f0000c03f0000d03f0000e03f0000f03f',
};
const NUMPY_MAPPING = '{"log-3.npy": [0, 2], "log-2.npy": [1]}';

/** `arange(B*S*2*2).reshape(B, S, 2, 2) * 0.125 + k`, as the Python fixture. */
function entryValues(s: number, k: number, b = 1): number[] {
  return Array.from({ length: b * s * 4 }, (_, i) => i * 0.125 + k);
}
function entry(s: number, k: number, b = 1): tf.Tensor4D {
  return tf.tensor4d(entryValues(s, k, b), [b, s, 2, 2]);
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'peft-ts-scalings-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Pushes clones of fresh tensors and disposes the originals (the log must keep its own copies). */
function pushAll(log: ScalingsLog, specs: readonly (readonly [s: number, k: number, b?: number])[]): void {
  for (const [s, k, b] of specs) {
    const t = entry(s, k, b);
    log.push(t);
    t.dispose();
  }
}

async function rejectsWith(promise: Promise<unknown>, ctor: new (...args: never[]) => Error, check: (e: Error) => boolean = () => true): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof ctor && check(e));
}

describe('ScalingsLog state', () => {
  test('disabled by default; push is ignored until enabled; disable keeps entries; clear disposes', async () => {
    await assertNoLeak(() => {
      const log = new ScalingsLog();
      assert.equal(log.enabled, false);
      pushAll(log, [[2, 0]]);
      assert.equal(log.length, 0);
      assert.equal(log.latest, undefined);
      log.enable();
      assert.equal(log.enabled, true);
      pushAll(log, [[2, 0], [3, 1]]);
      assert.equal(log.length, 2);
      log.disable();
      pushAll(log, [[2, 5]]);
      assert.equal(log.length, 2, 'disabled: not recorded, entries kept');
      assert.deepEqual(Array.from(log.latest!.dataSync()), entryValues(3, 1));
      const entries = log.entries();
      assert.deepEqual(entries.map((t) => t.shape), [[1, 2, 2, 2], [1, 3, 2, 2]]);
      entries.pop(); // a copy of the list
      assert.equal(log.length, 2);
      log.clear();
      assert.equal(log.length, 0);
      assert.equal(log.enabled, false);
    }, 'log lifecycle');
  });

  test('push clones: the entry survives the caller disposing its tensor and the end of a tidy scope', async () => {
    await assertNoLeak(() => {
      const log = new ScalingsLog();
      log.enable();
      tf.tidy(() => {
        log.push(entry(2, 7));
      });
      assert.deepEqual(Array.from(log.latest!.dataSync()), entryValues(2, 7));
      log.clear();
    }, 'push in tidy');
  });

  test('push rejects tensors that are not [B, S, L, C]', async () => {
    await assertNoLeak(() => {
      const log = new ScalingsLog();
      log.enable();
      const t = tf.zeros([2, 3, 4]);
      assert.throws(() => log.push(t), ShapeError);
      t.dispose();
      assert.equal(log.length, 0);
    }, 'rejected push');
  });

  test("bucketed(): PEFT's get_bucketed_scalings_log, keyed by sequence length in order of first appearance", async () => {
    await assertNoLeak(() => {
      const log = new ScalingsLog();
      log.enable();
      pushAll(log, [[3, 0], [2, 1], [3, 2], [5, 3], [2, 4]]);
      const buckets = log.bucketed();
      assert.deepEqual([...buckets.keys()], [3, 2, 5]);
      assert.deepEqual([...buckets.values()].map((b) => b.positions), [[0, 2], [1, 4], [3]]);
      const entries = log.entries();
      assert.equal(buckets.get(2)!.tensors[1], entries[4], 'the log’s own tensors');
      log.clear();
    }, 'bucketed');
  });
});

describe('ScalingsLog.flush', () => {
  test('one sequence length: <path>.npy of shape [N, B, S, L, C] (numpy’s bytes), log cleared, stale mapping removed', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const path = join(dir, 'single');
        await writeFile(`${path}-mapping.json`, '{"stale.npy": [0]}');
        const log = new ScalingsLog();
        log.enable();
        pushAll(log, [[2, 0], [2, 1]]);
        await log.flush(path);
        assert.equal(log.length, 0);
        assert.equal(log.enabled, true);
        assert.deepEqual(await readdir(dir), ['single.npy']);
        assert.equal((await readFile(`${path}.npy`)).toString('hex'), NUMPY_FILES['single.npy']);
        const arr = await loadNpy(`${path}.npy`);
        assert.deepEqual(arr.shape, [2, 1, 2, 2, 2]);
      }, 'single-file flush');
    });
  });

  test('a path that already ends with .npy is used as is (numpy.save does not append a second one)', async () => {
    await withTempDir(async (dir) => {
      const log = new ScalingsLog();
      log.enable();
      pushAll(log, [[2, 0]]);
      await log.flush(join(dir, 'x.npy'));
      assert.deepEqual(await readdir(dir), ['x.npy']);
    });
  });

  test('several sequence lengths: <path>-<S>.npy per bucket (numpy’s bytes) plus <path>-mapping.json', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const path = join(dir, 'log');
        const log = new ScalingsLog();
        log.enable();
        pushAll(log, [[3, 0], [2, 1], [3, 2]]);
        await log.flush(path);
        assert.equal(log.length, 0);
        assert.deepEqual((await readdir(dir)).sort(), ['log-2.npy', 'log-3.npy', 'log-mapping.json']);
        for (const name of ['log-3.npy', 'log-2.npy'] as const) {
          assert.equal((await readFile(join(dir, name))).toString('hex'), NUMPY_FILES[name], name);
        }
        // keys are the file names as written: the given path plus -<S>.npy (one line, Python's separators)
        assert.equal(await readFile(`${path}-mapping.json`, 'utf8'), `{${JSON.stringify(`${path}-3.npy`)}: [0, 2], ${JSON.stringify(`${path}-2.npy`)}: [1]}`);
      }, 'multi-file flush');
    });
  });

  test('errors: disabled, empty, entries of one length that cannot be stacked (nothing written, log kept)', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const path = join(dir, 'log');
        const log = new ScalingsLog();
        await rejectsWith(log.flush(path), ScalingsLogError, (e) => (e as ScalingsLogError).reason === 'disabled' && (e as ScalingsLogError).code === 'scalings_log');
        log.enable();
        await rejectsWith(log.flush(path), ScalingsLogError, (e) => (e as ScalingsLogError).reason === 'empty');
        pushAll(log, [[3, 0], [2, 1], [3, 2, 2]]); // same S, batch 1 vs 2
        await rejectsWith(log.flush(path), ScalingsLogError, (e) => (e as ScalingsLogError).reason === 'shape' && /entries 0 and 2/.test(e.message));
        assert.equal(log.length, 3);
        assert.deepEqual(await readdir(dir), []);
        log.disable();
        await rejectsWith(log.flush(path), ScalingsLogError, (e) => (e as ScalingsLogError).reason === 'disabled');
        log.clear();
      }, 'flush errors');
    });
  });
});

describe('loadScalingsLog', () => {
  test('round trip with several sequence lengths: original order, [1, B, S, L, C] entries, exact values', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const specs = [[3, 0], [2, 1], [3, 2], [5, 3], [2, 4]] as const;
        const log = new ScalingsLog();
        log.enable();
        pushAll(log, specs);
        const path = join(dir, 'log');
        await log.flush(path);
        assert.deepEqual((await readdir(dir)).sort(), ['log-2.npy', 'log-3.npy', 'log-5.npy', 'log-mapping.json']);
        const loaded = await loadScalingsLog(path);
        assert.equal(loaded.length, specs.length);
        loaded.forEach((t, i) => {
          const [s, k] = specs[i]!;
          assert.deepEqual(t.shape, [1, 1, s, 2, 2], `entry ${i}`);
          assert.equal(t.dtype, 'float32');
          assert.deepEqual(Array.from(t.dataSync()), entryValues(s, k), `entry ${i}`);
        });
        for (const t of loaded) t.dispose();
      }, 'multi-file round trip');
    });
  });

  test('round trip with one sequence length: accepts <path> (as given to flush) and <path>.npy', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const log = new ScalingsLog();
        log.enable();
        pushAll(log, [[4, 0], [4, 1], [4, 2]]);
        const path = join(dir, 'one');
        await log.flush(path);
        for (const p of [path, `${path}.npy`]) {
          const loaded = await loadScalingsLog(p);
          assert.deepEqual(loaded.map((t) => t.shape), [[1, 1, 4, 2, 2], [1, 1, 4, 2, 2], [1, 1, 4, 2, 2]]);
          loaded.forEach((t, k) => assert.deepEqual(Array.from(t.dataSync()), entryValues(4, k)));
          for (const t of loaded) t.dispose();
        }
      }, 'single-file round trip');
    });
  });

  test('reads files numpy wrote (relative mapping keys resolved next to the mapping file)', async () => {
    await withTempDir(async (dir) => {
      for (const [name, hex] of Object.entries(NUMPY_FILES)) await writeFile(join(dir, name), Buffer.from(hex, 'hex'));
      await writeFile(join(dir, 'log-mapping.json'), NUMPY_MAPPING);
      await assertNoLeak(async () => {
        const loaded = await loadScalingsLog(join(dir, 'log'));
        const expected = [[3, 0], [2, 1], [3, 2]] as const;
        assert.equal(loaded.length, 3);
        loaded.forEach((t, i) => {
          const [s, k] = expected[i]!;
          assert.deepEqual(t.shape, [1, 1, s, 2, 2]);
          assert.deepEqual(Array.from(t.dataSync()), entryValues(s, k));
        });
        for (const t of loaded) t.dispose();
        const single = await loadScalingsLog(join(dir, 'single'));
        assert.deepEqual(single.map((t) => Array.from(t.dataSync())), [entryValues(2, 0), entryValues(2, 1)]);
        for (const t of single) t.dispose();
      }, 'numpy files');
    });
  });

  test('absolute mapping keys are opened as written', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'a.npy'), Buffer.from(NUMPY_FILES['log-3.npy'], 'hex'));
      await writeFile(join(dir, 'b.npy'), Buffer.from(NUMPY_FILES['log-2.npy'], 'hex'));
      await writeFile(join(dir, 'log-mapping.json'), JSON.stringify({ [join(dir, 'a.npy')]: [2, 0], [join(dir, 'b.npy')]: [1] }));
      const loaded = await loadScalingsLog(join(dir, 'log'));
      assert.deepEqual(loaded.map((t) => t.shape[2]), [3, 2, 3]);
      assert.deepEqual(Array.from(loaded[0]!.dataSync()), entryValues(3, 2));
      assert.deepEqual(Array.from(loaded[2]!.dataSync()), entryValues(3, 0));
      for (const t of loaded) t.dispose();
    });
  });

  test('errors: nothing there, malformed mappings, a file that holds fewer entries than listed (no leaks)', async () => {
    await withTempDir(async (dir) => {
      await assertNoLeak(async () => {
        const path = join(dir, 'log');
        const reason = (r: string) => (e: Error) => (e as ScalingsLogError).reason === r;
        await rejectsWith(loadScalingsLog(path), ScalingsLogError, reason('not_found'));
        for (const [name, hex] of Object.entries(NUMPY_FILES)) await writeFile(join(dir, name), Buffer.from(hex, 'hex'));
        const cases: [string, string][] = [
          ['not json', 'invalid'],
          ['[1, 2]', 'invalid'],
          ['{"log-3.npy": [0, "a"]}', 'invalid'],
          ['{"log-3.npy": [0, 2], "log-2.npy": [2]}', 'invalid'], // listed twice
          ['{"log-3.npy": [0, 3], "log-2.npy": [1]}', 'invalid'], // 2 missing
          ['{"log-3.npy": [0, 1, 2]}', 'invalid'], // the file holds 2 entries
          ['{"log-2.npy": [0], "log-3.npy": [1, 2, 3]}', 'invalid'], // after a file was read: disposed
          ['{"log-3.npy": [0, 2], "gone.npy": [1]}', 'not_found'],
        ];
        for (const [text, r] of cases) {
          await writeFile(`${path}-mapping.json`, text);
          await rejectsWith(loadScalingsLog(path), ScalingsLogError, reason(r));
        }
        await rm(`${path}-mapping.json`);
        await writeFile(`${path}.npy`, Buffer.from('not npy'));
        await rejectsWith(loadScalingsLog(path), NpyError);
      }, 'load errors');
    });
  });
});
