import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { run } from '../support/cluster.ts';
import { challengeInstanceManifest, challengeManifest, containersOf, CtfleetProcess, deleteInstancesAndChallenges, type Instances, isRunning, kubectl, manifest, prepareNamespace, ROOT, webSpec } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// What GitOps engines read from ctfleet's resources: the verdicts of kstatus
// (sigs.k8s.io/cli-utils, as Flux, kpt and cli-utils compute them), by the real
// library (test/tools/kstatus, built by hack/build-tools.sh), and `kubectl wait
// --for=condition=Ready` on both kinds.

const suffix = uniqueSuffix();
const NS = `e2e-gitops-${suffix}`;
const PREFIX = `{ctfleet-e2e-gitops-${suffix}}`;

interface Verdict {
  status: string;
  message: string;
}

describe('GitOps status (kstatus) and kubectl wait', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  let kstatusBin = '';

  /** kstatus's verdict on an object as the API server returns it now (or on `json`). */
  async function verdict(kind: 'chi' | 'chal', name: string, json?: string): Promise<Verdict> {
    let object = json;
    if (object === undefined) {
      const got = await kubectl(['get', kind, name, '-n', NS, '-o', 'json']);
      assert.equal(got.code, 0, got.stderr);
      object = got.stdout;
    }
    const computed = await run(kstatusBin, [], { stdin: object, timeoutMs: 300_000 });
    assert.equal(computed.code, 0, computed.stderr);
    return JSON.parse(computed.stdout) as Verdict;
  }

  /** Polls kstatus until it reads `status`; returns every verdict seen on the way, the last one `status`. */
  async function verdictsUntil(kind: 'chi' | 'chal', name: string, status: string, timeoutMs = 60_000): Promise<Verdict[]> {
    const seen: Verdict[] = [];
    await eventually(`${kind}/${name} to read ${status} (seen: ${JSON.stringify(seen.slice(-3))})`, timeoutMs, async () => {
      const now = await verdict(kind, name);
      seen.push(now);
      return now.status === status ? now : undefined;
    });
    return seen;
  }

  async function apply(...objects: string[]): Promise<void> {
    const applied = await kubectl(['apply', '-f', '-'], objects.join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
  }

  before(async () => {
    const built = await run('bash', [`${ROOT}/hack/build-tools.sh`, 'kstatus-path'], { timeoutMs: 300_000 });
    assert.equal(built.code, 0, built.stderr);
    kstatusBin = built.stdout.trim();
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-gitops-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25450-25499',
        CTFLEET_LOG_LEVEL: 'debug',
      },
      `e2e-gitops-${suffix}`,
    );
  });

  after(async () => {
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('kubectl wait --for=condition=Ready returns for a Challenge and for its running instance, which kstatus reads Current, as it reads the Challenge', async () => {
    await apply(challengeManifest(NS, 'web-101'), challengeInstanceManifest(NS, 'web-101-team-1', 'team-1', 'web-101'));
    const waited = await kubectl(['wait', '--for=condition=Ready', 'chi/web-101-team-1', 'chal/web-101', '-n', NS, '--timeout=90s']);
    assert.equal(waited.code, 0, waited.stderr);
    assert.match(waited.stdout, /challengeinstance\.ctfleet\.io\/web-101-team-1 condition met/);
    assert.match(waited.stdout, /challenge\.ctfleet\.io\/web-101 condition met/);
    const running = await instances.waitFor(NS, 'web-101-team-1', 'to run', isRunning, 30_000);
    assert.equal(running.status?.phase, 'Running');
    await verdictsUntil('chi', 'web-101-team-1', 'Current', 15_000);
    assert.deepEqual(await verdict('chi', 'web-101-team-1'), { status: 'Current', message: 'Resource is Ready' });
    assert.deepEqual(await verdict('chal', 'web-101'), { status: 'Current', message: 'Resource is Ready' });
  });

  test('a spec change reads InProgress at once, and Current again once the new generation runs', async () => {
    await apply(manifest(NS, 'direct-1', webSpec('team-2')));
    await instances.waitFor(NS, 'direct-1', 'to run', isRunning, 60_000);
    await verdictsUntil('chi', 'direct-1', 'Current', 15_000);
    // The patch's response is the object as stored by that write: a newer generation than any status.
    const patched = await kubectl(['patch', 'chi', 'direct-1', '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { env: [{ name: 'GREETING', value: 'changed' }] } }), '-o', 'json']);
    assert.equal(patched.code, 0, patched.stderr);
    const justChanged = JSON.parse(patched.stdout) as { metadata: { generation: number }; status: { observedGeneration: number } };
    assert.equal(justChanged.metadata.generation, justChanged.status.observedGeneration + 1);
    const atOnce = await verdict('chi', 'direct-1', patched.stdout);
    assert.equal(atOnce.status, 'InProgress');
    assert.equal(atOnce.message, 'ChallengeInstance generation is 2, but latest observed generation is 1');
    const seen = await verdictsUntil('chi', 'direct-1', 'Current', 60_000);
    assert.ok(seen.every((one) => one.status === 'InProgress' || one.status === 'Current'), `only InProgress on the way: ${JSON.stringify(seen)}`);
    const now = await instances.get(NS, 'direct-1');
    assert.equal(now?.status?.observedGeneration, 2);
    assert.equal(now.status.phase, 'Running');
  });

  test('an instance that cannot run reads Failed as soon as it is Failed, with the reason; one whose Challenge is missing too', async () => {
    await apply(
      manifest(NS, 'refused-1', webSpec('team-3', { image: 'registry.example/not-allowed:1' })),
      challengeInstanceManifest(NS, 'orphan-1', 'team-4', 'no-such-challenge'),
    );
    for (const [name, reason] of [['refused-1', 'ImageNotAllowed'], ['orphan-1', 'ChallengeNotFound']] as const) {
      const failed = await instances.waitFor(NS, name, `to fail ${reason}`, (found) => found.status?.phase === 'Failed', 60_000);
      assert.equal(failed.status?.reason, reason);
      const got = await kubectl(['get', 'chi', name, '-n', NS, '-o', 'json']);
      const object = JSON.parse(got.stdout) as { status: { phase: string; conditions: { type: string; status: string; reason: string }[] } };
      // Any read showing the phase Failed reads Failed too: the controller writes both in one status write.
      if (object.status.phase === 'Failed') {
        const read = await verdict('chi', name, got.stdout);
        assert.equal(read.status, 'Failed', `${name}: ${JSON.stringify(object.status)}`);
        assert.match(read.message, new RegExp(reason === 'ImageNotAllowed' ? 'allow' : 'no-such-challenge'));
      }
      const stalled = object.status.conditions.find((condition) => condition.type === 'Stalled');
      assert.deepEqual([stalled?.status, stalled?.reason], ['True', reason]);
    }
    const waited = await kubectl(['wait', '--for=condition=Stalled', 'chi/refused-1', 'chi/orphan-1', '-n', NS, '--timeout=10s']);
    assert.equal(waited.code, 0, waited.stderr);
  });

  test('a stopped instance reads Current, not InProgress for ever; Ready says so, and the API-facing "serves" does not', async () => {
    await apply(manifest(NS, 'stopped-1', webSpec('team-5')));
    await instances.waitFor(NS, 'stopped-1', 'to run', isRunning, 60_000);
    await apply(manifest(NS, 'stopped-1', webSpec('team-5', { desiredState: 'Stopped' })));
    await instances.waitFor(NS, 'stopped-1', 'to stop', (found) => found.status?.phase === 'Stopped', 60_000);
    await verdictsUntil('chi', 'stopped-1', 'Current', 15_000);
    const stopped = await instances.get(NS, 'stopped-1');
    const ready = stopped?.status?.conditions?.find((condition) => condition.type === 'Ready');
    assert.deepEqual([ready?.status, ready?.reason], ['True', 'ContainerStopped']);
    const table = await kubectl(['get', 'chi', 'stopped-1', '-n', NS]);
    assert.match(table.stdout, /stopped-1\s+team-5\s+web-101\s+Stopped\s/);
  });

  test('the log is clean', async () => {
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
