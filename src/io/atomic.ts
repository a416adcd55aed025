/**
 * Atomic file writes: the data goes to a temporary file in the target's directory (same filesystem, so the final
 * rename is atomic), is fsynced, then renamed over the target. Readers see the old file or the new one, never a
 * partial one; on failure the temporary file is removed and the target is untouched.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Name of the temporary sibling used while writing `path` (dot-prefixed so globbing tools skip it). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  await syncDir(dirname(path));
}

/** Makes the rename itself durable. Best effort: some platforms (Windows) cannot open a directory for fsync. */
/** fsync a directory so a rename inside it survives a crash (best effort: some platforms refuse). */
export async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // durability of the directory entry is a bonus, not a requirement
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** `JSON.stringify(value, null, 2)` plus a trailing newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
