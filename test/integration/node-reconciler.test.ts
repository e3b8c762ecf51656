import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { DockerNetworks } from '../../src/adapters/docker/network-runtime.ts';
import { IptablesFirewall } from '../../src/adapters/firewall/iptables.ts';
import { DEFAULT_ISOLATION } from '../../src/domain/isolation.ts';
import { NodeIsolation } from '../../src/worker/node-isolation.ts';
import { DockerRuntime } from '../../src/adapters/docker/container-runtime.ts';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { KubeInstanceApi } from '../../src/adapters/kubernetes/instance-api.ts';
import { RedisObservedStateStore } from '../../src/adapters/redis/observed-state-store.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import type { ChallengeInstance } from '../../src/domain/challenge-instance.ts';
import { CtfleetError } from '../../src/domain/errors.ts';
import { DEFAULT_HARDENING, type HardeningProfile } from '../../src/domain/hardening.ts';
import type { InstanceJob, JobAction } from '../../src/domain/jobs.ts';
import { containerName, LABELS, MANAGED_BY } from '../../src/domain/names.ts';
import { SYSTEM_CLOCK, type JobContext, type JobOutcome } from '../../src/domain/ports.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { ContainerOperations } from '../../src/worker/container-ops.ts';
import { specHash } from '../../src/domain/spec-hash.ts';
import { NodeReconciler } from '../../src/worker/node-reconciler.ts';
import { PortAllocator } from '../../src/worker/port-allocator.ts';
import { StatusReporter } from '../../src/worker/status-reporter.ts';
import { fetchText, kubectl, manifest, prepareNamespace, TEST_IMAGES, webSpec, type Instances, type RawInstance } from '../support/ctfleet.ts';
import { eventually, listen, stackConfig, uniqueSuffix } from '../support/stack.ts';

// The middle tier: the worker's node reconciler in this process, against the
// stack's real Docker engine, API server and Redis. No ctfleet process and no
// controller: the tests hand it jobs as BullMQ would, and change the world
// behind its back as a team, an operator or an engine would.
const suffix = uniqueSuffix();
const NS = `it-node-${suffix}`;
const RESTART = { limit: 2, windowMs: 60_000, backoffMs: 400 };
const REFUSAL_SETTLE_MS = 2_000;

const config = stackConfig();
const docker = createDockerClient(config.docker);
const logger = createLogger('test', 'silent');

/** A node reconciler as the worker's composition root builds one, on its own node name and port range. */
function nodeReconciler(node: string, range: { min: number; max: number }, random?: () => number, hardening: HardeningProfile = DEFAULT_HARDENING): NodeReconciler {
  const kubeConfigApi = new KubeInstanceApi(stack.kubeConfig);
  const runtime = new DockerRuntime(docker, createDockerClient(config.docker));
  const isolation = new NodeIsolation({ runtime: new DockerNetworks(docker), firewall: new IptablesFirewall(), policy: DEFAULT_ISOLATION, logger });
  return new NodeReconciler({
    api: kubeConfigApi,
    runtime,
    ops: new ContainerOperations({
      runtime,
      ports: new PortAllocator(range, random),
      networks: isolation,
      settings: { node, bindAddress: '127.0.0.1', readinessTimeoutMs: 10_000, refusalSettleMs: REFUSAL_SETTLE_MS, hardening, allowedImages: [TEST_IMAGES], defaultEgress: DEFAULT_ISOLATION.defaultEgress },
      clock: SYSTEM_CLOCK,
    }),
    isolation,
    reporter: new StatusReporter({ api: kubeConfigApi, observed: new RedisObservedStateStore(stack.redis, `{ctfleet-it-${suffix}}`), node, clock: SYSTEM_CLOCK, logger }),
    settings: { node, advertiseAddress: '127.0.0.1', namespaces: [NS], concurrency: 8, sweepIntervalMs: 3_600_000, restart: RESTART },
    clock: SYSTEM_CLOCK,
    logger,
  });
}

const stack = {} as { kubeConfig: Awaited<ReturnType<typeof prepareNamespace>>['kubeConfig']; instances: Instances; redis: Redis };

async function apply(name: string, spec: Record<string, unknown>): Promise<RawInstance> {
  const applied = await kubectl(['apply', '-f', '-'], manifest(NS, name, spec));
  assert.equal(applied.code, 0, applied.stderr);
  const instance = await stack.instances.get(NS, name);
  assert.ok(instance !== undefined);
  return instance;
}

/** The job the controller would queue for the instance as it now is. */
function jobFor(instance: RawInstance, action: JobAction): InstanceJob {
  const { namespace, name, uid, generation } = instance.metadata;
  const job: InstanceJob = { v: 2, action, target: { namespace, name, uid, generation } };
  if (action === 'start') job.specHash = specHash(instance.spec as unknown as ChallengeInstance['spec']);
  return job;
}

function context(id: string, steps: string[] = []): JobContext {
  return {
    id,
    progress: (percent, step) => {
      steps.push(`${percent} ${step}`);
    },
  };
}

const ready = (instance: RawInstance | undefined) => instance?.status?.conditions?.find((condition) => condition.type === 'Ready');

/** Runs a command inside a container, as `docker exec` would for a player with a shell there. */
function dockerExec(id: string, command: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', ['exec', id, ...command], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`docker exec ${command.join(' ')}: ${stderr}`, { cause: error }));
      else resolve(stdout);
    });
  });
}

async function inspect(id: string): Promise<{ running: boolean } | undefined> {
  try {
    const inspected = await docker.getContainer(id).inspect();
    return { running: inspected.State.Running };
  } catch {
    return undefined;
  }
}

describe('the node reconciler against the real engine and API server', { concurrency: 1 }, () => {
  const node = `it-node-a-${suffix}`;
  let reconciler: NodeReconciler;

  before(async () => {
    const prepared = await prepareNamespace(NS);
    stack.kubeConfig = prepared.kubeConfig;
    stack.instances = prepared.instances;
    stack.redis = createRedisConnection(config.redis, 'command');
    reconciler = nodeReconciler(node, { min: 26900, max: 26949 });
    reconciler.start();
  });

  after(async () => {
    await reconciler.close(5_000);
    for (const container of await docker.listContainers({ all: true, filters: { label: [`${LABELS.namespace}=${NS}`] } })) {
      await docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
    }
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=false']);
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
    stack.redis.disconnect();
  });

  test('a start job creates the container, reports it Ready with its endpoint, and the endpoint answers', async () => {
    const instance = await apply('web', webSpec('team-1'));
    const steps: string[] = [];
    const outcome = await reconciler.handle(jobFor(instance, 'start'), context('job-create', steps));
    assert.equal(outcome.outcome, 'started');
    assert.deepEqual(steps, ['20 pulling image', '40 creating container', '60 started', '70 waiting for readiness', '100 ready']);
    const reported = await stack.instances.get(NS, 'web');
    assert.equal(ready(reported)?.status, 'True');
    assert.equal(reported?.status?.node, node);
    assert.equal(reported.status.containerId, outcome.containerId);
    const endpoint = reported.status.endpoints?.[0];
    assert.ok(endpoint !== undefined && endpoint.port >= 26900 && endpoint.port <= 26949);
    assert.match(await fetchText(`http://127.0.0.1:${endpoint.port}/`), /hello team-1/);
    const inspected = await docker.getContainer(outcome.containerId ?? '').inspect();
    assert.equal(inspected.Config.Labels[LABELS.uid], instance.metadata.uid);
    assert.equal(inspected.Config.Labels[LABELS.node], node);
    assert.equal(inspected.Name, `/${containerName(NS, 'web')}`);
  });

  test('the same start job again adopts the running container', async () => {
    const instance = await stack.instances.get(NS, 'web');
    assert.ok(instance !== undefined);
    const outcome = await reconciler.handle(jobFor(instance, 'start'), context('job-adopt'));
    assert.equal(outcome.outcome, 'adopted');
    assert.equal(outcome.containerId, instance.status?.containerId);
  });

  test('a spec change replaces the container on its old host port', async () => {
    const before = await stack.instances.get(NS, 'web');
    const changed = await apply('web', webSpec('team-1', { env: [{ name: 'GREETING', value: 'replaced' }] }));
    assert.equal(changed.metadata.generation, 2);
    const outcome = await reconciler.handle(jobFor(changed, 'start'), context('job-replace'));
    assert.equal(outcome.outcome, 'started');
    assert.notEqual(outcome.containerId, before?.status?.containerId);
    assert.equal(await inspect(before?.status?.containerId ?? ''), undefined, 'the old container is gone');
    const after = await stack.instances.get(NS, 'web');
    assert.equal(ready(after)?.observedGeneration, 2);
    assert.equal(after?.status?.endpoints?.[0]?.port, before?.status?.endpoints?.[0]?.port, 'the endpoint did not move');
    assert.match(await fetchText(`http://127.0.0.1:${after?.status?.endpoints?.[0]?.port ?? 0}/`), />replaced</);
  });

  test('a start job of an older generation is skipped and changes nothing', async () => {
    const current = await stack.instances.get(NS, 'web');
    assert.ok(current !== undefined);
    const stale: InstanceJob = { ...jobFor(current, 'start'), target: { ...jobFor(current, 'start').target, generation: 1 } };
    assert.deepEqual(await reconciler.handle(stale, context('job-stale')), { outcome: 'skipped', reason: 'Superseded' });
    assert.equal((await inspect(current.status?.containerId ?? ''))?.running, true);
  });

  test('a container killed behind its back is restarted after the backoff, in place, with a Warning event', async () => {
    const before = await stack.instances.get(NS, 'web');
    const id = before?.status?.containerId ?? '';
    const killedAt = Date.now();
    await docker.getContainer(id).kill();
    await stack.instances.waitFor(NS, 'web', 'to report the restart', (instance) => ready(instance)?.reason === 'ContainerRestarting', 10_000);
    const restarted = await stack.instances.waitFor(NS, 'web', 'to run again', (instance) => ready(instance)?.status === 'True', 20_000);
    assert.ok(Date.now() - killedAt >= RESTART.backoffMs, 'not before the backoff');
    assert.equal(restarted.status?.containerId, id, 'the same container was started again');
    assert.equal(restarted.status.startedAt, before?.status?.startedAt, 'a restart does not reset the lifetime');
    assert.equal((await inspect(id))?.running, true);
    const events = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=web,reason=ContainerRestarting', '-o', 'jsonpath={.items[*].message}']);
    assert.match(events.stdout, /restart 1 of 2 in 0\.4 s/);
  });

  test('docker rm -f of its container: re-created on the same host port', async () => {
    const before = await stack.instances.get(NS, 'web');
    await docker.getContainer(before?.status?.containerId ?? '').remove({ force: true });
    const after = await stack.instances.waitFor(NS, 'web', 'to run a new container', (instance) => ready(instance)?.status === 'True' && instance.status?.containerId !== before?.status?.containerId, 20_000);
    assert.equal(after.status?.endpoints?.[0]?.port, before?.status?.endpoints?.[0]?.port);
    assert.equal((await inspect(after.status?.containerId ?? ''))?.running, true);
  });

  test('past the restart limit the instance is CrashLoop, and a start job of a new generation brings it back', async () => {
    const instance = await apply('crashy', webSpec('team-2'));
    await reconciler.handle(jobFor(instance, 'start'), context('job-crashy'));
    for (let kill = 1; kill <= RESTART.limit + 1; kill += 1) {
      const current = await eventually(`crashy to run before kill ${kill}`, 20_000, async () => {
        const found = await stack.instances.get(NS, 'crashy');
        const id = found?.status?.containerId;
        return ready(found)?.status === 'True' && id !== undefined && (await inspect(id))?.running === true ? id : undefined;
      });
      await docker.getContainer(current).kill();
    }
    const failed = await stack.instances.waitFor(NS, 'crashy', 'to be CrashLoop', (found) => ready(found)?.reason === 'CrashLoop', 20_000);
    assert.match(ready(failed)?.message ?? '', /stopped 3 times within 60 s \(limit 2 restarts\)/);
    await reconciler.sweep();
    assert.equal(ready(await stack.instances.get(NS, 'crashy'))?.reason, 'CrashLoop', 'a sweep does not restart a CrashLoop');
    const fixed = await apply('crashy', webSpec('team-2', { env: [{ name: 'GREETING', value: 'fixed' }] }));
    assert.equal((await reconciler.handle(jobFor(fixed, 'start'), context('job-crashy-2'))).outcome, 'started');
    assert.equal(ready(await stack.instances.get(NS, 'crashy'))?.status, 'True');
  });

  test('a stopped container the engine keeps refusing to start is replaced once the refusals settle', async () => {
    const instance = await apply('refused', webSpec('team-3'));
    // A container exactly as ctfleet would make it, stopped, on a network that is
    // then removed: the engine knows the container and refuses to start it.
    const network = await docker.createNetwork({ Name: `it-refuse-${suffix}` });
    const spec = instance.spec as unknown as ChallengeInstance['spec'];
    const stale = await docker.createContainer({
      name: containerName(NS, 'refused'),
      Image: 'ctfleet-test/web:1',
      Labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.uid]: instance.metadata.uid,
        [LABELS.namespace]: NS,
        [LABELS.name]: 'refused',
        [LABELS.node]: node,
        [LABELS.specHash]: specHash(spec),
        [LABELS.hostPorts]: '26948',
      },
      HostConfig: { NetworkMode: `it-refuse-${suffix}` },
    });
    await network.remove();
    await assert.rejects(reconciler.handle(jobFor(instance, 'start'), context('job-refused-1')), 'a first refusal fails the job, to be retried');
    // The first refusal happened before this moment.
    const refusedAt = Date.now();
    await assert.rejects(reconciler.handle(jobFor(instance, 'start'), context('job-refused-2')), 'so does a second one soon after (an engine on its way down refuses too)');
    assert.ok((await inspect(stale.id)) !== undefined, 'the container is kept while the refusals have not settled');
    await new Promise((resolve) => setTimeout(resolve, REFUSAL_SETTLE_MS - (Date.now() - refusedAt)));
    const outcome = await reconciler.handle(jobFor(instance, 'start'), context('job-refused-3'));
    assert.equal(outcome.outcome, 'started');
    assert.notEqual(outcome.containerId, stale.id);
    assert.equal(await inspect(stale.id), undefined, 'the refused container was removed');
    assert.equal(ready(await stack.instances.get(NS, 'refused'))?.status, 'True');
  });

  test('every container is hardened: capabilities dropped to the default set, no-new-privileges, default limits and log rotation', async () => {
    const spec = webSpec('team-5');
    delete spec.resources;
    const instance = await apply('hardened', spec);
    const outcome = await reconciler.handle(jobFor(instance, 'start'), context('job-hardened'));
    const inspected = await docker.getContainer(outcome.containerId ?? '').inspect();
    const host = inspected.HostConfig;
    assert.deepEqual(host.CapDrop, ['ALL']);
    assert.deepEqual([...((host.CapAdd as string[] | undefined) ?? [])].sort(), [...DEFAULT_HARDENING.capabilities].sort());
    assert.deepEqual(host.SecurityOpt, ['no-new-privileges:true']);
    assert.equal(host.Memory, 256 * 2 ** 20, 'the default memory limit applies to a spec without resources');
    assert.equal(host.MemorySwap, 256 * 2 ** 20, 'and no swap');
    assert.equal(host.NanoCpus, 500_000_000);
    assert.equal(host.PidsLimit, 256);
    assert.deepEqual(host.Ulimits, [{ Name: 'nofile', Soft: 4096, Hard: 4096 }]);
    assert.deepEqual(host.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '3' } });
    // As a player with a shell in it sees it.
    const status = await dockerExec(outcome.containerId ?? '', ['cat', '/proc/self/status']);
    const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? 'ffffffffffffffff'}`);
    assert.equal(bounding & (1n << 13n), 0n, 'NET_RAW (bit 13) is not in the bounding set');
    assert.equal(bounding & (1n << 27n), 0n, 'MKNOD (bit 27) is not in the bounding set');
    assert.equal(bounding & (1n << 21n), 0n, 'SYS_ADMIN (bit 21) is not in the bounding set');
    assert.match(status, /^NoNewPrivs:\s*1$/m);
  });

  test('a spec above the deployment\'s maxima fails InvalidSpec naming the field and the maximum', async () => {
    const instance = await apply('greedy', webSpec('team-6', { resources: { memory: '8Gi' } }));
    await assert.rejects(reconciler.handle(jobFor(instance, 'start'), context('job-greedy')), /spec\.resources\.memory: 8Gi is above this deployment's maximum of 2Gi \(CTFLEET_MAX_MEMORY\)/);
    const failed = await stack.instances.get(NS, 'greedy');
    assert.equal(ready(failed)?.reason, 'InvalidSpec');
    assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`${LABELS.uid}=${instance.metadata.uid}`] } }), [], 'nothing was created');
  });

  test('a sweep removes a labelled container of no instance, and a delete job removes an instance\'s', async () => {
    const ghost = await docker.createContainer({
      name: `ctfleet-${NS}_ghost`,
      Image: 'ctfleet-test/busybox:1',
      Cmd: ['sleep', '3600'],
      Labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.uid]: randomUUID(), [LABELS.namespace]: NS, [LABELS.name]: 'ghost', [LABELS.node]: node },
    });
    // Older than the sweep's grace for young containers.
    await new Promise((resolve) => setTimeout(resolve, 15_500));
    await reconciler.sweep();
    await eventually('the orphan to be removed', 15_000, async () => ((await inspect(ghost.id)) === undefined ? true : undefined));

    const web = await stack.instances.get(NS, 'web');
    assert.ok(web !== undefined);
    const removed: JobOutcome = await reconciler.handle(jobFor(web, 'delete'), context('job-delete'));
    assert.deepEqual(removed, { outcome: 'removed', containerId: web.status?.containerId });
    assert.equal(await inspect(web.status?.containerId ?? ''), undefined);
    assert.deepEqual(await reconciler.handle(jobFor(web, 'delete'), context('job-delete-again')), { outcome: 'removed', reason: 'AlreadyGone' });
  });

  test('a stop job stops the container; a sweep stops it again when someone starts it behind its back', async () => {
    const stopped = await apply('refused', webSpec('team-3', { desiredState: 'Stopped' }));
    const outcome = await reconciler.handle(jobFor(stopped, 'stop'), context('job-stop'));
    assert.equal(outcome.outcome, 'stopped');
    const id = outcome.containerId ?? '';
    assert.equal((await inspect(id))?.running, false);
    assert.equal(ready(await stack.instances.get(NS, 'refused'))?.reason, 'ContainerStopped');
    // A sweep leaves containers younger than its grace (15 s) alone; this one is older.
    await docker.getContainer(id).start();
    await reconciler.sweep();
    await eventually('the container to be stopped again', 15_000, async () => ((await inspect(id))?.running === false ? true : undefined));
  });

  test('a container that prints a 20 KiB line with escapes before it exits fails ContainerExited with a message of at most 1 KiB: its last words, no escapes', async () => {
    const loud = `printf '\\033[31m\\033]0;pwned\\007'; head -c 20480 /dev/zero | tr '\\0' x; echo; echo 'fatal: the last words'; exit 3`;
    const instance = await apply('loud', webSpec('team-7', { image: 'ctfleet-test/busybox:1', command: ['sh', '-c', loud] }));
    const failure = await reconciler.handle(jobFor(instance, 'start'), context('job-loud')).then(() => undefined, (error: unknown) => error);
    assert.ok(failure instanceof Error && 'code' in failure, 'the start failed');
    assert.equal(failure.code, 'ContainerExited');
    const failed = await stack.instances.get(NS, 'loud');
    const message = ready(failed)?.message ?? '';
    assert.equal(ready(failed)?.reason, 'ContainerExited');
    for (const [what, text] of [['the Ready message', message], ['the job\'s failure', failure.message]] as const) {
      assert.ok(Buffer.byteLength(text) <= 1024, `${what} is ${Buffer.byteLength(text)} bytes`);
      assert.match(text, /^The container exited with code 3 before it became ready: \(truncated\) …x+ \| fatal: the last words$/, what);
    }
    assert.ok(Buffer.byteLength(message) > 800, 'the output fills the room it has (768 bytes)');
  });

  test('a container the OOM killer ends before it is ready fails OOMKilled, naming its memory limit', async () => {
    const hog = `echo 'allocating'; x=$(head -c 100m /dev/zero | tr '\\0' a); echo "survived \${#x}"`;
    const instance = await apply('hog', webSpec('team-8', { image: 'ctfleet-test/busybox:1', command: ['sh', '-c', hog], resources: { cpu: '250m', memory: '16Mi', pids: 64 } }));
    await assert.rejects(reconciler.handle(jobFor(instance, 'start'), context('job-hog')), { code: 'OOMKilled' });
    const failed = await stack.instances.get(NS, 'hog');
    assert.equal(ready(failed)?.status, 'False');
    assert.equal(ready(failed)?.reason, 'OOMKilled');
    // Which process the OOM killer picks is the kernel's choice: when it is a child, the shell may live long enough to print "Killed".
    assert.match(ready(failed)?.message ?? '', /^The container was killed by the OOM killer at its memory limit of 16Mi before it became ready \(exit code 137\): allocating( \| Killed)?$/);
    assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`${LABELS.uid}=${instance.metadata.uid}`] } }), [], 'the dead container was cleaned up');
  });

  test('a running container the OOM killer ends is restarted through the restart policy, its status and Warning event naming the OOM killer', async () => {
    // Serves (so it becomes ready), then its shell holds 100 MiB against a 16Mi limit.
    const later = `httpd -p 8080 -h /tmp; sleep 2; x=$(head -c 100m /dev/zero | tr '\\0' a)`;
    const instance = await apply('late-hog', webSpec('team-9', { image: 'ctfleet-test/busybox:1', command: ['sh', '-c', later], resources: { cpu: '250m', memory: '16Mi', pids: 64 } }));
    const outcome = await reconciler.handle(jobFor(instance, 'start'), context('job-late-hog'));
    assert.equal(outcome.outcome, 'started');
    const restarting = await stack.instances.waitFor(NS, 'late-hog', 'to report the OOM kill', (found) => ready(found)?.reason === 'ContainerRestarting', 20_000);
    assert.match(ready(restarting)?.message ?? '', /^The container was killed by the OOM killer at its memory limit of 16Mi; restart 1 of 2 in 0\.4 s\.$/);
    const inspected = await docker.getContainer(outcome.containerId ?? '').inspect();
    assert.equal(inspected.State.OOMKilled || inspected.State.Running, true, 'the engine saw the OOM kill (or it already runs again)');
    const events = await eventually('the Warning event', 10_000, async () => {
      const listed = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=late-hog,reason=ContainerRestarting', '-o', 'jsonpath={.items[*].message}']);
      return listed.stdout === '' ? undefined : listed.stdout;
    });
    assert.match(events, /killed by the OOM killer at its memory limit of 16Mi/);
    await stack.instances.waitFor(NS, 'late-hog', 'to run again', (found) => ready(found)?.status === 'True', 20_000);
    // Gone for good, so later sweeps do not revive it.
    assert.equal((await kubectl(['delete', 'chi', 'late-hog', '-n', NS, '--wait=true'])).code, 0);
    assert.equal((await reconciler.handle(jobFor(instance, 'delete'), context('job-late-hog-delete'))).outcome, 'removed');
  });

  describe('a host port taken by another program', () => {
    const squatter: Server = createServer();
    const PORTS = { min: 26960, max: 26961 };
    let squatted: NodeReconciler;

    before(async () => {
      await listen(squatter, PORTS.min, '127.0.0.1');
      // The allocator's first pick is the squatted port.
      let picks = 0;
      squatted = nodeReconciler(`it-node-b-${suffix}`, PORTS, () => (picks++ === 0 ? 0 : 0.99));
      squatted.start();
    });

    after(async () => {
      await squatted.close(5_000);
      squatter.close();
    });

    test('the start retries on another port and runs', async () => {
      const instance = await apply('squatted', webSpec('team-4'));
      const outcome = await squatted.handle(jobFor(instance, 'start'), context('job-squatted'));
      assert.equal(outcome.outcome, 'started');
      assert.deepEqual(outcome.endpoints?.map((endpoint) => endpoint.port), [PORTS.max]);
      assert.match(await fetchText(`http://127.0.0.1:${PORTS.max}/`), /hello team-4/);
    });
  });

  describe('a deployment that lets specs add SYS_NICE, name runsc and mount 64Mi of tmpfs', () => {
    const PORTS = { min: 26970, max: 26979 };
    // runsc is allowed but (on this stack) not registered with the engine; if it
    // ever is, the missing runtime is the other name.
    const MISSING = 'ctfleet-no-such-runtime';
    const hardening: HardeningProfile = { ...DEFAULT_HARDENING, allowedExtraCapabilities: ['SYS_NICE'], allowedRuntimes: ['runsc', MISSING], maxTmpfsSize: '64Mi' };
    let secured: NodeReconciler;

    /** `docker exec` as root, the strongest a player with a shell could be. */
    const execAsRoot = (id: string, command: string[]): Promise<{ ok: boolean; output: string }> =>
      new Promise((resolve) => {
        execFile('docker', ['exec', '-u', '0', id, ...command], { timeout: 20_000 }, (error, stdout, stderr) => {
          resolve({ ok: error === null, output: `${stdout}${stderr}` });
        });
      });

    before(() => {
      secured = nodeReconciler(`it-node-c-${suffix}`, PORTS, undefined, hardening);
      secured.start();
    });

    after(async () => {
      await secured.close(5_000);
    });

    test('a read-only root, a tmpfs and an added capability: docker inspect shows them, / refuses writes, the tmpfs takes them but runs nothing', async () => {
      const security = { capabilities: { add: ['SYS_NICE'] }, readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '16Mi' }] };
      const instance = await apply('read-only', webSpec('team-8', { security }));
      const outcome = await secured.handle(jobFor(instance, 'start'), context('job-read-only'));
      assert.equal(outcome.outcome, 'started');
      // The server writes its page under /tmp at start: it serves from the tmpfs.
      assert.match(await fetchText(`http://127.0.0.1:${outcome.endpoints?.[0]?.port ?? 0}/`), /hello team-8/);
      const id = outcome.containerId ?? '';
      const host = (await docker.getContainer(id).inspect()).HostConfig;
      assert.equal(host.ReadonlyRootfs, true);
      assert.deepEqual(host.Tmpfs, { '/tmp': `rw,noexec,nosuid,nodev,size=${16 * 2 ** 20}` });
      assert.deepEqual([...((host.CapAdd as string[] | undefined) ?? [])].sort(), [...DEFAULT_HARDENING.capabilities, 'SYS_NICE'].sort());
      assert.deepEqual(host.CapDrop, ['ALL']);
      assert.deepEqual(host.SecurityOpt, ['no-new-privileges:true'], 'seccomp and AppArmor stay at their defaults');

      const root = await execAsRoot(id, ['touch', '/pwned']);
      assert.equal(root.ok, false);
      assert.match(root.output, /Read-only file system/);
      assert.deepEqual(await execAsRoot(id, ['sh', '-c', 'echo written > /tmp/scratch && cat /tmp/scratch']), { ok: true, output: 'written\n' });
      const mounts = await execAsRoot(id, ['grep', ' /tmp ', '/proc/mounts']);
      assert.match(mounts.output, /^tmpfs \/tmp tmpfs rw,nosuid,nodev,noexec,.*size=16384k/m);
      const exec = await execAsRoot(id, ['sh', '-c', 'cp /bin/busybox /tmp/sh && chmod +x /tmp/sh && /tmp/sh true']);
      assert.equal(exec.ok, false, 'a binary dropped on the tmpfs does not run (noexec)');
      assert.match(exec.output, /Permission denied/);
      const status = await dockerExec(id, ['cat', '/proc/self/status']);
      const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
      assert.notEqual(bounding & (1n << 23n), 0n, 'SYS_NICE (bit 23) is in the bounding set');
      assert.equal(bounding & (1n << 13n), 0n, 'NET_RAW (bit 13) still is not');
      assert.match(status, /^Seccomp:\s*2$/m, 'a seccomp filter is on');
      assert.match(status, /^NoNewPrivs:\s*1$/m);
    });

    test('a capability not on the deployment\'s list fails InvalidSpec naming the field and the list, and creates nothing', async () => {
      const instance = await apply('net-admin', webSpec('team-9', { security: { capabilities: { add: ['NET_ADMIN'] } } }));
      await assert.rejects(
        secured.handle(jobFor(instance, 'start'), context('job-net-admin')),
        /spec\.security\.capabilities\.add: NET_ADMIN is not on this deployment's list of capabilities a spec may add \(CTFLEET_ALLOWED_EXTRA_CAPABILITIES: SYS_NICE\)/,
      );
      assert.equal(ready(await stack.instances.get(NS, 'net-admin'))?.reason, 'InvalidSpec');
      assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`${LABELS.uid}=${instance.metadata.uid}`] } }), [], 'nothing was created');
    });

    test('an allowed runtime the engine does not have fails UnknownRuntime, permanently, and leaves nothing behind', async () => {
      const registered = Object.keys(((await docker.info()) as { Runtimes?: Record<string, unknown> }).Runtimes ?? {});
      const runtime = registered.includes('runsc') ? MISSING : 'runsc';
      const instance = await apply('gvisor', webSpec('team-10', { security: { runtime } }));
      await assert.rejects(secured.handle(jobFor(instance, 'start'), context('job-gvisor')), (error: unknown) => {
        assert.ok(error instanceof CtfleetError);
        assert.equal(error.code, 'UnknownRuntime');
        assert.equal(error.retry, 'permanent');
        assert.match(error.message, new RegExp(`has no runtime ${runtime} \\(spec\\.security\\.runtime\\)`));
        return true;
      });
      const failed = await stack.instances.get(NS, 'gvisor');
      assert.equal(ready(failed)?.reason, 'UnknownRuntime');
      assert.match(ready(failed)?.message ?? '', /CTFLEET_ALLOWED_RUNTIMES/);
      assert.deepEqual(await docker.listContainers({ all: true, filters: { label: [`${LABELS.uid}=${instance.metadata.uid}`] } }), [], 'nothing was created');
    });
  });
});
