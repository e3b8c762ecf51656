import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listen } from '../support/stack.ts';

// These tests run hack/stack.sh against a second, private stack (own state dir and
// ports, the shared binary cache and Docker engine), so the main stack is untouched.

const ROOT = new URL('../..', import.meta.url).pathname;
// Below Linux's ephemeral range (32768-60999): an outgoing connection can never take them between the check and the bind.
const PORTS = { CTFLEET_ETCD_PORT: '19790', CTFLEET_APISERVER_PORT: '19443', CTFLEET_REDIS_PORT: '19379' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runStack(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', [join(ROOT, 'hack/stack.sh'), ...args], { env: { ...process.env, ...env }, timeout: 180_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

function pidFile(stateDir: string, name: string): number {
  return Number(readFileSync(join(stateDir, 'pids', `${name}.pid`), 'utf8').trim());
}

function isAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Pids of live processes whose command line names the state dir (the daemons of that stack). */
function processesOf(stateDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(`${stateDir}/`) && !cmdline.includes('hack/stack.sh')) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

async function listenOn(port: number): Promise<Server> {
  const server = createServer();
  await listen(server, port, '127.0.0.1');
  return server;
}

describe('hack/stack.sh', () => {
  let stateDir: string;
  let env: Record<string, string>;

  before(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'ctfleet-stack-test-'));
    env = { ...PORTS, CTFLEET_STATE_DIR: stateDir };
  });

  after(async () => {
    await runStack(['down'], env);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('up starts every part, and a second up reuses all of them', async () => {
    const first = await runStack(['up'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /kube-apiserver\s+up\s+https:\/\/127\.0\.0\.1:19443 \(v1\.\d+\.\d+\)/);
    assert.match(first.stdout, /redis\s+up\s+127\.0\.0\.1:19379/);
    const pids = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'redis'].map((name) => pidFile(stateDir, name));

    const second = await runStack(['up'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(['etcd', 'kube-apiserver', 'kube-controller-manager', 'redis'].map((name) => pidFile(stateDir, name)), pids);
    assert.match(second.stderr, /etcd: running/);
    assert.doesNotMatch(second.stderr, /started/);
  });

  test('a dead daemon and a pid file that lies are both repaired by the next up', async () => {
    const etcd = pidFile(stateDir, 'etcd');
    const redis = pidFile(stateDir, 'redis');
    process.kill(redis, 'SIGKILL');
    writeFileSync(join(stateDir, 'pids', 'etcd.pid'), '999999\n');

    const run = await runStack(['up'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(pidFile(stateDir, 'etcd'), etcd, 'the running etcd was adopted, not duplicated');
    assert.notEqual(pidFile(stateDir, 'redis'), redis);
    assert.ok(isAlive(pidFile(stateDir, 'redis')));
    assert.equal((await runStack(['status'], env)).code, 0);
  });

  test('a port taken by another program moves that part to the next free port', async () => {
    process.kill(pidFile(stateDir, 'redis'), 'SIGKILL');
    const squatter = await listenOn(19379);
    try {
      const run = await runStack(['up'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /port 19379 is taken by another program; using 19380/);
      const exported = (await runStack(['env'], env)).stdout;
      assert.match(exported, /export REDIS_URL=redis:\/\/127\.0\.0\.1:19380\/0/);
      assert.match(exported, /export KUBECONFIG=.*\/kubeconfig/);
      assert.match(exported, /export PATH=.*kube-v1\.\d+\.\d+.*helm-v3/);
    } finally {
      squatter.close();
    }
  });

  test('a part that fails to start makes up fail with one clear line and stops what that run started', async () => {
    await runStack(['down'], env);
    assert.deepEqual(processesOf(stateDir), []);
    const run = await runStack(['up'], { ...env, CTFLEET_APISERVER_FLAGS: '--no-such-flag' });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /^ctfleet stack: kube-apiserver exited during start-up \(log: .*kube-apiserver\.log\)$/m);
    assert.match(run.stderr, /up failed: stopping what this run started \(etcd kube-apiserver\)/);
    assert.deepEqual(processesOf(stateDir), [], 'no process of the failed run is left behind');
  });

  test('a missing prerequisite that cannot be provided stops up before anything starts', async () => {
    const emptyCache = mkdtempSync(join(tmpdir(), 'ctfleet-empty-cache-'));
    try {
      const run = await runStack(['up'], { ...env, CTFLEET_CACHE_DIR: emptyCache, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /^ctfleet stack: Go is missing: install Go .* then run again\.$/m);
      assert.deepEqual(processesOf(stateDir), []);
    } finally {
      rmSync(emptyCache, { recursive: true, force: true });
    }
  });

  test('down stops what the stack started and leaves everything else alone', async () => {
    const up = await runStack(['up'], env);
    assert.equal(up.code, 0, up.stderr);
    const bystander = await listenOn(19999);
    try {
      const down = await runStack(['down'], env);
      assert.equal(down.code, 0, down.stderr);
      assert.deepEqual(processesOf(stateDir), []);
      assert.match(down.stderr, /docker: not started by the stack, left alone/);
      assert.ok(bystander.listening);
      const status = await runStack(['status'], env);
      assert.equal(status.code, 1, 'status reports the stopped parts as down');
      assert.match(status.stdout, /etcd\s+down/);
      assert.match(status.stdout, /docker\s+up/);
    } finally {
      bystander.close();
    }
  });
});
