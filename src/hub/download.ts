/**
 * One file from the hub into the blob store, the way huggingface_hub does it: HEAD the resolve URL for the ETag and
 * size, stream into `blobs/<etag>.incomplete`, resume that partial with an HTTP Range request (after a dropped
 * connection within this call, or one left by an earlier process), check the bytes against the ETag, then rename.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HubError } from '../errors.js';
import { httpError, isNetworkError, type FailureContext, type HubClient } from './http.js';
import type { HubSettings } from './options.js';
import { FileProgress } from './progress.js';

export interface FileMetadata {
  /** Blob name: the LFS sha256 (X-Linked-Etag) or the git blob sha1 (ETag). */
  readonly etag: string;
  readonly size: number | undefined;
  readonly commit: string | undefined;
}

const MAX_RETRIES = 5;
const MAX_REDIRECTS = 5;

/** huggingface_hub strips weak markers and quotes; the result names a file, so it must be a plain token. */
function normalizeEtag(raw: string | null): string | undefined {
  const etag = raw?.replace(/^W\//, '').replace(/^"|"$/g, '');
  return etag && /^[A-Za-z0-9._-]+$/.test(etag) ? etag : undefined;
}

/** HEAD on the resolve URL. Relative redirects (renamed repos) are followed; absolute ones go to the CDN for LFS
 *  files, and the metadata we need is on the redirect response itself (X-Linked-Etag / X-Linked-Size). */
export async function fetchFileMetadata(client: HubClient, ctx: FailureContext, url: string): Promise<FileMetadata> {
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await client.fetch(url, { method: 'HEAD', redirect: 'manual', headers: { 'accept-encoding': 'identity' } });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && !/^[a-z][a-z0-9+.-]*:/i.test(location)) {
      url = new URL(location, url).href;
      continue;
    }
    if (res.status >= 400) throw httpError(res.status, { ...ctx, errorCode: res.headers.get('x-error-code') ?? undefined });
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (!etag) {
      throw new HubError(ctx.repoId, `${ctx.endpoint} sent no usable ETag for "${ctx.file}"; is it a Hugging Face hub endpoint?`, {
        status: res.status,
      });
    }
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    return { etag, size: Number.isSafeInteger(size) ? size : undefined, commit: res.headers.get('x-repo-commit') ?? undefined };
  }
  throw new HubError(ctx.repoId, `Too many redirects resolving "${ctx.file}" in ${ctx.repoId}.`);
}

/** Incremental check of the bytes against the ETag: sha256 for LFS files, git's blob sha1 for small ones. */
class ContentCheck {
  private hash: Hash | undefined;
  private hashed = 0;
  private readonly algorithm: 'sha256' | 'sha1' | undefined;

  constructor(private readonly etag: string, private readonly size: number | undefined) {
    this.algorithm = /^[0-9a-f]{64}$/.test(etag) ? 'sha256' : /^[0-9a-f]{40}$/.test(etag) && size !== undefined ? 'sha1' : undefined;
  }

  /** Makes the running hash cover exactly the first `length` bytes of `path` (re-reading them after a resume). */
  async syncTo(path: string, length: number): Promise<void> {
    if (!this.algorithm || (this.hash && this.hashed === length)) return;
    this.hash = createHash(this.algorithm);
    if (this.algorithm === 'sha1') this.hash.update(`blob ${this.size}\0`);
    this.hashed = 0;
    if (length > 0) {
      for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) this.update(chunk as Buffer);
    }
  }

  update(chunk: Uint8Array): void {
    this.hash?.update(chunk);
    this.hashed += chunk.length;
  }

  /** Finalises the hash; a later `syncTo` starts a fresh one. */
  matches(): boolean {
    if (!this.algorithm) return true;
    const ok = this.hash?.digest('hex') === this.etag;
    this.hash = undefined;
    return ok;
  }
}

/** A transient failure (body cut short, 5xx, 429) retried like a network error. */
class TransferInterrupted extends Error {}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

function rangeStart(contentRange: string | null): number | undefined {
  const m = /^bytes (\d+)-/.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

interface TransferState {
  readonly client: HubClient;
  readonly settings: HubSettings;
  readonly ctx: FailureContext;
  readonly url: string;
  readonly tmp: string;
  readonly meta: FileMetadata;
  readonly check: ContentCheck;
  readonly progress: FileProgress;
  resumed: boolean;
}

/** One GET into the `.incomplete` file, appending from its current size when the server honours Range. */
async function transfer(s: TransferState): Promise<void> {
  const { size } = s.meta;
  let start = await sizeOf(s.tmp);
  if (size !== undefined && start > size) start = 0; // not a prefix of this blob: start over
  if (size !== undefined && start === size && start > 0) return; // finished earlier, only the rename was missing
  const ctl = new AbortController();
  const idle = () => ctl.abort(new DOMException(`no data for ${s.settings.downloadTimeoutMs} ms`, 'TimeoutError'));
  let timer = setTimeout(idle, s.settings.downloadTimeoutMs);
  try {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (start > 0) headers['range'] = `bytes=${start}-`;
    await s.check.syncTo(s.tmp, start); // before the request, so re-hashing a large partial cannot trip the timer
    const res = await s.client.fetch(s.url, { headers, signal: ctl.signal });
    if (res.status === 416 && start > 0) {
      await res.body?.cancel();
      await truncate(s.tmp, 0); // the server disagrees about the length: drop the partial, retry whole
      throw new TransferInterrupted('range not satisfiable');
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body?.cancel();
      throw new TransferInterrupted(`HTTP ${res.status}`);
    }
    if (!res.ok || !res.body) throw httpError(res.status, { ...s.ctx, errorCode: res.headers.get('x-error-code') ?? undefined });
    const append = start > 0 && res.status === 206 && rangeStart(res.headers.get('content-range')) === start;
    if (!append) {
      start = 0;
      await s.check.syncTo(s.tmp, 0);
    }
    s.resumed ||= append;
    const fh = await open(s.tmp, append ? 'a' : 'w');
    let done = start;
    try {
      s.progress.update(done);
      const reader = res.body.getReader();
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        clearTimeout(timer);
        timer = setTimeout(idle, s.settings.downloadTimeoutMs);
        await fh.write(value);
        s.check.update(value);
        done += value.length;
        s.progress.update(done);
      }
    } finally {
      await fh.close();
    }
    if (size !== undefined && done < size) throw new TransferInterrupted(`connection closed at byte ${done} of ${size}`);
    if (size !== undefined && done > size) {
      await rm(s.tmp, { force: true });
      throw new HubError(s.ctx.repoId, `"${s.ctx.file}" is ${done} bytes but the hub announced ${size}; partial download deleted.`);
    }
  } finally {
    clearTimeout(timer);
  }
}

const inFlight = new Map<string, Promise<void>>();

/** Downloads the file at `url` into `blobPath` (resuming `blobPath.incomplete`); concurrent calls for one blob share the work. */
export function downloadBlob(
  client: HubClient,
  settings: HubSettings,
  ctx: FailureContext,
  url: string,
  meta: FileMetadata,
  blobPath: string,
): Promise<void> {
  const running = inFlight.get(blobPath);
  if (running) return running;
  const job = downloadBlobOnce(client, settings, ctx, url, meta, blobPath).finally(() => inFlight.delete(blobPath));
  inFlight.set(blobPath, job);
  return job;
}

async function downloadBlobOnce(
  client: HubClient,
  settings: HubSettings,
  ctx: FailureContext,
  url: string,
  meta: FileMetadata,
  blobPath: string,
): Promise<void> {
  const tmp = `${blobPath}.incomplete`;
  await mkdir(dirname(blobPath), { recursive: true });
  const progress = new FileProgress(ctx.repoId, ctx.file ?? '', meta.size, settings.onProgress, settings.progressBar);
  const state: TransferState = { client, settings, ctx, url, tmp, meta, check: new ContentCheck(meta.etag, meta.size), progress, resumed: false };
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await transfer(state);
      } catch (err) {
        const transient = err instanceof TransferInterrupted || isNetworkError(err);
        if (transient && attempt < MAX_RETRIES) {
          await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
          continue;
        }
        if (err instanceof TransferInterrupted) {
          throw new HubError(
            ctx.repoId,
            `Downloading "${ctx.file}" from ${ctx.endpoint} failed ${MAX_RETRIES + 1} times (last: ${err.message}); ` +
              `${await sizeOf(tmp)} bytes are kept in ${tmp} and the next call resumes from there.`,
            { cause: err },
          );
        }
        throw err;
      }
      await state.check.syncTo(tmp, await sizeOf(tmp));
      if (state.check.matches()) break;
      // A resumed partial may come from a corrupted earlier run: one clean retry before giving up.
      await rm(tmp, { force: true });
      if (!state.resumed || attempt >= MAX_RETRIES) {
        throw new HubError(ctx.repoId, `Downloaded "${ctx.file}" does not match its checksum (${meta.etag}); deleted it. Try again.`);
      }
      state.resumed = false;
    }
    await rename(tmp, blobPath);
  } finally {
    progress.stop();
  }
}
