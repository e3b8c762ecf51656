import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { challengeInstanceManifest, challengeManifest, containersOf, CtfleetProcess, deleteInstancesAndChallenges, fetchText, type Instances, isRunning, kubectl, prepareNamespace, type RawInstance } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// A Challenge's own reconciliation: the controller counts its instances into its
// status, and a Challenge being deleted waits (finalizer ctfleet.io/instances)
// while instances it admitted exist, saying why with a condition and one Event.

const suffix = uniqueSuffix();
const NS = `e2e-chal-life-${suffix}`;
const PREFIX = `{ctfleet-e2e-chal-life-${suffix}}`;

interface RawChallenge {
  metadata: { name: string; uid: string; generation: number; finalizers?: string[]; deletionTimestamp?: string };
  status?: {
    observedGeneration?: number;
    instances?: { total: number; running: number };
    conditions?: { type: string; status: string; reason: string; message: string; observedGeneration?: number }[];
  };
}

function challenge(name: string): string {
  return challengeManifest(NS, name);
}

function instanceOf(name: string, team: string, challengeName: string): string {
  return challengeInstanceManifest(NS, name, team, challengeName);
}

async function apply(...objects: string[]): Promise<void> {
  const applied = await kubectl(['apply', '-f', '-'], objects.join('\n'));
  assert.equal(applied.code, 0, applied.stderr);
}

async function getChallenge(name: string): Promise<RawChallenge | undefined> {
  const got = await kubectl(['get', 'chal', name, '-n', NS, '-o', 'json', '--ignore-not-found']);
  assert.equal(got.code, 0, got.stderr);
  return got.stdout.trim() === '' ? undefined : (JSON.parse(got.stdout) as RawChallenge);
}

async function waitForChallenge(name: string, what: string, predicate: (found: RawChallenge) => boolean, timeoutMs = 30_000): Promise<RawChallenge> {
  let last: RawChallenge | undefined;
  try {
    return await eventually(`Challenge ${name} ${what}`, timeoutMs, async () => {
      last = await getChallenge(name);
      return last !== undefined && predicate(last) ? last : undefined;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last: ${JSON.stringify(last?.metadata)} ${JSON.stringify(last?.status)}`, { cause: error });
  }
}

const readyOf = (found: RawChallenge | undefined) => found?.status?.conditions?.find((condition) => condition.type === 'Ready');

/** The Events of one reason recorded on the Challenge `name`. */
async function eventsOf(name: string, reason: string): Promise<{ type: string; message: string; involvedObject: { kind: string; uid: string } }[]> {
  const listed = await kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${name},involvedObject.kind=Challenge,reason=${reason}`, '-o', 'json']);
  assert.equal(listed.code, 0, listed.stderr);
  return (JSON.parse(listed.stdout) as { items: { type: string; message: string; involvedObject: { kind: string; uid: string } }[] }).items;
}

describe('the life of a Challenge', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;

  const failedWith = (reason: string) => (instance: RawInstance): boolean => instance.status?.phase === 'Failed' && instance.status.reason === reason;

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-chal-life-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25200-25299',
        CTFLEET_LOG_LEVEL: 'debug',
      },
      `e2e-challenge-lifecycle-${suffix}`,
    );
  });

  after(async () => {
    // Instances first, then Challenges while the controller still runs to release
    // them: stopped first, it would leave the namespace Terminating on their finalizer.
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('kubectl get chal shows how many instances a Challenge has and how many run, and Ready says the same', async () => {
    await apply(challenge('web-101'), instanceOf('web-101-team-1', 'team-1', 'web-101'), instanceOf('web-101-team-2', 'team-2', 'web-101'));
    for (const name of ['web-101-team-1', 'web-101-team-2']) await instances.waitFor(NS, name, 'to run', isRunning, 60_000);
    const counted = await waitForChallenge('web-101', 'to count 2 instances, 2 running', (found) => found.status?.instances?.running === 2);
    assert.deepEqual(counted.status?.instances, { total: 2, running: 2 });
    assert.equal(counted.status.observedGeneration, counted.metadata.generation);
    assert.deepEqual(counted.metadata.finalizers, ['ctfleet.io/instances']);
    const ready = readyOf(counted);
    assert.equal(ready?.status, 'True');
    assert.equal(ready.reason, 'Ready');
    assert.equal(ready.message, '2 instances, 2 running.');
    assert.equal(ready.observedGeneration, counted.metadata.generation);

    const table = await kubectl(['get', 'chal', '-n', NS]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+IMAGE\s+FLAG\s+INSTANCES\s+RUNNING\s+POOL\s+IDLE\s+AGE$/m);
    assert.match(table.stdout, /^web-101\s+ctfleet-test\/web:1\s+(?:<none>\s+)?2\s+2\s+\S+$/m);
  });

  test('deleting a Challenge with running instances waits: Ready False InstancesExist, one DeletionBlocked Warning, and the instances keep running', async () => {
    const before = await Promise.all(['web-101-team-1', 'web-101-team-2'].map((name) => instances.get(NS, name)));
    const deleted = await kubectl(['delete', 'chal', 'web-101', '-n', NS, '--wait=false']);
    assert.equal(deleted.code, 0, deleted.stderr);

    const blocked = await waitForChallenge('web-101', 'to wait for its instances', (found) => readyOf(found)?.reason === 'InstancesExist');
    assert.ok(blocked.metadata.deletionTimestamp !== undefined, 'being deleted');
    assert.deepEqual(blocked.metadata.finalizers, ['ctfleet.io/instances']);
    const ready = readyOf(blocked);
    assert.equal(ready?.status, 'False');
    assert.equal(ready.message, 'Deletion waits: 2 ChallengeInstances (2 running) still use it; deletion completes when they are gone.');

    const events = await eventually('the DeletionBlocked event', 10_000, async () => {
      const found = await eventsOf('web-101', 'DeletionBlocked');
      return found.length > 0 ? found : undefined;
    });
    assert.equal(events[0]?.type, 'Warning');
    assert.equal(events[0].involvedObject.uid, blocked.metadata.uid);
    assert.match(events[0].message, new RegExp(`^Blocked deletion of Challenge ${NS}/web-101: 2 ChallengeInstances \\(2 running\\) still use it`));

    // Let the controller's passes come and go (instance status changes wake the
    // Challenge too): still one Event, and the same containers serving.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    assert.equal((await eventsOf('web-101', 'DeletionBlocked')).length, 1, 'recorded once, not on every pass');
    for (const [index, name] of ['web-101-team-1', 'web-101-team-2'].entries()) {
      const now = await instances.get(NS, name);
      assert.ok(now !== undefined && isRunning(now), `${name} still runs`);
      assert.equal(now.status?.containerId, before[index]?.status?.containerId, `${name} keeps its container`);
      assert.match(await fetchText(now.status?.endpoints?.[0]?.url ?? ''), /hello from web-101/);
    }
    const table = await kubectl(['get', 'chal', '-n', NS]);
    assert.match(table.stdout, /^web-101\s+ctfleet-test\/web:1\s+(?:<none>\s+)?2\s+2\s+\S+$/m, 'still listed, with its counts');
  });

  test('an instance created after the deletion began fails ChallengeDeleting, starts nothing, and does not hold the Challenge', async () => {
    // Admission compares to the second: be clearly after it.
    const deletedAt = Date.parse((await getChallenge('web-101'))?.metadata.deletionTimestamp ?? '');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deletedAt + 1_500 - Date.now())));
    await apply(instanceOf('web-101-late', 'team-3', 'web-101'));
    const failed = await instances.waitFor(NS, 'web-101-late', 'to fail ChallengeDeleting', failedWith('ChallengeDeleting'), 30_000);
    assert.match(failed.status?.message ?? '', new RegExp(`^Challenge ${NS}/web-101 is being deleted \\(since .*\\); it starts no new instances\\.$`));
    assert.deepEqual((await containersOf(docker, NS)).filter((container) => container.Labels['ctfleet.io/name'] === 'web-101-late'), []);

    const counted = await waitForChallenge('web-101', 'to count the late instance', (found) => found.status?.instances?.total === 3);
    assert.deepEqual(counted.status?.instances, { total: 3, running: 2 });
    assert.match(readyOf(counted)?.message ?? '', /^Deletion waits: 2 ChallengeInstances \(2 running\)/, 'the late instance is counted but does not hold it');
  });

  test('once its admitted instances are deleted, the Challenge is gone; a late instance is then ChallengeNotFound', async () => {
    const deleted = await kubectl(['delete', 'chi', 'web-101-team-1', 'web-101-team-2', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    await eventually('Challenge web-101 to be gone', 30_000, async () => ((await getChallenge('web-101')) === undefined ? true : undefined));
    await instances.waitFor(NS, 'web-101-late', 'to fail ChallengeNotFound', failedWith('ChallengeNotFound'), 30_000);
    assert.deepEqual(await containersOf(docker, NS), []);
  });

  test('a Challenge without instances is deleted at once', async () => {
    await apply(challenge('lonely'));
    await waitForChallenge('lonely', 'to get its finalizer and status', (found) => readyOf(found)?.reason === 'Ready' && (found.metadata.finalizers ?? []).includes('ctfleet.io/instances'));
    const started = Date.now();
    const deleted = await kubectl(['delete', 'chal', 'lonely', '-n', NS, '--wait=true', '--timeout=20s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await getChallenge('lonely'), undefined);
    assert.ok(Date.now() - started < 10_000, `deleted in ${Date.now() - started} ms`);
    assert.deepEqual(await eventsOf('lonely', 'DeletionBlocked'), []);
  });

  test('the log is clean', async () => {
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
