import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LocalPoolFiles } from '../../src/adapters/filesystem/pool-files.ts';
import { CtfleetError } from '../../src/domain/errors.ts';

// The node's directories for pool containers' files (docs/pools.md), on a real
// filesystem: what a claim writes, with what modes, and what is refused.
describe('LocalPoolFiles', () => {
  const base = mkdtempSync(join(tmpdir(), 'ctfleet-pool-files-'));
  after(() => {
    rmSync(base, { recursive: true, force: true });
  });

  test('a directory per container under the node, a file written whole with its mode, listed and removed', async () => {
    const files = new LocalPoolFiles(base, 'node-a');
    const dir = await files.prepare('ctfpool-ctf_web-0a1b2c3d');
    assert.equal(dir, join(base, 'node-a', 'ctfpool-ctf_web-0a1b2c3d'));
    assert.equal(statSync(dir).mode & 0o777, 0o755, 'readable by the challenge\'s own user');
    await files.write('ctfpool-ctf_web-0a1b2c3d', [{ name: 'flag.txt', content: 'CTF{x}\n', mode: 0o444 }]);
    assert.equal(readFileSync(join(dir, 'flag.txt'), 'utf8'), 'CTF{x}\n');
    assert.equal(statSync(join(dir, 'flag.txt')).mode & 0o777, 0o444);
    assert.deepEqual(readdirSync(dir), ['flag.txt'], 'no partial file left');
    assert.deepEqual(await files.list(), ['ctfpool-ctf_web-0a1b2c3d']);
    assert.deepEqual(await new LocalPoolFiles(base, 'node-b').list(), [], 'another node\'s directories are apart');
    await files.remove('ctfpool-ctf_web-0a1b2c3d');
    assert.deepEqual(await files.list(), []);
    await files.remove('ctfpool-ctf_web-0a1b2c3d');
  });

  test('names that are paths are refused before anything is touched', async () => {
    const files = new LocalPoolFiles(base, 'node-a');
    for (const name of ['../escape', 'a/b', '', '.hidden']) {
      await assert.rejects(files.prepare(name), (error: unknown) => error instanceof CtfleetError && error.code === 'InvalidSpec', name);
    }
    await files.prepare('ctfpool-ctf_web-ffffffff');
    await assert.rejects(files.write('ctfpool-ctf_web-ffffffff', [{ name: '../../etc/passwd', content: 'x', mode: 0o444 }]), (error: unknown) => error instanceof CtfleetError && error.code === 'InvalidSpec');
    assert.throws(() => new LocalPoolFiles(base, '../up'), (error: unknown) => error instanceof CtfleetError && error.code === 'InvalidSpec');
  });
});
