import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import type Docker from 'dockerode';
import type { InstanceSpec } from '../../src/domain/challenge-instance.ts';
import { perTeamFlagPart, renderFlag } from '../../src/domain/flags.ts';
import { specHash } from '../../src/domain/spec-hash.ts';
import { poolGuardChain } from '../../src/worker/isolation-plan.ts';
import { challengeInstanceManifest, challengeManifest, CtfleetProcess, fetchText, isRunning, kubectl, type RawInstance } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort, stackConfig } from '../support/stack.ts';

// Issue 14's "how it is shown", on the real stack: a pooled burst of 50 all
// Running with distinct containers and endpoints that answer, each with its own
// flag; the pool refills to its size; idle containers refuse outside
// connections until claimed; fresh starts when the pool is empty; a Challenge
// update rotates idle containers; a worker killed mid-claim loses and
// duplicates nothing.
//
// "Outside" is a network namespace the test makes, joined to the host by a veth
// pair on 10.215.250.0/30 (addresses of this machine, made by the test), with
// the worker publishing ports on the host's end: its connections arrive as a
// remote client's would (DNAT, then forwarding), unlike the host's own.

const run = promisify(execFile);
const KEY = randomBytes(48);
const NETNS = `ctfleet-pool-${randomBytes(3).toString('hex')}`;
const HOST_END = `vpool${randomBytes(3).toString('hex')}`;
const HOST_IP = '10.215.250.1';
const OUTSIDE_IP = '10.215.250.2';
const SIZE = 50;

/** True when an HTTP request from the outside namespace to the node's port gets an answer within 2 s. */
async function reachesFromOutside(port: number): Promise<boolean> {
  try {
    const { stdout } = await run('ip', ['netns', 'exec', NETNS, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${HOST_IP}:${port}/`]);
    return /^\d{3}$/.test(stdout) && stdout !== '000';
  } catch {
    return false;
  }
}

describe('warm pools: an instance from an idle container, its flag written at the claim', () => {
  const scenario = new Scenario('pools', 17, {
    CTFLEET_BIND_ADDRESS: HOST_IP,
    // Fifty idle, fifty claimed, fifty refilling, and ports kept back a minute after use: more than one block.
    CTFLEET_PORT_RANGE: '24400-24999',
    CTFLEET_ADVERTISE_ADDRESS: HOST_IP,
    CTFLEET_POOL_REFILL_CONCURRENCY: '8',
    CTFLEET_WORKER_CONCURRENCY: '16',
  });
  let httpPort = 0;
  let main: CtfleetProcess | undefined;
  let redis: Redis;
  const expectedFlag = (team: string): string => renderFlag('CTF{%s}', perTeamFlagPart(KEY, { namespace: scenario.namespace, challenge: 'web', team }));

  const poolContainers = async (): Promise<Docker.ContainerInfo[]> =>
    (await scenario.docker.listContainers({ all: true, filters: { label: [`ctfleet.io/namespace=${scenario.namespace}`, 'ctfleet.io/pool'] } })).filter((container) => (container.Names[0] ?? '').startsWith('/ctfpool-'));
  const metric = async (name: string, labels = ''): Promise<number> => {
    const text = await fetchText(`http://127.0.0.1:${httpPort}/metrics`);
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(labels));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };
  const idleAtLeast = (count: number, timeoutMs: number): Promise<Docker.ContainerInfo[]> =>
    eventually(`${count} idle pool containers`, timeoutMs, async () => {
      const idle = (await poolContainers()).filter((container) => container.State === 'running');
      return idle.length >= count && (await metric('ctfleet_pool_idle', `challenge="${scenario.namespace}/web"`)) >= count ? idle : undefined;
    });
  /** Creates the instances all at once, as a platform does at the opening bell. */
  const createInstances = async (names: string[]): Promise<void> => {
    const custom = scenario.kubeConfig.makeApiClient(CustomObjectsApi);
    await Promise.all(names.map((name) => custom.createNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace: scenario.namespace, plural: 'challengeinstances', body: JSON.parse(challengeInstanceManifest(scenario.namespace, name, `team-${name}`, 'web')) as object })));
  };
  const allRunning = (names: string[], timeoutMs: number): Promise<RawInstance[]> =>
    eventually(`${names.length} instances Running`, timeoutMs, async () => {
      const got = await Promise.all(names.map((name) => scenario.instances.get(scenario.namespace, name)));
      return got.every((instance) => instance !== undefined && isRunning(instance)) ? (got as RawInstance[]) : undefined;
    });
  const flagOf = async (containerId: string): Promise<string> => (await run('docker', ['exec', containerId, 'cat', '/flag/flag.txt'])).stdout.trim();
  const setPool = async (pool: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<void> => {
    const patched = await kubectl(['patch', 'challenge', 'web', '-n', scenario.namespace, '--type', 'merge', '-p', JSON.stringify({ spec: { pool, ...extra } })]);
    assert.equal(patched.code, 0, patched.stderr);
  };

  before(async () => {
    await scenario.prepare();
    httpPort = await freePort();
    await run('ip', ['netns', 'add', NETNS]);
    await run('ip', ['link', 'add', HOST_END, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
    await run('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', HOST_END]);
    await run('ip', ['link', 'set', HOST_END, 'up']);
    await run('ip', ['netns', 'exec', NETNS, 'ip', 'addr', 'add', `${OUTSIDE_IP}/30`, 'dev', 'eth0']);
    await run('ip', ['netns', 'exec', NETNS, 'ip', 'link', 'set', 'eth0', 'up']);
    await run('ip', ['netns', 'exec', NETNS, 'ip', 'link', 'set', 'lo', 'up']);
    const core = scenario.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace: scenario.namespace, body: { metadata: { name: 'flag-key' }, data: { key: KEY.toString('base64') } } });
    const applied = await kubectl(['apply', '-f', '-'], challengeManifest(scenario.namespace, 'web', {
      resources: { cpu: '100m', memory: '32Mi', pids: 32 },
      flag: { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'File' },
      pool: { size: SIZE },
    }));
    assert.equal(applied.code, 0, applied.stderr);
    redis = new Redis(stackConfig().redis.url, { lazyConnect: true });
    main = scenario.start('all', { CTFLEET_HTTP_PORT: String(httpPort), CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
  });

  after(async () => {
    redis.disconnect();
    await scenario.cleanup();
    await run('ip', ['link', 'del', HOST_END]).catch(() => undefined);
    await run('ip', ['netns', 'del', NETNS]).catch(() => undefined);
  });

  test('the pool fills to its size; idle containers refuse outside connections, and the Challenge shows its pool', async () => {
    const idle = await idleAtLeast(SIZE, 180_000);
    assert.equal(idle.length, SIZE);
    const ports = idle.map((container) => container.Ports.find((port) => port.PrivatePort === 8080)?.PublicPort ?? 0);
    // The guard chain closes exactly these ports; the node itself still reaches them (its readiness probes do).
    const saved = (await run('iptables-save', ['-t', 'filter'])).stdout;
    const chain = poolGuardChain(scenario.node('a'));
    for (const port of ports) assert.match(saved, new RegExp(`-A ${chain} -o ctfl-\\+ -m conntrack --ctstate DNAT --ctorigdstport ${port} -j DROP`));
    assert.match(saved, new RegExp(`-A DOCKER-USER -j ${chain}`));
    for (const port of ports.slice(0, 3)) assert.equal(await reachesFromOutside(port), false, `an idle pool container answered on ${HOST_IP}:${port} from outside`);
    const shown = await eventually('the Challenge showing its idle pool', 30_000, async () => {
      const { stdout } = await kubectl(['get', 'challenge', 'web', '-n', scenario.namespace]);
      return /\bPOOL\s+IDLE\b/.test(stdout) && new RegExp(`\\s${SIZE}\\s+${SIZE}\\s`).test(stdout) ? stdout : undefined;
    });
    console.log(`# ${shown.trim().split('\n').join('\n# ')}`);
  });

  const burst = Array.from({ length: SIZE }, (_, i) => `burst-${i}`);
  let burstRunning: RawInstance[] = [];

  test(`a burst of ${SIZE}: all Running in pool containers, distinct, endpoints answering from outside, each with its team's flag`, async () => {
    const poolIds = new Set((await poolContainers()).map((container) => container.Id));
    const began = Date.now();
    await createInstances(burst);
    burstRunning = await allRunning(burst, 120_000);
    console.log(`# ${SIZE} pooled instances Running ${Date.now() - began} ms after their creates began (polled)`);
    const ids = burstRunning.map((instance) => instance.status?.containerId ?? '');
    assert.equal(new Set(ids).size, SIZE, 'every instance has a container of its own');
    // Refills wait while claims go on, so every one was idle before the burst.
    assert.equal(ids.filter((id) => poolIds.has(id)).length, SIZE, 'every one is a container that was idle in the pool before the burst');
    const endpoints = burstRunning.map((instance) => instance.status?.endpoints?.[0]?.port ?? 0);
    assert.equal(new Set(endpoints).size, SIZE, 'distinct endpoints');
    for (const instance of burstRunning) {
      const container = await scenario.docker.getContainer(instance.status?.containerId ?? '').inspect();
      assert.equal(container.Name, `/ctfleet-${scenario.namespace}_${instance.metadata.name}`, 'the claimed container took the instance\'s name');
      assert.equal(await flagOf(container.Id), expectedFlag(String(instance.spec.team)), `${instance.metadata.name} holds its own team's flag`);
      assert.match(await fetchText(instance.status?.endpoints?.[0]?.url ?? ''), /hello from web/);
    }
    for (const port of endpoints.slice(0, 5)) assert.equal(await reachesFromOutside(port), true, `claimed endpoint ${HOST_IP}:${port} does not answer from outside`);
    assert.equal(await metric('ctfleet_pool_claims_total', 'result="claimed"'), SIZE);
    const flags = await Promise.all(ids.map(flagOf));
    assert.equal(new Set(flags).size, SIZE, 'fifty teams, fifty flags');
  });

  test('the pool refills to its size after the burst', async () => {
    const refilled = await idleAtLeast(SIZE, 180_000);
    const claimed = new Set(burstRunning.map((instance) => instance.status?.containerId));
    assert.ok(refilled.every((container) => !claimed.has(container.Id)), 'no claimed container is back in the pool');
    assert.ok((await metric('ctfleet_pool_refills_total', 'result="created"')) >= 2 * SIZE);
  });

  test('with the pool empty, instances start fresh, with no error', async () => {
    await setPool({ size: 0 });
    await eventually('the pool drained', 60_000, async () => ((await poolContainers()).length === 0 ? true : undefined));
    const emptyBefore = await metric('ctfleet_pool_claims_total', 'result="empty"');
    const names = ['fresh-0', 'fresh-1', 'fresh-2'];
    await createInstances(names);
    const running = await allRunning(names, 60_000);
    for (const instance of running) {
      const container = await scenario.docker.getContainer(instance.status?.containerId ?? '').inspect();
      assert.equal(container.Config.Labels['ctfleet.io/pool'], undefined, 'a fresh container, not a pool one');
      assert.equal(await flagOf(container.Id), expectedFlag(String(instance.spec.team)));
    }
    assert.equal(await metric('ctfleet_pool_claims_total', 'result="empty"'), emptyBefore + names.length);
  });

  test('a Challenge update rotates the idle containers; running instances keep their generation', async () => {
    await setPool({ size: 6 });
    const first = await idleAtLeast(6, 60_000);
    const generationOf = (container: Docker.ContainerInfo): string => container.Labels['ctfleet.io/challenge-generation'] ?? '';
    const old = generationOf(first[0] as Docker.ContainerInfo);
    await setPool({ size: 6 }, { env: [{ name: 'GREETING', value: 'hello from web, version 2' }] });
    const rotated = await eventually('every idle container of the new generation', 90_000, async () => {
      const idle = await poolContainers();
      return idle.length === 6 && idle.every((container) => generationOf(container) !== old && container.State === 'running') ? idle : undefined;
    });
    assert.ok(rotated.every((container) => !first.some((before) => before.Id === container.Id)), 'none of the old idle containers is kept');
    const kept = await scenario.instances.get(scenario.namespace, 'burst-0');
    assert.equal(kept?.status?.containerId, burstRunning[0]?.status?.containerId, 'a claimed container keeps running through the rotation');
    const claimedNow = await idleAtLeast(6, 30_000);
    await createInstances(['rotated-0']);
    const [instance] = await allRunning(['rotated-0'], 30_000);
    assert.ok(claimedNow.some((container) => container.Id === instance?.status?.containerId), 'claimed from the rotated pool');
    assert.match(await fetchText(instance?.status?.endpoints?.[0]?.url ?? ''), /version 2/);
  });

  test('a worker killed mid-claim loses nothing and duplicates nothing', async () => {
    await main?.stop();
    const controller = scenario.start('controller', { CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
    const workerEnv = { CTFLEET_HTTP_PORT: String(httpPort), CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` };
    let worker = scenario.start('worker', workerEnv);
    await setPool({ size: 10 });
    await idleAtLeast(10, 90_000);
    const names = Array.from({ length: 10 }, (_, i) => `kill-${i}`);
    await createInstances(names);
    // Cut the worker down the moment the first claim is recorded (a claim's first step):
    // it and the claims after it are under way.
    await redis.connect().catch(() => undefined);
    const claimsKey = `${scenario.env.CTFLEET_REDIS_PREFIX ?? ''}:pool:${scenario.node('a')}:claims`;
    const before = await redis.hlen(claimsKey);
    const deadline = Date.now() + 30_000;
    while ((await redis.hlen(claimsKey)) === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    const exited = new Promise((resolve) => worker.child.once('exit', resolve));
    worker.child.kill('SIGKILL');
    await exited;
    const settled = await Promise.all(names.map((name) => scenario.instances.get(scenario.namespace, name)));
    console.log(`# worker killed with ${String((await redis.hlen(claimsKey)) - before)} claim(s) recorded and ${String(settled.filter((instance) => instance?.status?.containerId !== undefined).length)} of ${String(names.length)} reported`);
    worker = scenario.start('worker', workerEnv);
    const running = await allRunning(names, 120_000);
    const ids = running.map((instance) => instance.status?.containerId ?? '');
    assert.equal(new Set(ids).size, names.length, 'no container serves two instances');
    for (const instance of running) {
      const container = await scenario.docker.getContainer(instance.status?.containerId ?? '').inspect();
      assert.equal(container.Name, `/ctfleet-${scenario.namespace}_${instance.metadata.name}`);
      assert.equal(await flagOf(container.Id), expectedFlag(String(instance.spec.team)));
    }
    // Every claim record names a container that still exists under its instance's name: none abandoned, none for two.
    await redis.connect().catch(() => undefined);
    const claims = await eventually('claims settled (abandoned ones removed)', 60_000, async () => {
      const records = await redis.hgetall(`${scenario.env.CTFLEET_REDIS_PREFIX ?? ''}:pool:${scenario.node('a')}:claims`);
      const pooledNames = new Set((await poolContainers()).map((container) => container.Id));
      return Object.keys(records).some((id) => pooledNames.has(id)) ? undefined : records;
    });
    const claimedUids = Object.values(claims).map((text) => (JSON.parse(text) as { uid: string }).uid);
    assert.equal(new Set(claimedUids).size, claimedUids.length, 'no instance holds two claims');
    await scenario.converged('worker killed mid-claim', Date.now(), 60_000);
    // The next test leaves two idle containers half-claimed with no worker running:
    // the refill after these ten claims must have made them first.
    await idleAtLeast(2, 90_000);
    await worker.stop();
    await controller.stop();
  });

  test('the states a crash mid-claim leaves are repaired: a claim recorded but not renamed is dropped, a renamed one is adopted', async () => {
    // Left exactly as a worker killed at each step of a claim leaves them (docs/pools.md,
    // "Crashes"), while no worker runs; then a worker starts.
    const controller = scenario.start('controller', { CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
    const idle = (await poolContainers()).filter((container) => container.State === 'running');
    assert.ok(idle.length >= 2, `two idle pool containers to leave half-claimed (have ${idle.length})`);
    const [dropped, renamed] = idle as [Docker.ContainerInfo, Docker.ContainerInfo];
    await createInstances(['crash-a', 'crash-b']);
    const [a, b] = await Promise.all(['crash-a', 'crash-b'].map((name) => eventually(`${name} scheduled`, 30_000, async () => {
      const instance = await scenario.instances.get(scenario.namespace, name);
      return instance?.status?.lastJob === undefined ? undefined : instance;
    }))) as [RawInstance, RawInstance];
    const key = `${scenario.env.CTFLEET_REDIS_PREFIX ?? ''}:pool:${scenario.node('a')}:claims`;
    const record = (instance: RawInstance): string => JSON.stringify({
      uid: instance.metadata.uid, namespace: scenario.namespace, name: instance.metadata.name, team: String(instance.spec.team),
      generation: instance.metadata.generation, specHash: specHash(instance.spec as unknown as InstanceSpec), claimedAt: Date.now(),
    });
    await redis.connect().catch(() => undefined);
    // Killed after step 2 (claim recorded) for crash-a: the container keeps its pool name.
    assert.equal(await redis.hsetnx(key, dropped.Id, record(a)), 1);
    // Killed after step 4 (flag written, renamed) for crash-b: the status does not name it yet.
    assert.equal(await redis.hsetnx(key, renamed.Id, record(b)), 1);
    const filesDir = join('/var/lib/ctfleet/pool-files', scenario.node('a'), renamed.Labels['ctfleet.io/pool-files'] ?? assert.fail('no files directory'));
    writeFileSync(join(filesDir, 'flag.txt'), `${expectedFlag(String(b.spec.team))}\n`, { mode: 0o444 });
    await scenario.docker.getContainer(renamed.Id).rename({ name: `ctfleet-${scenario.namespace}_crash-b` });

    const worker = scenario.start('worker', { CTFLEET_HTTP_PORT: String(httpPort), CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
    const [runA, runB] = await allRunning(['crash-a', 'crash-b'], 90_000);
    assert.equal(runB?.status?.containerId, renamed.Id, 'the renamed container was adopted by its instance');
    assert.equal(await flagOf(renamed.Id), expectedFlag(String(b.spec.team)));
    assert.notEqual(runA?.status?.containerId, dropped.Id, 'the container of the claim cut short serves no one');
    assert.equal(await flagOf(runA?.status?.containerId ?? ''), expectedFlag(String(a.spec.team)));
    await eventually('the half-claimed container removed', 30_000, async () => ((await scenario.docker.listContainers({ all: true, filters: { id: [dropped.Id] } })).length === 0 ? true : undefined));
    assert.match(readFileSync(worker.logFile, 'utf8'), /"reason":"AbandonedClaim"/);
    await scenario.converged('crash states repaired', Date.now(), 60_000);
    await worker.stop();
    await controller.stop();
  });

  scenario.declareLogTest();
});
