import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { challengeInstanceManifest, challengeManifest, containersOf, CtfleetProcess, isRunning, kubectl, prepareNamespace, ROOT, type Instances } from '../support/ctfleet.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

// `ctfleet uninstall`, what the chart's delete hooks run (docs/operations in the
// chart's NOTES and README): instances deleted and their containers removed while
// ctfleet still runs, then the Challenges released once it is gone.

const suffix = uniqueSuffix();
const NS = `e2e-uninstall-${suffix}`;
const PREFIX = `{ctfleet-e2e-uninstall-${suffix}}`;

function uninstall(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'src/main.ts'), 'uninstall', ...args], { env: { ...process.env, CTFLEET_NAMESPACES: NS }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

async function challengeFinalizers(): Promise<string[]> {
  const got = await kubectl(['get', 'chal', 'web-101', '-n', NS, '-o', 'jsonpath={.metadata.finalizers}']);
  assert.equal(got.code, 0, got.stderr);
  return got.stdout === '' ? [] : (JSON.parse(got.stdout) as string[]);
}

describe('ctfleet uninstall (the chart\'s delete hooks)', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    ctfleet = new CtfleetProcess('all', {
      CTFLEET_REDIS_PREFIX: PREFIX,
      CTFLEET_NAMESPACES: NS,
      CTFLEET_NODE_NAME: 'e2e-uninstall-node',
      CTFLEET_LEADER_ELECTION: 'false',
      CTFLEET_BIND_ADDRESS: '127.0.0.1',
      CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
      CTFLEET_PORT_RANGE: '25400-25449',
    }, `e2e-uninstall-${suffix}`);
    const applied = await kubectl(['apply', '-f', '-'], [challengeManifest(NS, 'web-101'), challengeInstanceManifest(NS, 'web-101-team-1', 'team-1', 'web-101'), challengeInstanceManifest(NS, 'web-101-team-2', 'team-2', 'web-101')].join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    for (const name of ['web-101-team-1', 'web-101-team-2']) await instances.waitFor(NS, name, 'to run', isRunning, 60_000);
  });

  after(async () => {
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('without --yes it refuses and changes nothing (exit 2)', async () => {
    const refused = await uninstall([]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /add --yes to do it/);
    assert.equal((await containersOf(docker, NS)).length, 2);
  });

  test('--instances deletes every instance and returns once their containers are removed', async () => {
    const done = await uninstall(['--yes', '--instances', '--timeout', '60']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, new RegExp(`^Deleting 2 ChallengeInstances in namespaces ${NS}; the controller removes their containers\\.$`, 'm'));
    assert.match(done.stdout, /^Every ChallengeInstance is gone, and its container with it\.$/m);
    assert.deepEqual(await containersOf(docker, NS), [], 'no container is left on the node');
    const left = await kubectl(['get', 'chi', '-n', NS, '-o', 'name']);
    assert.equal(left.stdout.trim(), '');
  });

  test('--challenges while a controller still runs gives up, naming the cause, as the controller puts the finalizer back', async () => {
    const fought = await uninstall(['--yes', '--challenges', '--timeout', '4']);
    assert.equal(fought.code, 1);
    assert.match(fought.stdout, /something keeps putting finalizer ctfleet\.io\/instances back on 1 Challenge \(is a controller of this deployment still running\?\)/);
  });

  test('--challenges once ctfleet is stopped releases the Challenges, which then delete at once', async () => {
    assert.equal(await ctfleet.stop(), 0);
    assert.deepEqual(await challengeFinalizers(), ['ctfleet.io/instances']);
    const done = await uninstall(['--yes', '--challenges', '--timeout', '60']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.deepEqual(await challengeFinalizers(), []);
    const deleted = await kubectl(['delete', 'chal', 'web-101', '-n', NS, '--timeout=10s']);
    assert.equal(deleted.code, 0, deleted.stderr);
  });
});
