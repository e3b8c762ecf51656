import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files under `dir` whose name `keep` accepts, depth first; directories
 * named in `skip` are not entered. For tests that check every file of a kind.
 */
export function filesUnder(dir: string, keep: (name: string) => boolean, skip: readonly string[] = []): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return skip.includes(entry.name) ? [] : filesUnder(path, keep, skip);
    return keep(entry.name) ? [path] : [];
  });
}
