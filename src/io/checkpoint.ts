/**
 * Hugging Face model checkpoints in a folder: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"metadata": {"total_size": N}, "weight_map": {key: shardFile}}`), read and
 * written the way transformers does.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { tf } from '../engine/tf.js';
import { ConfigError, SafetensorsError } from '../errors.js';
import { writeJsonAtomic } from './atomic.js';
import {
  saveSafetensors,
  SafetensorsFile,
  safetensorsByteLength,
  type SafetensorsFloatDtype,
  type TensorCollection,
} from './safetensors.js';
import { compareUtf8 } from './safetensors-header.js';

export const SAFE_WEIGHTS_NAME = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';
/** transformers' default `max_shard_size` ("5GB", decimal). */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;

export interface CheckpointIndex {
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly weight_map: Readonly<Record<string, string>>;
}

export interface SaveCheckpointOptions {
  /** Bytes per shard, or a size like "5GB" / "500MB" / "2GiB" (transformers' convention). Default 5GB. */
  readonly maxShardSize?: number | string;
  /** Dtype for float tensors (default F32). */
  readonly dtype?: SafetensorsFloatDtype;
  /** Per-file `__metadata__`; default `{ format: 'pt' }` as transformers writes. */
  readonly metadata?: Readonly<Record<string, string>>;
}

function notFoundMessage(dir: string): string {
  const bin = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => existsSync(join(dir, f)));
  const found = bin ? ` It has ${bin}, a pickled PyTorch checkpoint, which peft-ts cannot read (unpickling is unsafe and needs torch).` : '';
  return (
    `${dir} has neither ${SAFE_WEIGHTS_NAME} nor ${SAFE_WEIGHTS_INDEX_NAME}.${found} Convert .bin weights to safetensors in Python: ` +
    '`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`, or ' +
    '`safetensors.torch.save_file({k: v.contiguous() for k, v in torch.load("pytorch_model.bin").items()}, "model.safetensors", metadata={"format": "pt"})` ' +
    '(clone tied weights first).'
  );
}

/** Reads and validates `model.safetensors.index.json`. */
export async function readCheckpointIndex(path: string): Promise<CheckpointIndex> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new SafetensorsError('index_invalid', `cannot read the shard index: ${(cause as Error).message}`, { path, cause });
  }
  const obj = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  const map = obj?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new SafetensorsError('index_invalid', 'the index must be an object with a "weight_map" object', { path });
  }
  for (const [key, file] of Object.entries(map)) {
    // Shards live beside the index: a path component would let an index point anywhere on disk.
    if (typeof file !== 'string' || file === '' || /[/\\]/.test(file) || file === '.' || file === '..') {
      throw new SafetensorsError('index_invalid', `weight_map["${key}"] must be a shard file name in the same folder, got ${JSON.stringify(file)}`, { path });
    }
  }
  const metadata = obj?.metadata;
  return {
    metadata: typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>) : {},
    weight_map: map as Record<string, string>,
  };
}

/**
 * Loads every tensor of the checkpoint in `dir` (single file or shards). Shards are opened one at a time and only
 * the keys the index maps to them are read.
 */
export async function loadCheckpoint(dir: string): Promise<Map<string, tf.Tensor>> {
  const single = join(dir, SAFE_WEIGHTS_NAME);
  if (existsSync(single)) {
    const file = await SafetensorsFile.open(single);
    try {
      return await file.readAll();
    } finally {
      await file.close();
    }
  }
  const indexPath = join(dir, SAFE_WEIGHTS_INDEX_NAME);
  if (!existsSync(indexPath)) throw new SafetensorsError('not_found', notFoundMessage(dir), { path: dir });

  const index = await readCheckpointIndex(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [key, shard] of Object.entries(index.weight_map)) {
    const keys = byShard.get(shard) ?? [];
    keys.push(key);
    byShard.set(shard, keys);
  }
  for (const shard of byShard.keys()) {
    if (!existsSync(join(dir, shard))) {
      throw new SafetensorsError('index_invalid', `shard "${shard}" listed in the index does not exist (incomplete download?)`, { path: indexPath });
    }
  }

  const out = new Map<string, tf.Tensor>();
  try {
    for (const [shard, keys] of [...byShard].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const file = await SafetensorsFile.open(join(dir, shard));
      try {
        for (const key of keys) {
          if (!file.has(key)) {
            throw new SafetensorsError('missing_tensor', `the index maps "${key}" to this shard but the shard has no such tensor`, { path: file.path });
          }
          out.set(key, await file.readTensor(key));
        }
      } finally {
        await file.close();
      }
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/** Parses "5GB", "500MB", "2GiB", "100kB" (decimal for kB/MB/GB, binary for KiB/MiB/GiB) or a byte count. */
export function parseShardSize(size: number | string): number {
  const bad = (message: string) => new ConfigError([{ code: 'invalid_value', path: ['maxShardSize'], message }], 'checkpoint options');
  if (typeof size === 'number') {
    if (!(size >= 1) || !Number.isFinite(size)) throw bad(`must be a positive number of bytes, got ${size}`);
    return Math.floor(size);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$/i.exec(size);
  if (!m) throw bad(`"${size}" is not a size like "5GB", "500MB" or "2GiB"`);
  const units: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  return parseShardSize(Number(m[1]) * units[(m[2] ?? 'B').toUpperCase()]!);
}

/**
 * Splits tensors into shards like huggingface_hub's `split_state_dict_into_shards`: in the given order, a tensor
 * that would push the current shard past the limit starts a new one; a tensor larger than the limit gets its own.
 */
export function planShards(tensors: TensorCollection, maxShardSize: number, dtype: SafetensorsFloatDtype = 'F32'): { shards: string[][]; totalSize: number } {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentSize = 0;
  let totalSize = 0;
  const entries = tensors instanceof Map ? [...(tensors as ReadonlyMap<string, tf.Tensor>)] : Object.entries(tensors as Record<string, tf.Tensor>);
  for (const [key, t] of entries) {
    const size = safetensorsByteLength(t, dtype);
    totalSize += size;
    if (size > maxShardSize) {
      shards.push([key]);
      continue;
    }
    if (currentSize + size > maxShardSize && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(key);
    currentSize += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return { shards, totalSize };
}

function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

const CHECKPOINT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;

/**
 * Writes `model.safetensors`, or shards `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json`
 * when the tensors exceed `maxShardSize`. Every file is written atomically; checkpoint files of an earlier save
 * that this one does not produce are removed afterwards (otherwise a stale `model.safetensors` would shadow new shards).
 */
export async function saveCheckpoint(dir: string, tensors: TensorCollection, options: SaveCheckpointOptions = {}): Promise<void> {
  const maxShardSize = parseShardSize(options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  const fileOptions = { dtype: options.dtype, metadata: options.metadata ?? { format: 'pt' } };
  const lookup = tensors instanceof Map ? (tensors as ReadonlyMap<string, tf.Tensor>) : new Map(Object.entries(tensors as Record<string, tf.Tensor>));
  const { shards, totalSize } = planShards(lookup, maxShardSize, options.dtype);
  await mkdir(dir, { recursive: true });

  const written = new Set<string>();
  if (shards.length === 1) {
    await saveSafetensors(join(dir, SAFE_WEIGHTS_NAME), lookup, fileOptions);
    written.add(SAFE_WEIGHTS_NAME);
  } else {
    const weightMap: Record<string, string> = {};
    for (const [i, keys] of shards.entries()) {
      const name = shardName(i, shards.length);
      await saveSafetensors(join(dir, name), new Map(keys.map((k) => [k, lookup.get(k)!])), fileOptions);
      for (const k of keys) weightMap[k] = name;
      written.add(name);
    }
    // transformers writes the index with sort_keys=True
    const sortedMap = Object.fromEntries(Object.keys(weightMap).sort(compareUtf8).map((k) => [k, weightMap[k]!]));
    await writeJsonAtomic(join(dir, SAFE_WEIGHTS_INDEX_NAME), { metadata: { total_size: totalSize }, weight_map: sortedMap });
    written.add(SAFE_WEIGHTS_INDEX_NAME);
  }
  for (const f of await readdir(dir)) {
    if (CHECKPOINT_FILE.test(f) && !written.has(f)) await rm(join(dir, f), { force: true });
  }
}
