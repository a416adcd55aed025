import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { modelInfo } from '@huggingface/hub';
import { HubError, HubNotCachedError } from '../errors.js';
import { isCommitHash, isSafeRelativePath, RepoCache } from './cache.js';
import { downloadBlob, fetchFileMetadata } from './download.js';
import { HubClient, isNetworkError, toHubError, type FailureContext } from './http.js';
import { resolveSettings, type HubOptions, type HubSettings } from './options.js';
import { filterRepoFiles } from './patterns.js';

/** huggingface_hub's `validate_repo_id`: `name` or `org/name`, word characters, `-` and `.`, at most 96 each. */
const REPO_ID_RE = /^(?:[\w.-]{1,96}\/)?[\w.-]{1,96}$/;

export function isValidRepoId(id: string): boolean {
  return (
    REPO_ID_RE.test(id) &&
    !id.includes('--') &&
    !id.includes('..') &&
    !id.endsWith('.git') &&
    id.split('/').every((part) => !/^[-.]|[-.]$/.test(part))
  );
}

async function localDirectory(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) return resolvePath(path);
  } catch {
    return undefined;
  }
  throw new HubError(path, `"${path}" is a file; pass the folder that holds the model or adapter files.`);
}

function looksLikePath(s: string): boolean {
  return /^(\.|\/|~|[A-Za-z]:)/.test(s) || s.includes('\\') || s.split('/').length > 2;
}

function brief(list: readonly string[], n = 8): string {
  return list.length > n ? `${list.slice(0, n).join(', ')}, ... (${list.length} in all)` : list.join(', ');
}

type Wanted = (files: readonly string[]) => string[];

interface CacheLookup {
  readonly dir?: string;
  readonly missing: readonly string[];
}

/**
 * The cached snapshot for `revision`. With the file list recorded at download time, `missing` names the wanted
 * files that are absent; without it (a cache filled by Python) the snapshot is taken as is, as huggingface_hub does.
 */
async function lookupCache(cache: RepoCache, revision: string, wanted: Wanted): Promise<CacheLookup & { known: boolean }> {
  const commit = await cache.commitFor(revision);
  if (!commit || !(await cache.hasSnapshot(commit))) return { missing: [], known: false };
  const manifest = await cache.readManifest(commit);
  const missing = manifest ? await cache.missingFiles(commit, wanted(manifest)) : [];
  return { dir: cache.snapshotDir(commit), missing, known: manifest !== undefined };
}

function notCached(repoId: string, revision: string, found: CacheLookup, why: string): HubNotCachedError {
  if (!found.dir) {
    return new HubNotCachedError(
      repoId,
      `${repoId}@${revision} is not in the cache and ${why}. Download it once online (unset HF_HUB_OFFLINE / ` +
        'localFilesOnly), or pass a local folder.',
    );
  }
  return new HubNotCachedError(
    repoId,
    `The cached snapshot of ${repoId}@${revision} lacks ${found.missing.join(', ')} and ${why}. Download them once online.`,
    found.missing,
  );
}

async function fetchFile(client: HubClient, settings: HubSettings, cache: RepoCache, ctx: FailureContext, commit: string, file: string): Promise<void> {
  const url = client.resolveUrl(ctx.repoId, commit, file);
  const meta = await fetchFileMetadata(client, ctx, url);
  const blob = cache.blobPath(meta.etag);
  try {
    await stat(blob);
  } catch {
    await downloadBlob(client, settings, ctx, url, meta, blob);
  }
  await cache.linkBlob(blob, cache.pointerPath(commit, file));
}

/**
 * Where a `fromPretrained` argument lives on disk. An existing local directory is returned as is. Anything else is
 * a hub repo id (`org/name` or `name`) whose files matching `allowPatterns` are fetched into the huggingface_hub
 * cache (shared with Python); the snapshot folder `.../snapshots/<commit>` is returned.
 *
 * A cached snapshot that is known complete is used without any request (see `checkForUpdates`). Offline
 * (`HF_HUB_OFFLINE=1` or `localFilesOnly`) only the cache is read. If the hub cannot be reached, a cached snapshot of
 * the revision is used when there is one.
 *
 * @throws HubError (401/403: set HF_TOKEN; 404: unknown repo, revision or file; network failures), or
 *   HubNotCachedError when offline and the files are not cached.
 */
export async function resolvePretrained(pathOrRepoId: string, options: HubOptions = {}): Promise<string> {
  const local = await localDirectory(pathOrRepoId);
  if (local) return local;
  if (!isValidRepoId(pathOrRepoId)) {
    throw new HubError(
      pathOrRepoId,
      looksLikePath(pathOrRepoId)
        ? `Local folder "${pathOrRepoId}" does not exist.`
        : `"${pathOrRepoId}" is neither a local folder nor a valid hub repo id ("name" or "org/name").`,
    );
  }
  const repoId = pathOrRepoId;
  const settings = resolveSettings(options);
  const { revision } = settings;
  if (!isSafeRelativePath(revision)) throw new HubError(repoId, `Invalid revision "${revision}".`);
  const cache = new RepoCache(settings.cacheDir, repoId);
  const wanted: Wanted = (files) => filterRepoFiles(files, settings.allowPatterns, settings.ignorePatterns);

  if (settings.offline) {
    const found = await lookupCache(cache, revision, wanted);
    if (found.dir && found.missing.length === 0) return found.dir;
    throw notCached(repoId, revision, found, 'offline mode is on (HF_HUB_OFFLINE or localFilesOnly)');
  }
  if (!settings.checkForUpdates) {
    const found = await lookupCache(cache, revision, wanted);
    if (found.dir && found.known && found.missing.length === 0) return found.dir;
  }

  const client = new HubClient(settings);
  const ctx: FailureContext = { repoId, revision, endpoint: settings.endpoint };
  let commit: string;
  let files: string[];
  try {
    const info = await modelInfo({ name: repoId, revision, hubUrl: settings.endpoint, additionalFields: ['sha', 'filePaths'], fetch: client.fetch });
    commit = info.sha;
    files = info.filePaths;
  } catch (err) {
    if (isNetworkError(err)) {
      const found = await lookupCache(cache, revision, wanted);
      if (found.dir && found.missing.length === 0) return found.dir;
      if (found.dir) throw notCached(repoId, revision, found, `${settings.endpoint} cannot be reached`);
    }
    throw toHubError(err, { ...ctx, errorCode: client.lastErrorCode });
  }
  if (typeof commit !== 'string' || !isCommitHash(commit) || !Array.isArray(files)) {
    throw new HubError(repoId, `${settings.endpoint} returned model info without a commit sha or file list; is it a Hugging Face hub endpoint?`);
  }

  const selected = wanted(files);
  if (selected.length === 0) {
    throw new HubError(
      repoId,
      `${repoId}@${revision} has no files matching allowPatterns [${brief(settings.allowPatterns)}] ` +
        `(ignorePatterns [${brief(settings.ignorePatterns)}]). Its files: ${brief(files)}.`,
    );
  }
  const unsafe = selected.find((f) => !isSafeRelativePath(f));
  if (unsafe) throw new HubError(repoId, `Refusing repo file path "${unsafe}": it would escape the cache folder.`);

  await cache.writeRef(revision, commit);
  for (const file of selected) {
    if (await cache.hasFile(commit, file)) continue;
    try {
      await fetchFile(client, settings, cache, { ...ctx, file }, commit, file);
    } catch (err) {
      throw toHubError(err, { ...ctx, file });
    }
  }
  // The repo's file list lets later calls (other allowPatterns too) check completeness without the network.
  await cache.writeManifest(commit, files);
  return cache.snapshotDir(commit);
}
