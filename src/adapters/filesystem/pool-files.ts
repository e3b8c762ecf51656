import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CtfleetError, permanent, transient } from '../../domain/errors.ts';
import type { PoolFiles } from '../../domain/ports.ts';

/** A directory name this adapter made: a container name (letters, digits, `_.-`), never a path. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/**
 * {@link PoolFiles} on the node's filesystem: one directory per pool container
 * under `<base>/<node>`, which Docker bind-mounts read-only into the container
 * and the worker writes the claim's files into (docs/pools.md). `base` must be
 * the same path for the worker and for dockerd (a hostPath mounted at the same
 * place in the worker's pod).
 */
export class LocalPoolFiles implements PoolFiles {
  private readonly root: string;

  constructor(base: string, node: string) {
    if (!SAFE_NAME.test(node)) throw permanent('InvalidSpec', `CTFLEET_NODE_NAME: ${node} cannot name a directory`);
    this.root = join(base, node);
  }

  async prepare(name: string): Promise<string> {
    const dir = this.dirOf(name);
    await this.io(`create ${dir}`, async () => {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      // Readable by the challenge's own user, whatever the umask.
      await chmod(dir, 0o755);
    });
    return dir;
  }

  async write(name: string, files: readonly { name: string; content: string; mode: number }[]): Promise<void> {
    const dir = this.dirOf(name);
    await this.io(`write into ${dir}`, async () => {
      for (const file of files) {
        if (!SAFE_NAME.test(file.name)) throw permanent('InvalidSpec', `${file.name} cannot name a file`);
        // Whole or not at all: the container sees the file appear complete.
        const staged = join(dir, `.${file.name}.partial`);
        await writeFile(staged, file.content, { mode: file.mode });
        await chmod(staged, file.mode);
        await rename(staged, join(dir, file.name));
      }
    });
  }

  async remove(name: string): Promise<void> {
    const dir = this.dirOf(name);
    await this.io(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((name) => SAFE_NAME.test(name));
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return [];
      throw transient('PoolFilesUnavailable', `list ${this.root}: ${(error as Error).message}`, error);
    }
  }

  private dirOf(name: string): string {
    if (!SAFE_NAME.test(name)) throw permanent('InvalidSpec', `${name} cannot name a directory`);
    return join(this.root, name);
  }

  private async io(what: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if ((error as { code?: string }).code === 'EACCES' || (error as { code?: string }).code === 'EROFS') {
        throw permanent('PoolFilesUnavailable', `${what}: ${(error as Error).message}. The worker needs CTFLEET_POOL_FILES_DIR writable, at the same path as dockerd sees it.`, error);
      }
      if (error instanceof CtfleetError) throw error;
      throw transient('PoolFilesUnavailable', `${what}: ${(error as Error).message}`, error);
    }
  }
}
