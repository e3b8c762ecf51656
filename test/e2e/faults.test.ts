import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { containersOf, isRunning, kubectl, webSpec, type RawInstance } from '../support/ctfleet.ts';
import { outage, stackOwns } from '../support/faults.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort, readiness } from '../support/stack.ts';

/** While a dependency is down: /readyz is 503 naming it, /healthz still 200, the process alive. */
async function reportsNotReady(port: number, check: string): Promise<void> {
  await eventually(`/readyz to name ${check}`, 20_000, async () => {
    const { status, failing } = await readiness(port);
    return status === 503 && failing.includes(check) ? true : undefined;
  });
  const live = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(live.status, 200);
}

async function reportsReady(port: number): Promise<void> {
  await eventually('/readyz to be 200 again', 30_000, async () => ((await readiness(port)).status === 200 ? true : undefined));
}

// The fault-injection tests of issue 4 (the leader kill is in failover.test.ts).
// Each injects its fault into the real stack and ends with the same checks (see
// test/support/convergence.ts); the time to converge is printed and kept in
// test-artifacts/convergence.txt.

const names = (prefix: string, count: number, from = 0): string[] => Array.from({ length: count }, (_, i) => `${prefix}-${from + i}`);
const slowSpec = (team: string): Record<string, unknown> => webSpec(team, { image: 'ctfleet-test/slow:1', env: [{ name: 'DELAY', value: '2' }, { name: 'GREETING', value: team }] });

async function statuses(scenario: Scenario): Promise<RawInstance[]> {
  const result = await kubectl(['get', 'challengeinstances', '-n', scenario.namespace, '-o', 'json']);
  return (JSON.parse(result.stdout) as { items: RawInstance[] }).items;
}

function alive(process: { child: { exitCode: number | null; signalCode: NodeJS.Signals | null } }): boolean {
  return process.child.exitCode === null && process.child.signalCode === null;
}

describe('fault injection', { concurrency: 1 }, () => {
  describe('1. kill -9 the worker while 20 instances are starting', () => {
    const scenario = new Scenario('kill9', 0);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('a new worker finishes every start; nothing is lost or doubled', async () => {
      scenario.start('controller');
      const worker = scenario.start('worker');
      await scenario.apply(names('k', 20), (name, i) => (i % 2 === 0 ? slowSpec(name) : webSpec(name)));
      // Kill it mid-flight: some containers exist, not all are ready.
      await eventually('the first containers', 60_000, async () => ((await containersOf(scenario.docker, scenario.namespace)).length >= 3 ? true : undefined));
      worker.child.kill('SIGKILL');
      const killedAt = Date.now();
      await new Promise((resolve) => worker.child.once('exit', resolve));
      const before = await statuses(scenario);
      assert.ok(before.some((instance) => !isRunning(instance)), 'the worker was killed while some instances were still starting');
      scenario.start('worker');
      const ms = await scenario.converged('kill -9 worker during 20 starts', killedAt, 120_000);
      assert.ok(ms > 0);
    });

    scenario.declareLogTest();
  });

  describe('2. Redis restarts with every key lost while 20 instances run and 10 more start', () => {
    const scenario = new Scenario('redis', 1);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('the controller re-enqueues what is still needed and the workers refresh their state', async () => {
      const port = await freePort();
      const ctfleet = scenario.start('all', { CTFLEET_HTTP_PORT: String(port) });
      await scenario.apply(names('r', 20), (name) => webSpec(name));
      await Promise.all(names('r', 20).map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
      await scenario.apply(names('r', 10, 20), (name) => slowSpec(name));
      const stoppedAt = await outage('redis', 'SIGKILL', () => reportsNotReady(port, 'worker.redis'));
      await scenario.converged('Redis restarted empty', stoppedAt, 120_000);
      await reportsReady(port);
      assert.ok(alive(ctfleet), 'ctfleet kept running through the Redis outage');

      // Heartbeat and observed state are back in the new, empty Redis.
      const redis = new Redis(process.env.REDIS_URL ?? '');
      try {
        const prefix = scenario.env.CTFLEET_REDIS_PREFIX ?? '';
        await eventually('the heartbeat to return', 20_000, async () => ((await redis.exists(`${prefix}:worker:${scenario.node('a')}`)) === 1 ? true : undefined));
        const uids = (await statuses(scenario)).map((instance) => instance.metadata.uid);
        await eventually('observed state of all 30 instances', 30_000, async () => {
          const present = await Promise.all(uids.map((uid) => redis.exists(`${prefix}:observed:${uid}`)));
          return present.every((value) => value === 1) ? true : undefined;
        });
      } finally {
        redis.disconnect();
      }
    });

    scenario.declareLogTest();
  });

  describe('3. the Docker engine restarts while instances run', () => {
    const scenario = new Scenario('docker', 2);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('the worker reconnects to the event stream and brings every container back', async (t) => {
      if (!stackOwns('dockerd')) {
        t.skip('the Docker engine was not started by hack/stack.sh, so the test may not restart it');
        return;
      }
      const port = await freePort();
      const ctfleet = scenario.start('all', { CTFLEET_HTTP_PORT: String(port) });
      await scenario.apply(names('d', 10), (name) => webSpec(name));
      await Promise.all(names('d', 10).map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
      const stoppedAt = await outage('dockerd', 'SIGTERM', () => reportsNotReady(port, 'worker.docker'));
      await scenario.converged('Docker engine restarted', stoppedAt, 180_000);
      assert.ok(alive(ctfleet), 'ctfleet kept running while Docker was down');
    });

    scenario.declareLogTest();
  });

  describe('4. the kube-apiserver restarts while instances are created and deleted', () => {
    const scenario = new Scenario('apiserver', 3);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('creates and deletes accepted before the outage all finish after it', async () => {
      const port = await freePort();
      const ctfleet = scenario.start('all', { CTFLEET_HTTP_PORT: String(port) });
      await scenario.apply(names('a', 10), (name) => webSpec(name));
      await Promise.all(names('a', 10).map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
      await scenario.apply(names('a', 10, 10), (name) => slowSpec(name));
      const deleted = await kubectl(['delete', 'challengeinstances', '-n', scenario.namespace, '--wait=false', ...names('a', 5)]);
      assert.equal(deleted.code, 0, deleted.stderr);
      const stoppedAt = await outage('kube-apiserver', 'SIGKILL', () => reportsNotReady(port, 'controller.kubernetes'));
      await scenario.converged('kube-apiserver restarted', stoppedAt, 180_000);
      const left = (await statuses(scenario)).map((instance) => instance.metadata.name).sort();
      assert.deepEqual(left, names('a', 15, 5).sort());
      assert.ok(alive(ctfleet), 'ctfleet kept running while the API server was down');
      await reportsReady(port);
    });

    scenario.declareLogTest();
  });

  describe('6. containers changed behind ctfleet\'s back', () => {
    const scenario = new Scenario('drift', 4, { CTFLEET_RESTART_LIMIT: '2', CTFLEET_RESTART_BACKOFF_MS: '500' });
    before(async () => {
      await scenario.prepare();
      scenario.start('all');
      await scenario.apply(names('x', 4), (name) => webSpec(name));
      await Promise.all(names('x', 4).map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
    });
    after(() => scenario.cleanup());

    test('docker rm -f of an instance\'s container and a labelled container of no instance: re-created, and removed', async () => {
      const victim = await scenario.instances.get(scenario.namespace, 'x-0');
      const port = victim?.status?.endpoints?.[0]?.port;
      await scenario.docker.getContainer(victim?.status?.containerId ?? '').remove({ force: true });
      const fake = await scenario.docker.createContainer({
        name: `ctfleet-${scenario.namespace}_ghost`,
        Image: 'ctfleet-test/busybox:1',
        Cmd: ['sleep', '3600'],
        Labels: {
          'app.kubernetes.io/managed-by': 'ctfleet',
          'ctfleet.io/uid': randomUUID(),
          'ctfleet.io/namespace': scenario.namespace,
          'ctfleet.io/name': 'ghost',
          'ctfleet.io/node': scenario.node('a'),
        },
      });
      await fake.start();
      const changedAt = Date.now();
      await scenario.converged('docker rm -f + labelled stranger', changedAt, 90_000);
      const revived = await scenario.instances.get(scenario.namespace, 'x-0');
      assert.notEqual(revived?.status?.containerId, victim?.status?.containerId, 'a new container replaced the removed one');
      assert.equal(revived?.status?.endpoints?.[0]?.port, port, 'on the same host port');
      await assert.rejects(fake.inspect(), 'the stranger is gone');
    });

    test('a container killed behind ctfleet\'s back is restarted in place within seconds', async () => {
      const victim = await scenario.instances.get(scenario.namespace, 'x-1');
      await scenario.docker.getContainer(victim?.status?.containerId ?? '').kill();
      const killedAt = Date.now();
      const ms = await scenario.converged('docker kill', killedAt, 30_000);
      assert.ok(ms < 10_000, `restarted after ${ms} ms`);
      const restarted = await scenario.instances.get(scenario.namespace, 'x-1');
      assert.equal(restarted?.status?.containerId, victim?.status?.containerId, 'the same container was started again');
      assert.equal(restarted?.status?.startedAt, victim?.status?.startedAt, 'a restart does not reset the lifetime');
      const events = await kubectl(['get', 'events', '-n', scenario.namespace, '--field-selector', 'involvedObject.name=x-1,reason=ContainerRestarting', '-o', 'jsonpath={.items[*].message}']);
      assert.match(events.stdout, /restart 1 of 2/, 'the restart was announced with a Warning event');
    });

    test('past the restart limit the instance is Failed/CrashLoop, and a spec change brings it back', async () => {
      // Limit 2: the third exit within the window gives up.
      for (let kill = 1; kill <= 3; kill += 1) {
        // Running again, as the status says and as Docker says.
        const current = await eventually(`x-2 to run before kill ${kill}`, 30_000, async () => {
          const instance = await scenario.instances.get(scenario.namespace, 'x-2');
          if (instance === undefined || !isRunning(instance)) return undefined;
          const inspected = await scenario.docker.getContainer(instance.status?.containerId ?? '').inspect();
          return inspected.State.Running ? instance : undefined;
        });
        await scenario.docker.getContainer(current.status?.containerId ?? '').kill();
        if (kill < 3) {
          await scenario.instances.waitFor(scenario.namespace, 'x-2', 'to report the restart', (instance) => instance.status?.reason === 'ContainerRestarting' || isRunning(instance), 10_000);
        }
      }
      const failed = await scenario.instances.waitFor(scenario.namespace, 'x-2', 'to be CrashLoop', (instance) => instance.status?.phase === 'Failed' && instance.status.reason === 'CrashLoop', 30_000);
      assert.match(failed.status?.message ?? '', /limit 2 restarts/);
      const events = await kubectl(['get', 'events', '-n', scenario.namespace, '--field-selector', 'involvedObject.name=x-2,reason=CrashLoop', '-o', 'name']);
      assert.notEqual(events.stdout.trim(), '', 'a CrashLoop warning event was recorded');
      await scenario.apply(['x-2'], () => webSpec('x-2', { env: [{ name: 'GREETING', value: 'fixed' }] }));
      const fixedAt = Date.now();
      await scenario.converged('CrashLoop fixed by a spec change', fixedAt, 60_000);
    });

    scenario.declareLogTest();
  });

  describe('7. a node\'s worker disappears for good', () => {
    const scenario = new Scenario('nodelost', 5);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('its instances are marked NodeLost and rescheduled on the other worker with new endpoints', async () => {
      scenario.start('controller');
      const workerA = scenario.start('worker', { CTFLEET_NODE_NAME: scenario.node('a'), CTFLEET_PORT_RANGE: scenario.portRange(0) }, 'worker-a');
      await scenario.apply(names('n', 6), (name) => webSpec(name));
      const placed = await Promise.all(names('n', 6).map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run on node a', isRunning, 90_000)));
      assert.ok(placed.every((instance) => instance.status?.node === scenario.node('a')));
      scenario.start('worker', { CTFLEET_NODE_NAME: scenario.node('b'), CTFLEET_PORT_RANGE: scenario.portRange(1) }, 'worker-b');

      // The machine dies: its worker and its containers with it.
      workerA.child.kill('SIGKILL');
      const lostAt = Date.now();
      for (const container of await containersOf(scenario.docker, scenario.namespace)) {
        if (container.Labels['ctfleet.io/node'] === scenario.node('a')) await scenario.docker.getContainer(container.Id).remove({ force: true });
      }
      // Deleting an instance of the dead node must not wait for it forever.
      const deleted = await kubectl(['delete', 'challengeinstance', 'n-5', '-n', scenario.namespace, '--wait=false']);
      assert.equal(deleted.code, 0, deleted.stderr);
      await scenario.converged('node lost for good', lostAt, 120_000);
      await scenario.instances.waitForGone(scenario.namespace, 'n-5', 10_000);
      const [low, high] = scenario.portRange(1).split('-').map(Number) as [number, number];
      const moved = await statuses(scenario);
      assert.deepEqual(moved.map((instance) => instance.metadata.name).sort(), names('n', 5));
      for (const instance of moved) {
        const before = placed.find((old) => old.metadata.name === instance.metadata.name);
        assert.equal(instance.status?.node, scenario.node('b'));
        const port = instance.status.endpoints?.[0]?.port ?? 0;
        assert.ok(port >= low && port <= high, `${instance.metadata.name} has a new endpoint on node b (${port})`);
        assert.notEqual(port, before?.status?.endpoints?.[0]?.port);
        assert.equal(instance.status.reschedules, 1);
      }
      const events = await kubectl(['get', 'events', '-n', scenario.namespace, '--field-selector', 'reason=NodeLost', '-o', 'jsonpath={.items[*].involvedObject.name}']);
      assert.deepEqual(events.stdout.split(' ').filter((name) => name !== '').sort(), names('n', 5).sort(), 'each rescheduled instance got a NodeLost warning');
    });

    scenario.declareLogTest();
  });

  describe('8. create and delete the same instance 20 times in a row', () => {
    const scenario = new Scenario('churn', 6);
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('leaves no container, no resource and no queued job behind', async () => {
      scenario.start('all');
      for (let round = 0; round < 20; round += 1) {
        await scenario.apply(['same'], () => webSpec('same', { env: [{ name: 'GREETING', value: `round ${round}` }] }));
        // From no wait at all to a container being started or ready.
        await new Promise((resolve) => setTimeout(resolve, (round % 5) * 150));
        const deleted = await kubectl(['delete', 'challengeinstance', 'same', '-n', scenario.namespace, '--wait=true', '--timeout=60s']);
        assert.equal(deleted.code, 0, `round ${round}: ${deleted.stderr}`);
      }
      const doneAt = Date.now();
      await scenario.converged('20 create/delete rounds', doneAt, 60_000);
      assert.deepEqual(await containersOf(scenario.docker, scenario.namespace), []);
      const redis = new Redis(process.env.REDIS_URL ?? '');
      try {
        const prefix = scenario.env.CTFLEET_REDIS_PREFIX ?? '';
        const queued = async (): Promise<number> => (await redis.llen(`${prefix}:start:wait`)) + (await redis.zcard(`${prefix}:start:prioritized`)) + (await redis.llen(`${prefix}:start:active`));
        await eventually('the start queue to drain', 30_000, async () => ((await queued()) === 0 ? true : undefined));
      } finally {
        redis.disconnect();
      }
      // The name is free for a 21st time, and it runs.
      await scenario.apply(['same'], () => webSpec('same'));
      await scenario.instances.waitFor(scenario.namespace, 'same', 'to run', isRunning, 60_000);
      await scenario.converged('the name reused once more', doneAt, 60_000);
    });

    scenario.declareLogTest();
  });

  describe('9. 100 instances with a 10-second lifetime', () => {
    const scenario = new Scenario('ttl100', 7, { CTFLEET_WORKER_CONCURRENCY: '16' });
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('all expire and nothing is left running', async () => {
      scenario.start('all');
      const all = names('t', 100);
      const appliedAt = Date.now();
      await scenario.apply(all, (name) => webSpec(name, { ttlSeconds: 10 }));
      await eventually('all 100 to expire', 300_000, async () => {
        const items = await statuses(scenario);
        return items.length === 100 && items.every((instance) => instance.status?.phase === 'Expired') ? true : undefined;
      });
      await scenario.converged('100 instances with ttl 10 s (from apply)', appliedAt, 60_000);
      const running = (await containersOf(scenario.docker, scenario.namespace)).length;
      assert.equal(running, 0);
      // Never removed before its time; how late at most is printed.
      let latest = 0;
      for (const instance of await statuses(scenario)) {
        const expires = Date.parse(instance.status?.expiresAt ?? '');
        const removed = instance.status?.conditions?.find((condition) => condition.type === 'Ready');
        assert.equal(removed?.reason, 'ContainerRemoved');
        // Ready stays True from running to removed (the instance is as asked), so its
        // lastTransitionTime keeps the start; Reconciling turns False (reason Expired)
        // when the controller sees the container gone.
        const settled = instance.status?.conditions?.find((condition) => condition.type === 'Reconciling');
        assert.deepEqual([settled?.status, settled?.reason], ['False', 'Expired']);
        const removedAt = Date.parse(settled?.lastTransitionTime ?? '');
        assert.ok(removedAt >= expires, `${instance.metadata.name} was removed at ${String(removedAt)}, not before it expired at ${String(expires)}`);
        latest = Math.max(latest, removedAt - expires);
      }
      console.log(`# ttl100: containers removed at most ${(latest / 1000).toFixed(0)} s after their expiresAt (second precision)`);
    });

    scenario.declareLogTest();
  });

  describe('retries run out', () => {
    const scenario = new Scenario('retry', 9, { CTFLEET_JOB_ATTEMPTS: '3', CTFLEET_JOB_BACKOFF_MS: '200' });
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('a worker whose Docker engine is unreachable fails the instance with the last reason after the attempts; it can still be deleted', async () => {
      scenario.start('controller');
      // Nothing listens on this port: every Docker call fails transiently.
      const worker = scenario.start('worker', { DOCKER_HOST: `tcp://127.0.0.1:${await freePort()}` });
      await scenario.apply(['nodocker'], () => webSpec('nodocker'));
      const failed = await scenario.instances.waitFor(scenario.namespace, 'nodocker', 'to fail', (instance) => instance.status?.phase === 'Failed', 60_000);
      assert.equal(failed.status?.reason, 'DockerUnavailable');
      assert.match(failed.status.message ?? '', /^DockerUnavailable: /);
      assert.ok(alive(worker), 'the worker keeps running without Docker');
      const deleted = await kubectl(['delete', 'challengeinstance', 'nodocker', '-n', scenario.namespace, '--wait=true', '--timeout=30s']);
      assert.equal(deleted.code, 0, deleted.stderr);
    });

    scenario.declareLogTest();
  });

  describe('graceful shutdown of a worker', () => {
    const scenario = new Scenario('drain', 10, { CTFLEET_SHUTDOWN_TIMEOUT_SECONDS: '1' });
    before(() => scenario.prepare());
    after(() => scenario.cleanup());

    test('SIGTERM hands the job in flight back, exits 0, and the next worker finishes it at once', async () => {
      scenario.start('controller');
      const first = scenario.start('worker');
      await scenario.apply(['slow'], () => webSpec('slow', { image: 'ctfleet-test/slow:1', env: [{ name: 'DELAY', value: '8' }] }));
      await eventually('the slow container to be created', 30_000, async () => ((await containersOf(scenario.docker, scenario.namespace)).length === 1 ? true : undefined));
      const stoppedAt = Date.now();
      assert.equal(await first.stop(), 0);
      const exitSeconds = (Date.now() - stoppedAt) / 1000;
      assert.ok(exitSeconds < 6, `the worker exited ${exitSeconds.toFixed(1)} s after SIGTERM`);
      const instance = await scenario.instances.get(scenario.namespace, 'slow');
      assert.ok(instance !== undefined && !isRunning(instance), 'it was not ready when the worker stopped');
      scenario.start('worker');
      // Without the hand-back the job would wait for its lock to expire (15 s).
      const ms = await scenario.converged('worker SIGTERM with a start in flight', stoppedAt, 60_000);
      assert.ok(ms < 15_000, `finished ${ms} ms after the SIGTERM`);
    });

    scenario.declareLogTest();
  });
});
