import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `../shared/realdata` beside the repository: present in CI and dev sessions, absent on a user's clone. */
export const realdataDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/realdata');

/** Path inside realdata, or `undefined` when it is absent (tests then skip with `skipReason`). */
export function realdataPath(...parts: string[]): string | undefined {
  const p = join(realdataDir, ...parts);
  return existsSync(p) ? p : undefined;
}

export function skipReason(...parts: string[]): string | false {
  return realdataPath(...parts) ? false : `../shared/realdata/${parts.join('/')} is absent`;
}
