import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { challengeInstanceManifest, challengeManifest, containersOf, CtfleetProcess, deleteInstancesAndChallenges, deleteRedisKeys, fetchText, type Instances, isRunning, kubectl, prepareNamespace, type RawInstance } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { perTeamFlagPart } from '../../src/domain/flags.ts';
import { flagSecretName } from '../../src/domain/names.ts';

const run = promisify(execFile);
/** The deployment key of per-team flags in this test's namespace. */
const FLAG_KEY = randomBytes(48);

// Organisers declare a Challenge; teams get instances of it by name
// (spec.challengeRef). The controller and the worker resolve it each on its own:
// the controller from its watch, the worker from the API server when it makes
// the container.

const suffix = uniqueSuffix();
const NS = `e2e-chal-${suffix}`;
const PREFIX = `{ctfleet-e2e-chal-${suffix}}`;

function challenge(name: string, greeting: string, extra: Record<string, unknown> = {}): string {
  return challengeManifest(NS, name, { env: [{ name: 'GREETING', value: greeting }], lifetime: { defaultSeconds: 600, maxSeconds: 3600 }, ...extra });
}

function instanceOf(name: string, team: string, challengeName: string, extra: Record<string, unknown> = {}): string {
  return challengeInstanceManifest(NS, name, team, challengeName, extra);
}

function ok(result: { code: number; stderr: string }): void {
  assert.equal(result.code, 0, result.stderr);
}

async function apply(...objects: string[]): Promise<void> {
  const applied = await kubectl(['apply', '-f', '-'], objects.join('\n'));
  assert.equal(applied.code, 0, applied.stderr);
}

describe('instances of a Challenge', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  let core: CoreV1Api;
  const flags: string[] = [];

  const failedWith = (reason: string) => (instance: RawInstance): boolean => instance.status?.phase === 'Failed' && instance.status.reason === reason;

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    let kubeConfig;
    ({ instances, kubeConfig } = await prepareNamespace(NS));
    core = kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'flag-key' }, data: { key: FLAG_KEY.toString('base64') } } });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'organisers' }, data: { flag: Buffer.from('the_static_one\n').toString('base64') } } });
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
        CTFLEET_FLAG_KEY_SECRET: `${NS}/flag-key`,
      },
      `e2e-challenges-${suffix}`,
    );
  });

  after(async () => {
    // Challenges while the controller runs: it releases their finalizer
    // (ctfleet.io/instances) once their instances are gone.
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
    await deleteRedisKeys(PREFIX);
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

  test('after a Challenge change, a stopped and started instance runs the new generation in a new container on its old port; an untouched instance keeps the old; a re-created container gets the new one', async () => {
    // web-101 is at generation 2 (the test before); team-1 and team-2 run generation 1.
    const before1 = await instances.waitFor(NS, 'web-101-team-1', 'to run', isRunning, 60_000);
    const before2 = await instances.waitFor(NS, 'web-101-team-2', 'to run', isRunning, 60_000);
    const generationOf = (instance: RawInstance | undefined): unknown => (instance?.status as { challenge?: unknown } | undefined)?.challenge;
    const labelOf = async (name: string): Promise<string | undefined> =>
      (await containersOf(docker, NS)).find((container) => container.Labels['ctfleet.io/name'] === name)?.Labels['ctfleet.io/challenge-generation'];

    // Stopped: the container is kept. Running again: it was made from generation 1,
    // so it is replaced by one of generation 2, on the same host port.
    ok(await kubectl(['patch', 'chi', 'web-101-team-1', '-n', NS, '--type=merge', '-p', '{"spec":{"desiredState":"Stopped"}}']));
    const stopped = await instances.waitFor(NS, 'web-101-team-1', 'to stop', (instance) => instance.status?.phase === 'Stopped' && instance.status.observedGeneration === instance.metadata.generation, 60_000);
    const inspected = await docker.getContainer(before1.status?.containerId ?? '').inspect();
    assert.equal(inspected.State.Running, false, 'the container is stopped, not removed');
    assert.equal(stopped.status?.containerId, before1.status?.containerId);
    ok(await kubectl(['patch', 'chi', 'web-101-team-1', '-n', NS, '--type=merge', '-p', '{"spec":{"desiredState":"Running"}}']));
    const restarted = await instances.waitFor(NS, 'web-101-team-1', 'to run again', (instance) => isRunning(instance) && instance.status?.containerId !== before1.status?.containerId, 60_000);
    assert.deepEqual(generationOf(restarted), { name: 'web-101', generation: 2 });
    assert.equal(await labelOf('web-101-team-1'), '2');
    assert.equal(restarted.status?.endpoints?.[0]?.url, before1.status?.endpoints?.[0]?.url, 'the new container keeps the old one\'s host port');
    assert.match(await fetchText(restarted.status?.endpoints?.[0]?.url ?? ''), /hello, version two/);
    await assert.rejects(docker.getContainer(before1.status?.containerId ?? '').inspect(), 'the old container is removed');

    const untouched = await instances.get(NS, 'web-101-team-2');
    assert.equal(untouched?.status?.containerId, before2.status?.containerId, 'team-2 keeps its container');
    assert.deepEqual(generationOf(untouched), { name: 'web-101', generation: 1 });
    assert.equal(await labelOf('web-101-team-2'), '1');
    assert.match(await fetchText(untouched?.status?.endpoints?.[0]?.url ?? ''), /hello from the organisers/);

    // A container made afresh (here: the old one removed behind ctfleet's back) is made from the Challenge as it is now.
    await docker.getContainer(before2.status?.containerId ?? '').remove({ force: true });
    const recreated = await instances.waitFor(NS, 'web-101-team-2', 'to run in a new container', (instance) => isRunning(instance) && instance.status?.containerId !== before2.status?.containerId, 60_000);
    assert.deepEqual(generationOf(recreated), { name: 'web-101', generation: 2 });
    assert.equal(await labelOf('web-101-team-2'), '2');
    assert.match(await fetchText(recreated.status?.endpoints?.[0]?.url ?? ''), /hello, version two/);
  });

  test("a Challenge's image outside the deployment's allow-list fails its instance ImageNotAllowed, and nothing is created", async () => {
    // Docker knows the locally built ctfleet-test/busybox:1 by this name too; the allow-list (ctfleet-test/*) matches the image as written.
    await apply(challenge('elsewhere', 'not allowed', { image: 'docker.io/ctfleet-test/busybox:1' }), instanceOf('elsewhere-team-1', 'team-1', 'elsewhere'));
    const failed = await instances.waitFor(NS, 'elsewhere-team-1', 'to fail ImageNotAllowed', failedWith('ImageNotAllowed'), 60_000);
    // The field is the Challenge's, and the message says so: the instance cannot set it.
    assert.match(failed.status?.message ?? '', /Challenge \S+: spec\.image: docker\.io\/ctfleet-test\/busybox:1 is not on this deployment's image allow-list \(CTFLEET_ALLOWED_IMAGES: ctfleet-test\/\*\)/);
    assert.deepEqual((await containersOf(docker, NS)).filter((container) => container.Labels['ctfleet.io/name'] === 'elsewhere-team-1'), [], 'nothing was created');
  });

  test("a Challenge asking for more than the deployment's maxima fails its instances InvalidSpec, naming the field and the setting", async () => {
    // The deployment's defaults: CTFLEET_MAX_MEMORY 2Gi, CTFLEET_MAX_PIDS 4096, no extra capabilities.
    await apply(
      challenge('hungry', 'too much memory', { resources: { cpu: '250m', memory: '4Gi', pids: 64 } }),
      challenge('forky', 'too many processes', { resources: { cpu: '250m', memory: '64Mi', pids: 8192 } }),
      challenge('capable', 'a capability too many', { security: { capabilities: { add: ['SYS_NICE'] } } }),
      instanceOf('hungry-team-1', 'team-1', 'hungry'),
      instanceOf('forky-team-1', 'team-1', 'forky'),
      instanceOf('capable-team-1', 'team-1', 'capable'),
    );
    const expected: [string, RegExp][] = [
      ['hungry-team-1', /Challenge \S+: spec\.resources\.memory: 4Gi is above this deployment's maximum of 2Gi \(CTFLEET_MAX_MEMORY\)/],
      ['forky-team-1', /spec\.resources\.pids: 8192 is above this deployment's maximum of 4096 \(CTFLEET_MAX_PIDS\)/],
      ['capable-team-1', /spec\.security\.capabilities\.add: SYS_NICE is not on this deployment's list of capabilities a spec may add \(CTFLEET_ALLOWED_EXTRA_CAPABILITIES is empty: none\)/],
    ];
    for (const [name, message] of expected) {
      const failed = await instances.waitFor(NS, name, 'to fail InvalidSpec', failedWith('InvalidSpec'), 60_000);
      assert.match(failed.status?.message ?? '', message, name);
    }
    const made = (await containersOf(docker, NS)).filter((container) => expected.some(([name]) => container.Labels['ctfleet.io/name'] === name));
    assert.deepEqual(made, [], 'no container was created for them');
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

  test('flags: PerTeam in the environment, PerInstance in a file on a read-only root, Static from the organisers\' Secret', async () => {
    const webOf = (name: string, flag: Record<string, unknown>, extra: Record<string, unknown> = {}): string => challenge(name, `flags ${name}`, { flag, ...extra });
    await apply(
      webOf('per-team', { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'Env' }),
      webOf('per-instance', { kind: 'PerInstance', format: 'CTF{%s}', delivery: 'File', path: '/flag/flag.txt' }, { security: { readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '8Mi' }] } }),
      webOf('static', { kind: 'Static', static: { secretKeyRef: { name: 'organisers', key: 'flag' } } }),
      instanceOf('per-team-team-1', 'team-1', 'per-team'),
      instanceOf('per-team-team-2', 'team-2', 'per-team'),
      instanceOf('per-instance-team-1', 'team-1', 'per-instance'),
      instanceOf('static-team-1', 'team-1', 'static'),
    );
    const containerOf = async (name: string): Promise<string> => (await instances.waitFor(NS, name, 'to run', isRunning, 60_000)).status?.containerId ?? '';
    const shell = async (name: string, script: string): Promise<string> => (await run('docker', ['exec', await containerOf(name), 'sh', '-c', script])).stdout;

    for (const team of ['team-1', 'team-2']) {
      const expected = `CTF{${perTeamFlagPart(FLAG_KEY, { namespace: NS, challenge: 'per-team', team })}}`;
      assert.equal((await shell(`per-team-${team}`, 'printf %s "$FLAG"')), expected, `${team}'s flag is derived from its team`);
      flags.push(expected);
    }
    assert.notEqual(flags[0], flags[1], 'two teams, two flags');

    const perInstance = await instances.get(NS, 'per-instance-team-1');
    const secret = await core.readNamespacedSecret({ namespace: NS, name: flagSecretName('per-instance-team-1', perInstance?.metadata.uid ?? '') });
    const part = Buffer.from(secret.data?.['flag-part'] ?? '', 'base64').toString();
    assert.match(part, /^[0-9a-f]{32}$/);
    assert.equal(secret.metadata?.ownerReferences?.[0]?.uid, perInstance?.metadata.uid, 'the Secret is the instance\'s own');
    assert.equal(await shell('per-instance-team-1', 'cat /flag/flag.txt'), `CTF{${part}}\n`);
    assert.match(await shell('per-instance-team-1', 'touch /x 2>&1; ls -l /flag/flag.txt'), /Read-only file system[\s\S]*-r--r--r--/);
    assert.ok(!(await shell('per-instance-team-1', 'env')).includes(part), 'File delivery puts nothing in the environment');
    flags.push(`CTF{${part}}`, part);

    assert.equal(await shell('static-team-1', 'printf %s "$FLAG"'), 'flag{the_static_one}');
    flags.push('flag{the_static_one}');
  });

  test('no flag shows in status, Events, Redis or the log', async () => {
    const everywhere = [
      (await kubectl(['get', 'chi,chal', '-n', NS, '-o', 'json'])).stdout,
      (await kubectl(['get', 'events', '-n', NS, '-o', 'json'])).stdout,
      readFileSync(ctfleet.logFile, 'utf8'),
    ];
    const redis = new Redis(stackConfig().redis.url);
    try {
      for (const key of await redis.keys(`${PREFIX}*`)) {
        const type = await redis.type(key);
        if (type === 'hash') everywhere.push(JSON.stringify(await redis.hgetall(key)));
        else if (type === 'string') everywhere.push((await redis.get(key)) ?? '');
        else if (type === 'list') everywhere.push(JSON.stringify(await redis.lrange(key, 0, -1)));
        else if (type === 'zset') everywhere.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
        else if (type === 'set') everywhere.push(JSON.stringify(await redis.smembers(key)));
        else if (type === 'stream') everywhere.push(JSON.stringify(await redis.xrange(key, '-', '+')));
        else if (type !== 'none') assert.fail(`Redis key ${key} of type ${type} was not read`);
      }
    } finally {
      redis.disconnect();
    }
    assert.ok(flags.length >= 4);
    for (const flag of flags) for (const text of everywhere) assert.ok(!text.includes(flag), 'a flag leaked');
    // The control: the texts searched are not empty, and name the instances.
    assert.ok(everywhere.some((text) => text.includes('per-team-team-1')));
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
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
