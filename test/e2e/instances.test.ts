import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import {
  containersOf,
  CtfleetProcess,
  fetchText,
  isRunning,
  kubectl,
  manifest,
  prepareNamespace,
  TEST_IMAGES,
  webSpec,
  type Instances,
} from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { auditedWrites, countWrites, type AuditedWrite } from '../../bench/lib/apiserver-writes.ts';
import { applyFinalizerPolicy } from '../../bench/lib/finalizer-policy.ts';
import { FINALIZER } from '../../src/domain/names.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

const suffix = uniqueSuffix();
const NS = `e2e-${suffix}`;
const PREFIX = `{ctfleet-e2e-${suffix}}`;

describe('ChallengeInstances end to end', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-node',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '32000-32767',
        CTFLEET_READINESS_TIMEOUT_SECONDS: '10',
        CTFLEET_LOG_LEVEL: 'debug',
        // The test images, and the unreachable registry of the pull-failure case.
        CTFLEET_ALLOWED_IMAGES: `${TEST_IMAGES},127.0.0.1:1/**`,
      },
      `e2e-ctfleet-${suffix}`,
    );
  });

  after(async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
    const redis = createRedisConnection({ url: stackConfig().redis.url, prefix: PREFIX }, 'command');
    const keys = await redis.keys(`${PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test('an applied instance runs, reports a reachable endpoint and answers', async () => {
    const applied = await kubectl(['apply', '-f', '-'], manifest(NS, 'web-team-1', webSpec('team-1', { env: [{ name: 'GREETING', value: 'hello from team-1' }] })));
    assert.equal(applied.code, 0, applied.stderr);
    const running = await instances.waitFor(NS, 'web-team-1', 'to run', isRunning);
    const endpoint = running.status?.endpoints?.[0];
    assert.ok(endpoint);
    assert.equal(endpoint.host, '127.0.0.1');
    assert.equal(endpoint.url, `http://127.0.0.1:${endpoint.port}`);
    assert.ok(endpoint.port >= 32000 && endpoint.port <= 32767, `port ${endpoint.port} is in the node's range`);
    assert.equal(running.status?.node, 'e2e-node');
    assert.deepEqual(running.metadata.finalizers, ['ctfleet.io/cleanup']);
    assert.match(await fetchText(endpoint.url ?? ''), /<p id="greeting">hello from team-1<\/p>/);

    const [container] = await containersOf(docker, NS);
    assert.ok(container);
    assert.equal(container.Id, running.status.containerId);
    assert.equal(container.Names[0], `/ctfleet-${NS}_web-team-1`);
    assert.equal(container.Labels['ctfleet.io/team'], 'team-1');
    const inspected = await docker.getContainer(container.Id).inspect();
    assert.equal(inspected.HostConfig.NanoCpus, 250_000_000);
    assert.equal(inspected.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(inspected.HostConfig.PidsLimit, 64);

    // Redis holds the worker's observed state (with an expiry) and the job's
    // progress and result, as Celery's result backend did.
    const redis = createRedisConnection({ url: stackConfig().redis.url, prefix: PREFIX }, 'command');
    const queue = new Queue('start', { connection: redis, prefix: PREFIX });
    try {
      const observedKey = `${PREFIX}:observed:${running.metadata.uid}`;
      const observed = await redis.hgetall(observedKey);
      assert.equal(observed.state, 'running');
      assert.equal(observed.node, 'e2e-node');
      assert.equal(observed.containerId, running.status.containerId);
      const observedEndpoints = JSON.parse(observed.endpoints ?? '[]') as { port: number }[];
      assert.equal(observedEndpoints[0]?.port, endpoint.port);
      const ttl = await redis.ttl(observedKey);
      assert.ok(ttl > 0 && ttl <= 86_400, `observed state expires (ttl ${ttl})`);
      const jobId = running.status.lastJob?.id ?? '';
      assert.equal(jobId, `${running.metadata.uid}.1.start`);
      assert.deepEqual(running.status.lastJob, { id: jobId, action: 'start', queue: 'start' });
      const job = await queue.getJob(jobId);
      assert.ok(job, 'the finished job is kept for the result retention period');
      assert.equal(await job.getState(), 'completed');
      assert.deepEqual(job.progress, { percent: 100, step: 'ready' });
      assert.equal((job.returnvalue as { outcome?: string } | undefined)?.outcome, 'started');
      // Its stages on the worker, in order, for the benchmark's breakdown.
      const timeline = (job.returnvalue as { timeline?: Record<string, number> }).timeline ?? {};
      const stages = ['pass', 'read', 'image', 'started', 'ready', 'reported'].map((stage) => timeline[stage] ?? Number.NaN);
      assert.ok(stages.every(Number.isFinite), `every stage is timed: ${JSON.stringify(timeline)}`);
      assert.deepEqual([...stages].sort((a, b) => a - b), stages, `the stages are in order: ${JSON.stringify(timeline)}`);
      assert.ok((job.processedOn ?? Number.NaN) <= (stages[0] ?? 0) && (stages[5] ?? 0) <= (job.finishedOn ?? Number.NaN), 'within the job');
    } finally {
      await queue.close();
      redis.disconnect();
    }

    const table = await kubectl(['get', 'chi', '-n', NS]);
    assert.match(table.stdout, /^NAME\s+TEAM\s+CHALLENGE\s+PHASE\s+ENDPOINT\s+NODE\s+AGE$/m);
    assert.match(table.stdout, new RegExp(`web-team-1\\s+team-1\\s+web-101\\s+Running\\s+http://127\\.0\\.0\\.1:${endpoint.port}\\s+e2e-node`));
  });

  /**
   * Creates instance `name`, waits until it runs and its Running Event is written,
   * and returns ctfleet's writes of it (the test's own create checked and left out)
   * and its Events, from the API server's audit log; then deletes it (the tests
   * after these count this namespace's containers).
   */
  const freshStart = async (name: string, team: string): Promise<{ writes: AuditedWrite[]; events: number; finalizersAtCreate: string[]; described: string }> => {
    // Timed from the instance's creation: ctfleet must be watching already.
    await ctfleet.untilReady();
    const since = Date.now();
    const created = await kubectl(['create', '-f', '-', '-o', 'json'], manifest(NS, name, webSpec(team)));
    assert.equal(created.code, 0, created.stderr);
    const finalizersAtCreate = (JSON.parse(created.stdout) as { metadata: { finalizers?: string[] } }).metadata.finalizers ?? [];
    const running = await instances.waitFor(NS, name, 'to run', isRunning);
    // The Running Event is written off the critical path; after Running the
    // instance is settled, so nothing more is on its way.
    await eventually('the Running event', 10_000, async () => {
      const events = await kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].reason}']);
      return events.stdout.split(' ').includes('Running') ? true : undefined;
    });
    // The audit log (hack/stack.sh) names each write's object (an Event's name
    // starts with its object's); creates are counted in the window.
    const writes = (await auditedWrites(NS)).filter((write) => write.at >= since - 1_000);
    const ofInstance = writes.filter((write) => write.resource.startsWith('challengeinstances') && (write.name === name || write.verb === 'create'));
    const events = writes.filter((write) => write.resource === 'events' && write.name.startsWith(`${name}.`));
    const described = JSON.stringify(countWrites([...ofInstance, ...events]));
    assert.deepEqual(ofInstance.filter((write) => write.verb === 'create').length, 1, `the test's own create: ${described}`);
    // The controller's one status write carries the job it queued, found by its id.
    assert.equal(running.status?.lastJob?.id, `${running.metadata.uid}.1.start`);
    assert.equal(running.status.phase, 'Running');
    await kubectl(['delete', 'chi', name, '-n', NS, '--wait=true', '--timeout=60s']);
    await instances.waitForGone(NS, name);
    return { writes: ofInstance.filter((write) => write.verb !== 'create'), events: events.length, finalizersAtCreate, described };
  };

  test('a fresh start costs the API server three writes of the instance (finalizer, the worker\'s Ready, the controller\'s Running) and one Event', async () => {
    const probe = await kubectl(['create', '--dry-run=server', '-o', 'jsonpath={.metadata.finalizers}', '-f', '-'], manifest(NS, 'probe', webSpec('team-probe')));
    assert.equal(probe.stdout, '', `no admission policy adds ctfleet's finalizer on this stack now (the next test adds the chart's): ${probe.stdout}${probe.stderr}`);
    const { writes, events, finalizersAtCreate, described } = await freshStart('web-writes', 'team-writes');
    assert.deepEqual(finalizersAtCreate, []);
    assert.ok(writes.length <= 3, `at most 3 writes of the instance per fresh start, saw ${writes.length}: ${described}`);
    assert.deepEqual(countWrites(writes), { 'challengeinstances patch': 1, 'challengeinstances/status patch': 2 }, `the finalizer, then two status applies: ${described}`);
    assert.equal(events, 1, `one Event (Running): ${described}`);
  });

  test('with the chart\'s finalizer policy, the API server adds the finalizer as it creates the instance and a fresh start costs two writes (the worker\'s Ready, the controller\'s Running)', async () => {
    const policy = await applyFinalizerPolicy(`e2e-${suffix}`);
    assert.ok(policy.version !== undefined, 'the stack\'s API server serves MutatingAdmissionPolicy (hack/stack.sh enables it)');
    try {
      const { writes, events, finalizersAtCreate, described } = await freshStart('web-writes-policy', 'team-writes-policy');
      assert.deepEqual(finalizersAtCreate, [FINALIZER], 'the create\'s answer already carries the finalizer');
      assert.deepEqual(countWrites(writes), { 'challengeinstances/status patch': 2 }, `two status applies and no finalizer patch: ${described}`);
      assert.equal(events, 1, `one Event (Running): ${described}`);
    } finally {
      await policy.remove();
    }
  });

  test('a spec change replaces the container and the endpoint serves the new spec', async () => {
    const before = await instances.get(NS, 'web-team-1');
    assert.ok(before);
    const applied = await kubectl(['apply', '-f', '-'], manifest(NS, 'web-team-1', webSpec('team-1', { env: [{ name: 'GREETING', value: 'changed greeting' }] })));
    assert.equal(applied.code, 0, applied.stderr);
    const after = await instances.waitFor(NS, 'web-team-1', 'to run the new generation', (i) => i.metadata.generation > before.metadata.generation && isRunning(i));
    assert.notEqual(after.status?.containerId, before.status?.containerId, 'the container was replaced');
    assert.equal(after.status?.node, before.status?.node, 'it stayed on its node');
    assert.match(await fetchText(after.status?.endpoints?.[0]?.url ?? ''), /changed greeting/);
    assert.equal((await containersOf(docker, NS)).length, 1, 'the old container is gone');
  });

  test('desiredState Stopped stops the container; Running starts it again on the same port', async () => {
    const running = await instances.get(NS, 'web-team-1');
    assert.ok(running);
    const port = running.status?.endpoints?.[0]?.port;
    await kubectl(['patch', 'chi', 'web-team-1', '-n', NS, '--type=merge', '-p', '{"spec":{"desiredState":"Stopped"}}']);
    const stopped = await instances.waitFor(NS, 'web-team-1', 'to stop', (i) => i.status?.phase === 'Stopped' && i.status.observedGeneration === i.metadata.generation);
    assert.equal(stopped.status?.endpoints, undefined, 'a stopped instance advertises no endpoint');
    const container = await docker.getContainer(stopped.status?.containerId ?? '').inspect();
    assert.equal(container.State.Running, false);
    assert.equal(container.HostConfig.Init, true);
    assert.notEqual(container.State.ExitCode, 137, 'the container stopped on SIGTERM, not by the kill after the grace period');

    await kubectl(['patch', 'chi', 'web-team-1', '-n', NS, '--type=merge', '-p', '{"spec":{"desiredState":"Running"}}']);
    const again = await instances.waitFor(NS, 'web-team-1', 'to run again', isRunning);
    assert.equal(again.status?.containerId, stopped.status?.containerId, 'the same container was started again');
    assert.equal(again.status?.endpoints?.[0]?.port, port);
    assert.match(await fetchText(again.status?.endpoints?.[0]?.url ?? ''), /changed greeting/);
  });

  test('deleting an instance removes its container and then the resource', async () => {
    const deleted = await kubectl(['delete', 'chi', 'web-team-1', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    await instances.waitForGone(NS, 'web-team-1');
    assert.deepEqual(await containersOf(docker, NS), []);
  });

  test('20 instances for 20 teams run in 20 containers on distinct ports, and re-applying changes nothing', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `web-team-${100 + i}`);
    const all = names.map((name, i) => manifest(NS, name, webSpec(`team-${100 + i}`))).join('\n');
    const applied = await kubectl(['apply', '-f', '-'], all);
    assert.equal(applied.code, 0, applied.stderr);
    const running = await Promise.all(names.map((name) => instances.waitFor(NS, name, 'to run', isRunning, 120_000)));
    const ports = running.map((instance) => instance.status?.endpoints?.[0]?.port);
    assert.equal(new Set(ports).size, 20, `ports are distinct: ${ports.join(',')}`);
    assert.equal((await containersOf(docker, NS)).length, 20);
    for (const instance of running.slice(0, 3)) {
      assert.match(await fetchText(instance.status?.endpoints?.[0]?.url ?? ''), new RegExp(`hello ${instance.spec.team as string}`));
    }

    // Client-side apply resends the defaulted `ports` list and prints "configured";
    // the server re-defaults it, so the spec, and with it the generation, stay as they were.
    const reapplied = await kubectl(['apply', '-f', '-'], all);
    assert.equal(reapplied.code, 0, reapplied.stderr);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    for (const instance of running) {
      const now = await instances.get(NS, instance.metadata.name);
      assert.equal(now?.metadata.generation, instance.metadata.generation, `${instance.metadata.name} kept its generation`);
      assert.equal(now.status?.containerId, instance.status?.containerId);
    }
    const containers = await containersOf(docker, NS);
    assert.equal(containers.length, 20, 'no duplicate containers after re-applying');
    assert.deepEqual(new Set(containers.map((c) => c.Id)), new Set(running.map((i) => i.status?.containerId)));

    const deleted = await kubectl(['delete', 'chi', ...names, '-n', NS, '--wait=true', '--timeout=120s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await containersOf(docker, NS), []);
  });

  describe('bad input', () => {
    const refusals: [string, Record<string, unknown>, RegExp][] = [
      ['a team that is not a DNS label', webSpec('Team_7'), /spec\.team: Invalid value: "Team_7": spec\.team in body should match/],
      ['a missing image', (() => { const spec = webSpec('team-1'); delete spec.image; return spec; })(), /spec\.image: Required value/],
      ['a port out of range', webSpec('team-1', { ports: [{ name: 'http', containerPort: 70000 }] }), /spec\.ports\[0\]\.containerPort: Invalid value: 70000: spec\.ports\[0\]\.containerPort in body should be less than or equal to 65535/],
      ['an unknown protocol', webSpec('team-1', { ports: [{ name: 'http', containerPort: 80, protocol: 'SCTP' }] }), /spec\.ports\[0\]\.protocol: Unsupported value: "SCTP"/],
      ['duplicate port names', webSpec('team-1', { ports: [{ name: 'a', containerPort: 80 }, { name: 'a', containerPort: 81 }] }), /spec\.ports: Invalid value: port names must be unique/],
      ['17 ports', webSpec('team-1', { ports: Array.from({ length: 17 }, (_, i) => ({ name: `p${i}`, containerPort: 1000 + i })) }), /spec\.ports: Too many: 17: must have at most 16 items/],
      ['an invalid env name', webSpec('team-1', { env: [{ name: '1BAD', value: 'x' }] }), /spec\.env\[0\]\.name: Invalid value: "1BAD"/],
      ['a malformed memory quantity', webSpec('team-1', { resources: { memory: '12 bytes' } }), /spec\.resources\.memory: Invalid value: "12 bytes": must be a quantity between 6Mi \(Docker's minimum\) and 64Gi/],
      ['a ttl below the minimum', webSpec('team-1', { ttlSeconds: 1 }), /spec\.ttlSeconds: Invalid value: 1: spec\.ttlSeconds in body should be greater than or equal to 5/],
      ['an unknown desiredState', webSpec('team-1', { desiredState: 'Paused' }), /spec\.desiredState: Unsupported value: "Paused"/],
    ];
    for (const [what, spec, message] of refusals) {
      test(`the API server refuses ${what}, naming the field`, async () => {
        const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifest(NS, 'bad-input', spec));
        assert.notEqual(result.code, 0);
        assert.match(result.stderr, message);
      });
    }

    test('an image that is not on the node fails with ImageNotPresent, and the others keep running', async () => {
      await kubectl(['apply', '-f', '-'], [manifest(NS, 'no-image', webSpec('team-2', { image: 'ctfleet-test/does-not-exist:1' })), manifest(NS, 'fine-neighbour', webSpec('team-3'))].join('\n'));
      const failed = await instances.waitFor(NS, 'no-image', 'to fail', (i) => i.status?.phase === 'Failed');
      assert.equal(failed.status?.reason, 'ImageNotPresent');
      assert.match(failed.status.message ?? '', /ctfleet-test\/does-not-exist:1 is not present on the node/);
      await instances.waitFor(NS, 'fine-neighbour', 'to run', isRunning);
    });

    test('an image that cannot be pulled fails with ImagePullFailed', async () => {
      // A registry on a closed loopback port: the pull fails without leaving this machine.
      await kubectl(['apply', '-f', '-'], manifest(NS, 'bad-pull', webSpec('team-4', { image: '127.0.0.1:1/ctfleet/none:1', imagePullPolicy: 'IfNotPresent' })));
      const failed = await instances.waitFor(NS, 'bad-pull', 'to fail', (i) => i.status?.phase === 'Failed', 90_000);
      assert.equal(failed.status?.reason, 'ImagePullFailed');
      assert.match(failed.status.message ?? '', /Pulling image 127\.0\.0\.1:1\/ctfleet\/none:1 failed/);
    });

    test('an image outside the deployment\'s allow-list fails ImageNotAllowed, even when the node has it cached', async () => {
      // Docker knows the locally built ctfleet-test/busybox:1 by this name too; the allow-list matches the spec as written.
      await kubectl(['apply', '-f', '-'], manifest(NS, 'not-allowed', webSpec('team-6', { image: 'docker.io/ctfleet-test/busybox:1' })));
      const failed = await instances.waitFor(NS, 'not-allowed', 'to fail', (i) => i.status?.phase === 'Failed', 60_000);
      assert.equal(failed.status?.reason, 'ImageNotAllowed');
      assert.match(failed.status.message ?? '', /spec\.image: docker\.io\/ctfleet-test\/busybox:1 is not on this deployment's image allow-list \(CTFLEET_ALLOWED_IMAGES: ctfleet-test\/\*, 127\.0\.0\.1:1\/\*\*\)/);
      assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`ctfleet.io/name=not-allowed`] } }), [], 'nothing was created');
    });

    test('a container that exits at once fails with ContainerExited and its last log line', async () => {
      await kubectl(['apply', '-f', '-'], manifest(NS, 'crashes', webSpec('team-5', { image: 'ctfleet-test/crash:1' })));
      const failed = await instances.waitFor(NS, 'crashes', 'to fail', (i) => i.status?.phase === 'Failed');
      assert.equal(failed.status?.reason, 'ContainerExited');
      assert.match(failed.status.message ?? '', /exited with code 3 before it became ready: fatal: challenge misconfigured/);
      assert.equal((await containersOf(docker, NS)).filter((c) => c.Labels['ctfleet.io/name'] === 'crashes').length, 0, 'the dead container was cleaned up');
      const events = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=crashes', '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}']);
      assert.match(events.stdout, /^Warning ContainerExited$/m);
    });

    test('a Failed instance is fixed by a spec change', async () => {
      await kubectl(['apply', '-f', '-'], manifest(NS, 'crashes', webSpec('team-5')));
      await instances.waitFor(NS, 'crashes', 'to run after the fix', isRunning);
    });

    test('a crashing container\'s 20 KiB line of output reaches status and its Warning event as at most 1 KiB: its last words, no escapes', async () => {
      const loud = `printf '\\033[2J\\033]0;pwned\\007'; head -c 20480 /dev/zero | tr '\\0' x; echo; echo 'fatal: the last words' >&2; exit 3`;
      await kubectl(['apply', '-f', '-'], manifest(NS, 'loud', webSpec('team-8', { image: 'ctfleet-test/busybox:1', command: ['sh', '-c', loud] })));
      const failed = await instances.waitFor(NS, 'loud', 'to fail', (i) => i.status?.phase === 'Failed');
      assert.equal(failed.status?.reason, 'ContainerExited');
      // stdout and stderr reach Docker's log in either order: both last words are kept.
      const said = failed.status.message ?? '';
      assert.match(said, /^The container exited with code 3 before it became ready: /);
      assert.match(said, /\(truncated\) …x+( \||$)/, 'the end of the long stdout line');
      assert.match(said, /fatal: the last words/, 'the stderr line');
      const events = await eventually('the Warning event', 10_000, async () => {
        const listed = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=loud,reason=ContainerExited', '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']);
        return listed.stdout.trim() === '' ? undefined : listed.stdout;
      });
      const texts = [failed.status.message ?? '', ...(failed.status.conditions ?? []).map((condition) => condition.message ?? ''), ...events.split('\n').filter((line) => line !== '')];
      assert.ok(texts.length >= 4, `status, Ready, Scheduled and an Event: ${texts.length}`);
      for (const text of texts) {
        assert.ok(Buffer.byteLength(text) <= 1024, `${Buffer.byteLength(text)} bytes: ${text.slice(0, 80)}…`);
        assert.ok(!text.includes('\u001b') && !text.includes('\u0007'), 'no escape reaches status or events');
      }
    });

    test('a malformed job payload is refused by the worker, recorded as failed, and the worker keeps serving', async () => {
      const redis = createRedisConnection({ url: stackConfig().redis.url, prefix: PREFIX }, 'command');
      const queue = new Queue('start', { connection: redis, prefix: PREFIX });
      try {
        await queue.add('start', { v: 1, action: 'start', target: { namespace: NS, name: 'x' } }, { jobId: 'malformed-1', attempts: 3 });
        const state = await eventually('the malformed job to fail', 20_000, async () => ((await queue.getJobState('malformed-1')) === 'failed' ? 'failed' : undefined));
        assert.equal(state, 'failed');
        const job = await queue.getJob('malformed-1');
        assert.match(job?.failedReason ?? '', /^InvalidJob: Refused a malformed job payload: target\.uid: .*target\.generation: /);
        assert.equal(job?.attemptsMade, 1, 'a permanent failure is not retried');
      } finally {
        await queue.close();
        redis.disconnect();
      }
      await kubectl(['apply', '-f', '-'], manifest(NS, 'after-malformed', webSpec('team-6')));
      await instances.waitFor(NS, 'after-malformed', 'to run', isRunning);
    });
  });

  test('every log line is one JSON object with no key twice, and each line about an instance or a job names its ids', () => {
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 100, `the debug log of this run has ${lines} lines`);
    assert.deepEqual(problems, []);
  });

  // A test, not an assertion in `after`: node:test does not count a failing hook.
  test('SIGTERM stops ctfleet cleanly (exit 0) once its instances are released', async () => {
    const deleted = await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await ctfleet.stop(), 0, 'ctfleet exited cleanly on SIGTERM');
  });
});
