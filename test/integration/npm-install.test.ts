import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

// The set-up scripts install dependencies with `npm ci` (hack/lib.sh ensure_deps).
// These tests run that function, with the real npm, on a small project of their own
// whose registry is a server on loopback that serves no package: the day a registry lacks
// a locked package, and the day package.json and the lockfile disagree.

const ROOT = new URL('../..', import.meta.url).pathname;
const IS_NUMBER_INTEGRITY = 'sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==';

function project(dir: string, wanted: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'probe', version: '1.0.0', private: true, dependencies: { 'is-number': wanted } }));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({
    name: 'probe',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'probe', version: '1.0.0', dependencies: { 'is-number': '7.0.0' } },
      'node_modules/is-number': {
        version: '7.0.0',
        resolved: 'https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz',
        integrity: IS_NUMBER_INTEGRITY,
        license: 'MIT',
        engines: { node: '>=0.12.0' },
      },
    },
  }, null, 2));
}

function ensureDeps(dir: string, registry: string): Promise<{ code: number; stderr: string }> {
  const script = `source ${JSON.stringify(join(ROOT, 'hack/lib.sh'))}; ROOT=${JSON.stringify(dir)}; STATE_DIR=${JSON.stringify(join(dir, 'state'))}; ensure_deps`;
  const env = { ...process.env, npm_config_registry: registry, npm_config_cache: join(dir, 'npm-cache'), npm_config_fetch_retries: '0' };
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { env, timeout: 120_000 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stderr });
    });
  });
}

describe('npm ci in the set-up scripts', () => {
  let registry: Server;
  let registryUrl = '';
  const requests: string[] = [];
  const dirs: string[] = [];

  before(async () => {
    // Knows of is-number's versions (its packument) but serves no tarball.
    registry = createServer((request, response) => {
      requests.push(request.url ?? '');
      if (request.url === '/is-number') {
        const version = (v: string) => ({ name: 'is-number', version: v, dist: { tarball: `${registryUrl}is-number/-/is-number-${v}.tgz` } });
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          name: 'is-number',
          'dist-tags': { latest: '7.0.1' },
          versions: { '7.0.0': version('7.0.0'), '7.0.1': version('7.0.1') },
        }));
        return;
      }
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not found"}');
    });
    await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
    registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}/`;
  });

  after(() => {
    registry.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function scratch(): string {
    const dir = mkdtempSync(join(tmpdir(), 'ctfleet-npm-'));
    dirs.push(dir);
    return dir;
  }

  test('a registry without a locked package: the error names the registry and the package, and says what to do', async () => {
    const dir = scratch();
    project(dir, '7.0.0');
    const lockBefore = readFileSync(join(dir, 'package-lock.json'), 'utf8');
    const run = await ensureDeps(dir, registryUrl);
    assert.notEqual(run.code, 0);
    assert.ok(requests.some((url) => url.includes('is-number-7.0.0.tgz')), `npm asked the loopback registry for the locked tarball (${requests.join(', ')})`);
    const line = run.stderr.slice(run.stderr.indexOf('ctfleet stack:'));
    assert.match(line, new RegExp(`^ctfleet stack: npm ci failed: the npm registry \\(${registryUrl.replaceAll('.', '\\.')}\\) does not serve a package that package-lock\\.json locks:`));
    assert.match(line, /GET http:\/\/127\.0\.0\.1:\d+\/is-number\/-\/is-number-7\.0\.0\.tgz/);
    assert.match(line, /npm config set registry/);
    assert.match(line, /Whole log: .*npm-ci\.log$/m);
    assert.equal(readFileSync(join(dir, 'package-lock.json'), 'utf8'), lockBefore, 'the lockfile is left as it was');
  });

  test('a package.json that asks for what the lockfile does not lock: the error says to run npm install and commit the lockfile', async () => {
    const dir = scratch();
    project(dir, '7.0.1');
    const run = await ensureDeps(dir, registryUrl);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /ctfleet stack: npm ci failed: package-lock\.json does not match package\.json\. Run `npm install` and commit package-lock\.json\./);
  });

  test('the committed lockfile is what npm ci installed: the set-up left package-lock.json and package.json unmodified', async () => {
    const status = await new Promise<string>((resolve, reject) => {
      execFile('git', ['-C', ROOT, 'status', '--porcelain', '--', 'package-lock.json', 'package.json'], (error, stdout) => {
        if (error === null) resolve(stdout);
        else reject(new Error(`git status failed: ${error.message}`));
      });
    });
    assert.equal(status, '', 'hack/test.sh ran npm ci before this test; it never rewrites the lockfile');
    const installed = JSON.parse(readFileSync(join(ROOT, 'node_modules/.package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
    const locked = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; optional?: boolean; os?: string[] }> };
    for (const [path, entry] of Object.entries(installed.packages)) {
      assert.equal(entry.version, locked.packages[path]?.version, `${path} is installed at the locked version`);
    }
  });
});
