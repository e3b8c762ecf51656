import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { containersOf, CtfleetProcess, fetchText, isRunning, kubectl, prepareNamespace, type Instances, type RawInstance } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// Organisers declare a Challenge; teams get instances of it by name
// (spec.challengeRef). The controller and the worker resolve it each on its own:
// the controller from its watch, the worker from the API server when it makes
// the container.

const suffix = uniqueSuffix();
const NS = `e2e-chal-${suffix}`;
const PREFIX = `{ctfleet-e2e-chal-${suffix}}`;

function challenge(name: string, greeting: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'ctfleet.io/v1alpha1',
    kind: 'Challenge',
    metadata: { name, namespace: NS },
    spec: {
      image: 'ctfleet-test/web:1',
      imagePullPolicy: 'Never',
      ports: [{ name: 'http', containerPort: 8080 }],
      env: [{ name: 'GREETING', value: greeting }],
      resources: { cpu: '250m', memory: '64Mi', pids: 64 },
      lifetime: { defaultSeconds: 600, maxSeconds: 3600 },
      ...extra,
    },
  });
}

function instanceOf(name: string, team: string, challengeName: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name, namespace: NS }, spec: { team, challengeRef: { name: challengeName }, ...extra } });
}

async function apply(...objects: string[]): Promise<void> {
  const applied = await kubectl(['apply', '-f', '-'], objects.join('\n'));
  assert.equal(applied.code, 0, applied.stderr);
}

describe('instances of a Challenge', () => {
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
        CTFLEET_NODE_NAME: 'e2e-chal-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25100-25199',
        CTFLEET_LOG_LEVEL: 'debug',
      },
      `e2e-challenges-${suffix}`,
    );
  });

  after(async () => {
    // Challenges while the controller runs: it releases their finalizer
    // (ctfleet.io/instances) once their instances are gone.
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await kubectl(['delete', 'challenges', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test("instances of a Challenge run its container, with the team's own endpoint, and say which generation they run", async () => {
    await apply(challenge('web-101', 'hello from the organisers'), instanceOf('web-101-team-1', 'team-1', 'web-101'), instanceOf('web-101-team-2', 'team-2', 'web-101'));
    for (const name of ['web-101-team-1', 'web-101-team-2']) {
      const running = await instances.waitFor(NS, name, 'to run', isRunning, 60_000);
      assert.deepEqual((running.status as { challenge?: unknown }).challenge, { name: 'web-101', generation: 1 });
      assert.match(await fetchText(running.status?.endpoints?.[0]?.url ?? ''), /hello from the organisers/);
      // The lifetime comes from the Challenge's default: 600 s from the start.
      const lifetime = Date.parse(running.status?.expiresAt ?? '') - Date.parse(running.status?.startedAt ?? '');
      assert.equal(lifetime, 600_000);
    }
    const containers = await containersOf(docker, NS);
    assert.equal(containers.length, 2);
    assert.deepEqual(containers.map((container) => container.Labels['ctfleet.io/challenge-generation']), ['1', '1']);
    assert.deepEqual(containers.map((container) => container.Image).sort(), ['ctfleet-test/web:1', 'ctfleet-test/web:1']);
  });

  test('a Challenge change leaves running instances on their generation; a new instance gets the new one', async () => {
    const before = await instances.get(NS, 'web-101-team-1');
    await apply(challenge('web-101', 'hello, version two'));
    await apply(instanceOf('web-101-team-3', 'team-3', 'web-101'));
    const fresh = await instances.waitFor(NS, 'web-101-team-3', 'to run', isRunning, 60_000);
    assert.deepEqual((fresh.status as { challenge?: unknown }).challenge, { name: 'web-101', generation: 2 });
    assert.match(await fetchText(fresh.status?.endpoints?.[0]?.url ?? ''), /hello, version two/);
    // Give the controller and the worker's sweep time to act, were they to replace it.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const kept = await instances.get(NS, 'web-101-team-1');
    assert.equal(kept?.status?.containerId, before?.status?.containerId, 'the same container still runs');
    assert.deepEqual((kept?.status as { challenge?: unknown }).challenge, { name: 'web-101', generation: 1 });
    assert.match(await fetchText(kept?.status?.endpoints?.[0]?.url ?? ''), /hello from the organisers/);
  });

  test('an instance of a Challenge that does not exist fails ChallengeNotFound, and runs once the Challenge is created', async () => {
    await apply(instanceOf('later-team-1', 'team-1', 'later'));
    const failed = await instances.waitFor(NS, 'later-team-1', 'to fail ChallengeNotFound', failedWith('ChallengeNotFound'), 30_000);
    assert.match(failed.status?.message ?? '', new RegExp(`Challenge ${NS}/later does not exist`));
    assert.deepEqual(await containersOf(docker, NS).then((list) => list.filter((container) => container.Labels['ctfleet.io/name'] === 'later-team-1')), []);
    await apply(challenge('later', 'here at last'));
    const running = await instances.waitFor(NS, 'later-team-1', 'to run once its Challenge exists', isRunning, 60_000);
    assert.match(await fetchText(running.status?.endpoints?.[0]?.url ?? ''), /here at last/);
  });

  test("a ttlSeconds above the Challenge's lifetime.maxSeconds fails InvalidSpec, naming both", async () => {
    await apply(instanceOf('greedy-team-1', 'team-1', 'web-101', { ttlSeconds: 7200 }));
    const failed = await instances.waitFor(NS, 'greedy-team-1', 'to fail InvalidSpec', failedWith('InvalidSpec'), 30_000);
    assert.match(failed.status?.message ?? '', /spec\.ttlSeconds 7200 is above Challenge .*lifetime\.maxSeconds 3600/);
  });

  test('kubectl get chal and chi tell the story', async () => {
    const chal = await kubectl(['get', 'chal', '-n', NS]);
    assert.equal(chal.code, 0, chal.stderr);
    assert.match(chal.stdout, /web-101\s+ctfleet-test\/web:1/);
    const chi = await kubectl(['get', 'chi', '-n', NS, '-o', 'wide']);
    assert.match(chi.stdout, /web-101-team-1\s+team-1\s.*Running/);
    const events = await eventually('the ChallengeNotFound Warning event', 10_000, async () => {
      const listed = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=later-team-1,reason=ChallengeNotFound', '-o', 'name']);
      return listed.stdout.trim() === '' ? undefined : listed.stdout;
    });
    assert.ok(events.length > 0);
  });

  test('the log is clean', async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await kubectl(['delete', 'challenges', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
