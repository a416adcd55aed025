/**
 * The huggingface_hub cache layout, shared with Python:
 *   <cacheDir>/models--org--name/blobs/<etag>               file contents, named by ETag
 *   <cacheDir>/models--org--name/snapshots/<commit>/<file>   relative symlinks to the blobs (copies where symlinks fail)
 *   <cacheDir>/models--org--name/refs/<revision>             the commit a branch or tag pointed to
 * peft-ts adds `.peft-ts/<commit>.files.json` (the repo's file list at that commit) so that a later call can tell a
 * complete snapshot from a partial one without asking the hub. Python's cache scanner ignores it.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';

const COMMIT_RE = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT_RE.test(revision);
}

/** A repo-relative path that stays inside the snapshot folder. */
export function isSafeRelativePath(path: string): boolean {
  if (!path || path.startsWith('/') || path.includes('\\') || /^[A-Za-z]:/.test(path)) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes through a temporary file so a crash never leaves a truncated ref or manifest. */
async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomUUID()}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

export class RepoCache {
  /** `<cacheDir>/models--org--name`. */
  readonly root: string;

  constructor(cacheDir: string, readonly repoId: string) {
    this.root = join(cacheDir, getRepoFolderName({ name: repoId, type: 'model' }));
  }

  snapshotDir(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  pointerPath(commit: string, file: string): string {
    return join(this.snapshotDir(commit), ...file.split('/'));
  }

  blobPath(etag: string): string {
    return join(this.root, 'blobs', etag);
  }

  /** The commit a revision resolves to locally: itself when it is a commit hash, else what `refs/` recorded. */
  async commitFor(revision: string): Promise<string | undefined> {
    if (isCommitHash(revision)) return revision;
    try {
      const commit = (await readFile(join(this.root, 'refs', ...revision.split('/')), 'utf8')).trim();
      return isCommitHash(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    await writeAtomic(join(this.root, 'refs', ...revision.split('/')), commit);
  }

  async hasSnapshot(commit: string): Promise<boolean> {
    return exists(this.snapshotDir(commit));
  }

  /** Whether the snapshot has the file and, when it is a symlink, its blob still exists. */
  async hasFile(commit: string, file: string): Promise<boolean> {
    return exists(this.pointerPath(commit, file));
  }

  async missingFiles(commit: string, files: readonly string[]): Promise<string[]> {
    const missing: string[] = [];
    for (const f of files) if (!(await this.hasFile(commit, f))) missing.push(f);
    return missing;
  }

  private manifestPath(commit: string): string {
    return join(this.root, '.peft-ts', `${commit}.files.json`);
  }

  /** The repo's full file list at `commit`, as last seen from the hub; undefined when never recorded. */
  async readManifest(commit: string): Promise<string[] | undefined> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.manifestPath(commit), 'utf8'));
      if (Array.isArray(parsed) && parsed.every((f): f is string => typeof f === 'string')) return parsed;
    } catch {
      // absent or unreadable: treated as never recorded
    }
    return undefined;
  }

  async writeManifest(commit: string, files: readonly string[]): Promise<void> {
    await writeAtomic(this.manifestPath(commit), JSON.stringify(files));
  }

  /**
   * Points the snapshot entry at the blob: a relative symlink, as huggingface_hub makes, or a copy where links are
   * not allowed (Windows without developer mode). The copy goes through a temporary file and a rename, so it never
   * writes through an existing link into the blob itself.
   */
  async linkBlob(blob: string, pointer: string): Promise<void> {
    await mkdir(dirname(pointer), { recursive: true });
    const target = relative(dirname(pointer), blob);
    for (let attempt = 0; attempt < 2; attempt++) {
      await rm(pointer, { force: true });
      try {
        await symlink(target, pointer);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') break;
        // Another writer linked it between our rm and symlink: fine if it points at the same blob.
        if ((await realpath(pointer).catch(() => '')) === (await realpath(blob))) return;
      }
    }
    const tmp = `${pointer}.${randomUUID()}.tmp`;
    await copyFile(blob, tmp);
    await rename(tmp, pointer);
  }
}
