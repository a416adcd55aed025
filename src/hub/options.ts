import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { getHFHubCachePath } from '@huggingface/hub';
import { DEFAULT_ALLOW_PATTERNS, DEFAULT_IGNORE_PATTERNS } from './patterns.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** One progress report for one file: bytes on disk so far (resumed bytes included) out of the total. */
export interface DownloadProgress {
  readonly repoId: string;
  readonly file: string;
  readonly downloadedBytes: number;
  readonly totalBytes: number | undefined;
}

/** How `resolvePretrained` reaches the hub and where it caches. Environment variables follow huggingface_hub. */
export interface HubOptions {
  /** Branch, tag or commit hash. Default `main`. */
  readonly revision?: string;
  /** Hub cache root (the folder holding `models--org--name`). Default `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  readonly cacheDir?: string;
  /** Access token; `false` sends none. Default `HF_TOKEN`, else the token file `huggingface-cli login` writes. */
  readonly token?: string | false;
  /** Hub endpoint. Default `HF_ENDPOINT`, else https://huggingface.co. */
  readonly hubUrl?: string;
  /** Resolve from the cache only, never touching the network. Also on whenever `HF_HUB_OFFLINE` is set to a true value. */
  readonly localFilesOnly?: boolean;
  /** fnmatch globs of repo files to fetch (`*` crosses `/`). Default {@link DEFAULT_ALLOW_PATTERNS}. */
  readonly allowPatterns?: readonly string[];
  /** fnmatch globs never fetched, applied after `allowPatterns`. Default {@link DEFAULT_IGNORE_PATTERNS}. */
  readonly ignorePatterns?: readonly string[];
  /**
   * Ask the hub what `revision` points to even when a complete snapshot of it is cached. Off by default: a cached
   * snapshot is used without any request, so a moved branch is only picked up with this option (or a commit hash).
   */
  readonly checkForUpdates?: boolean;
  /** Called as file bytes arrive (and once with the cached size for files resumed from a partial download). */
  readonly onProgress?: (progress: DownloadProgress) => void;
  /** Draw a terminal progress bar for large files. Default: stderr is a TTY and `HF_HUB_DISABLE_PROGRESS_BARS` is unset. */
  readonly progressBar?: boolean;
  /** Custom fetch (proxies, instrumentation). Default the global `fetch`. */
  readonly fetch?: typeof fetch;
}

export interface HubSettings {
  readonly revision: string;
  readonly cacheDir: string;
  readonly token: string | undefined;
  readonly endpoint: string;
  readonly offline: boolean;
  readonly allowPatterns: readonly string[];
  readonly ignorePatterns: readonly string[];
  readonly checkForUpdates: boolean;
  readonly onProgress: ((progress: DownloadProgress) => void) | undefined;
  readonly progressBar: boolean;
  readonly fetch: typeof fetch;
  /** Timeout for metadata requests (HF_HUB_ETAG_TIMEOUT, seconds, default 10). */
  readonly metadataTimeoutMs: number;
  /** Longest silence while downloading a file before retrying (HF_HUB_DOWNLOAD_TIMEOUT, seconds, default 10). */
  readonly downloadTimeoutMs: number;
}

/** huggingface_hub's notion of a true environment flag. */
export function envFlag(name: string): boolean {
  const v = process.env[name]?.trim().toUpperCase();
  return v === '1' || v === 'ON' || v === 'YES' || v === 'TRUE';
}

function envSeconds(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return (Number.isFinite(v) && v > 0 ? v : fallback) * 1000;
}

function hfHome(): string {
  return process.env['HF_HOME'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'huggingface');
}

/** Token from the environment or the file `huggingface-cli login` / `hf auth login` writes. */
export function defaultToken(): string | undefined {
  const env = process.env['HF_TOKEN'] ?? process.env['HUGGING_FACE_HUB_TOKEN'];
  if (env?.trim()) return env.trim();
  try {
    const t = readFileSync(process.env['HF_TOKEN_PATH'] ?? join(hfHome(), 'token'), 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

export function resolveSettings(options: HubOptions = {}): HubSettings {
  const endpoint = (options.hubUrl ?? process.env['HF_ENDPOINT'] ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  return {
    revision: options.revision ?? DEFAULT_REVISION,
    cacheDir: resolve(options.cacheDir ?? getHFHubCachePath()),
    token: options.token === false ? undefined : (options.token ?? defaultToken()),
    endpoint,
    offline: options.localFilesOnly === true || envFlag('HF_HUB_OFFLINE'),
    allowPatterns: options.allowPatterns ?? DEFAULT_ALLOW_PATTERNS,
    ignorePatterns: options.ignorePatterns ?? DEFAULT_IGNORE_PATTERNS,
    checkForUpdates: options.checkForUpdates ?? false,
    onProgress: options.onProgress,
    progressBar: options.progressBar ?? (process.stderr.isTTY === true && !envFlag('HF_HUB_DISABLE_PROGRESS_BARS')),
    fetch: options.fetch ?? globalThis.fetch,
    metadataTimeoutMs: envSeconds('HF_HUB_ETAG_TIMEOUT', 10),
    downloadTimeoutMs: envSeconds('HF_HUB_DOWNLOAD_TIMEOUT', 10),
  };
}
