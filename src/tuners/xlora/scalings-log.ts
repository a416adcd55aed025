/**
 * X-LoRA's scalings log (spec `xlora.md` §8): the `[B, S, L, C]` scalings of each classifier call, kept while
 * logging is enabled, bucketed by sequence length as PEFT's `get_bucketed_scalings_log`, and written to / read from
 * `.npy` files in the original package's layout (`flush_log_scalings` / `xlora_utils.load_scalings_log`), so logs
 * move between peft-ts and Python.
 *
 * File layout written by {@link ScalingsLog.flush}`(path)` (`path` without extension, as upstream):
 * - every entry has the same sequence length S: `<path>.npy`, shape `[N, B, S, L, C]` (numpy's `save` appends
 *   `.npy` only when `path` does not already end with it, and so do we);
 * - otherwise, one file per S, `<path>-<S>.npy` of shape `[n_S, B, S, L, C]` (entries in log order), plus
 *   `<path>-mapping.json`: one-line JSON (Python `json.dumps` defaults) mapping each file name, spelled exactly as
 *   it was written (the `path` string given, plus `-<S>.npy`; relative paths stay relative), to the list of log
 *   positions it holds, buckets in order of first appearance: `{"out-3.npy": [0, 2], "out-5.npy": [1]}`.
 *
 * Differences from upstream, on purpose: the original buckets by `shape[0]`, the batch size (a bug; PEFT buckets by
 * `shape[1]`, which we follow), and its loader opens exactly `path` although the flush wrote `path.npy`
 * ({@link loadScalingsLog} accepts either).
 */
import { pythonJsonDumps } from '../python-json.js';
import { readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { tf } from '../../engine/tf.js';
import { ScalingsLogError, ShapeError } from '../../errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { loadNpy, npyToTensor, saveNpy } from '../../io/npy.js';

/** The entries of one sequence length, with their positions in the log (ascending). */
export interface ScalingsBucket {
  readonly positions: number[];
  /** Owned by the log (see {@link ScalingsLog.entries}). */
  readonly tensors: tf.Tensor[];
}

/** numpy's `save(file)`: appends `.npy` unless the name already ends with it. */
function npyName(path: string): string {
  return path.endsWith('.npy') ? path : `${path}.npy`;
}

/** Python's `json.dumps` of a `{str: [int]}` dict with default arguments (one line, insertion order). */
function mappingJson(mapping: ReadonlyMap<string, readonly number[]>): string {
  return pythonJsonDumps(Object.fromEntries([...mapping].map(([k, v]) => [k, [...v]])));
}

/**
 * The log of one X-LoRA model. State is explicit (no globals): a model owns one. Starts disabled and empty.
 *
 * Ownership: {@link push} keeps its own clone of the caller's tensor; the log's tensors belong to the log and are
 * disposed by {@link clear} (and by a successful {@link flush}). Tensors returned by {@link entries},
 * {@link latest} and {@link bucketed} are the log's own: do not dispose them, and clone any you need after the
 * next `clear()`/`flush()`.
 */
export class ScalingsLog {
  #enabled = false;
  #entries: tf.Tensor[] = [];

  /** Whether {@link push} records. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Number of entries. */
  get length(): number {
    return this.#entries.length;
  }

  enable(): void {
    this.#enabled = true;
  }

  /** Stops recording; the entries are kept. */
  disable(): void {
    this.#enabled = false;
  }

  /** Disposes and drops every entry (logging stays enabled or disabled). */
  clear(): void {
    for (const t of this.#entries) t.dispose();
    this.#entries = [];
  }

  /**
   * Records a clone of `scalings` (`[B, S, L, C]`, post-softmax, pre-top-k; the caller keeps ownership of its
   * tensor). Ignored while disabled. Safe inside `tf.tidy` (the clone is kept).
   */
  push(scalings: tf.Tensor): void {
    if (!this.#enabled) return;
    if (scalings.rank !== 4) {
      throw new ShapeError(`X-LoRA scalings must be [batch, seq_len, n_layers, n_experts], got shape [${scalings.shape.join(', ')}]`);
    }
    this.#entries.push(tf.keep(scalings.clone()));
  }

  /**
   * The entries in log order (a new array of the log's tensors, like upstream's `get_scalings_log`, which returns a
   * shallow copy of its list). The tensors stay owned by the log.
   */
  entries(): tf.Tensor[] {
    return [...this.#entries];
  }

  /** The last entry (owned by the log), or `undefined` when the log is empty. */
  get latest(): tf.Tensor | undefined {
    return this.#entries.at(-1);
  }

  /**
   * PEFT's `get_bucketed_scalings_log`: entries grouped by sequence length (`shape[1]`), keys in order of first
   * appearance, each with the log positions of its entries. The tensors stay owned by the log.
   */
  bucketed(): Map<number, ScalingsBucket> {
    const buckets = new Map<number, ScalingsBucket>();
    this.#entries.forEach((t, i) => {
      const s = t.shape[1]!;
      let bucket = buckets.get(s);
      if (!bucket) buckets.set(s, (bucket = { positions: [], tensors: [] }));
      bucket.positions.push(i);
      bucket.tensors.push(t);
    });
    return buckets;
  }

  /**
   * Writes the log as the original `flush_log_scalings(path)` does, but bucketed by sequence length (see the module
   * comment for the file names), atomically file by file, then clears the log. With a single bucket a stale
   * `<path>-mapping.json` from an earlier flush is removed, since `loadScalingsLog` would prefer it.
   *
   * Errors (`ScalingsLogError`, nothing written, log kept): `reason` "disabled" when logging is disabled, "empty"
   * when there is nothing to write, "shape" when entries of one sequence length differ in batch size, layers or
   * experts (they cannot be stacked). Entries must be float32, int32 or bool (`.npy` dtypes).
   */
  async flush(path: string): Promise<void> {
    if (!this.#enabled) throw new ScalingsLogError('disabled', 'Scalings logging is disabled; enable it before flushing the log.', { path });
    if (this.#entries.length === 0) throw new ScalingsLogError('empty', 'No log scalings to flush.', { path });
    const buckets = this.bucketed();
    for (const [s, { positions, tensors }] of buckets) {
      const first = tensors[0]!;
      tensors.forEach((t, k) => {
        if (t.dtype !== first.dtype || t.shape.some((d, axis) => d !== first.shape[axis])) {
          throw new ScalingsLogError(
            'shape',
            `log entries ${positions[0]} and ${positions[k]} (sequence length ${s}) cannot be stacked: ` +
              `[${first.shape.join(', ')}] ${first.dtype} vs [${t.shape.join(', ')}] ${t.dtype}`,
            { path },
          );
        }
      });
    }
    const stackAndSave = async (file: string, tensors: tf.Tensor[]) => {
      const stacked = tf.stack(tensors);
      try {
        await saveNpy(file, stacked);
      } finally {
        stacked.dispose();
      }
    };
    if (buckets.size === 1) {
      await stackAndSave(npyName(path), this.#entries);
      await rm(`${path}-mapping.json`, { force: true });
    } else {
      const mapping = new Map<string, number[]>();
      for (const [s, { positions, tensors }] of buckets) {
        const file = `${path}-${s}.npy`;
        await stackAndSave(file, tensors);
        mapping.set(file, positions);
      }
      await writeFileAtomic(`${path}-mapping.json`, mappingJson(mapping));
    }
    this.clear();
  }
}

export interface LoadScalingsLogOptions {
  /** Print each file as it is read (the original shows a progress bar). */
  readonly verbose?: boolean;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Splits `[N, ...]` into N `[1, ...]` tensors and disposes the whole. */
function splitFirstAxis(whole: tf.Tensor): tf.Tensor[] {
  try {
    return whole.shape[0] === 0 ? [] : tf.split(whole, whole.shape[0]!, 0);
  } finally {
    whole.dispose();
  }
}

/**
 * Reads a log written by {@link ScalingsLog.flush} or by the original's `flush_log_scalings`, as the original's
 * `xlora_utils.load_scalings_log(path)`: the entries in original log order, each of shape `[1, B, S, L, C]` (the
 * leading axis of size 1 is kept, as upstream returns it), float32 (float16/float64 files are converted). The
 * caller owns the returned tensors.
 *
 * - `<path>-mapping.json` exists: each listed file is read and split along axis 0, piece i going to the i-th
 *   listed position. A file name is opened as written (relative names against the current directory, as numpy
 *   does); if that does not exist, the file of the same base name next to the mapping file (the folder was moved,
 *   or the log was flushed from another directory). The positions must cover 0..N-1 exactly once, and each file
 *   must hold as many entries as it lists (upstream silently drops or mis-orders them otherwise).
 * - else: `<path>` if it is a file, otherwise `<path>.npy` (upstream opens exactly `path`, although its flush
 *   writes `path.npy`).
 *
 * Errors (`ScalingsLogError`): "not_found" when no file exists, "invalid" for a malformed mapping or one that does
 * not fit its arrays; `NpyError` for a malformed `.npy` file.
 */
export async function loadScalingsLog(path: string, options: LoadScalingsLogOptions = {}): Promise<tf.Tensor[]> {
  const mappingFile = `${path}-mapping.json`;
  const say = (message: string) => {
    if (options.verbose) console.error(`peft-ts: ${message}`);
  };
  if (!(await isFile(mappingFile))) {
    const file = (await isFile(path)) ? path : (await isFile(`${path}.npy`)) ? `${path}.npy` : undefined;
    if (file === undefined) {
      throw new ScalingsLogError('not_found', `No scalings log at ${path}: none of ${mappingFile}, ${path}, ${path}.npy exists.`, { path });
    }
    say(`loading scalings log ${file}`);
    return splitFirstAxis(npyToTensor(await loadNpy(file)));
  }

  const invalid = (message: string) => new ScalingsLogError('invalid', `${mappingFile}: ${message}`, { path: mappingFile });
  let mapping: unknown;
  try {
    mapping = JSON.parse(await readFile(mappingFile, 'utf8'));
  } catch (e) {
    throw new ScalingsLogError('invalid', `${mappingFile} is not valid JSON: ${(e as Error).message}`, { path: mappingFile, cause: e });
  }
  if (typeof mapping !== 'object' || mapping === null || Array.isArray(mapping)) throw invalid('must be an object mapping .npy file names to lists of log positions');
  const entries = Object.entries(mapping as Record<string, unknown>);
  const seen = new Set<number>();
  for (const [file, positions] of entries) {
    if (!Array.isArray(positions) || !positions.every((i) => typeof i === 'number' && Number.isSafeInteger(i) && i >= 0)) {
      throw invalid(`the positions of ${JSON.stringify(file)} must be a list of non-negative integers`);
    }
    for (const i of positions as number[]) {
      if (seen.has(i)) throw invalid(`log position ${i} is listed twice`);
      seen.add(i);
    }
  }
  const n = seen.size;
  for (let i = 0; i < n; i++) if (!seen.has(i)) throw invalid(`log position ${i} is missing (positions must cover 0..${n - 1})`);

  const out: (tf.Tensor | undefined)[] = new Array<tf.Tensor | undefined>(n).fill(undefined);
  try {
    let k = 0;
    for (const [file, positions] of entries as [string, number[]][]) {
      k++;
      let resolved = file;
      if (!(await isFile(resolved))) {
        const beside = join(dirname(mappingFile), basename(file));
        if (!(await isFile(beside))) {
          throw new ScalingsLogError('not_found', `${mappingFile} lists ${file}, which exists neither ${isAbsolute(file) ? 'there' : 'relative to the current directory'} nor as ${beside}.`, { path: file });
        }
        resolved = beside;
      }
      say(`loading scalings log file ${k}/${entries.length}: ${resolved}`);
      const pieces = splitFirstAxis(npyToTensor(await loadNpy(resolved)));
      if (pieces.length !== positions.length) {
        for (const t of pieces) t.dispose();
        throw invalid(`${file} holds ${pieces.length} entries but ${positions.length} positions are listed for it`);
      }
      pieces.forEach((t, j) => (out[positions[j]!] = t));
    }
  } catch (e) {
    for (const t of out) t?.dispose();
    throw e;
  }
  return out as tf.Tensor[];
}
