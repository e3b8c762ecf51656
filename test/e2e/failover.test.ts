import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ARTIFACTS, CtfleetProcess, isRunning, kubectl, manifest, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import Docker from 'dockerode';
import { waitConverged } from '../support/convergence.ts';
import { eventually, uniqueSuffix } from '../support/stack.ts';

// Two controllers and one worker of one deployment: only the Lease holder
// reconciles; when it dies the standby takes over and finishes the work.
const suffix = uniqueSuffix();
const NS = `e2e-ha-${suffix}`;
const PREFIX = `{ctfleet-e2e-ha-${suffix}}`;
const LEASE = `ctfleet-e2e-ha-${suffix}-controller`;

async function leaseHolder(): Promise<string> {
  const result = await kubectl(['get', 'lease', LEASE, '-n', 'default', '-o', 'jsonpath={.spec.holderIdentity}']);
  return result.code === 0 ? result.stdout.trim() : '';
}

describe('controller failover', () => {
  const env = { CTFLEET_REDIS_PREFIX: PREFIX, CTFLEET_NAMESPACES: NS, CTFLEET_NODE_NAME: 'e2e-ha-node', CTFLEET_BIND_ADDRESS: '127.0.0.1', CTFLEET_PORT_RANGE: '26700-26799' };
  const controllers: CtfleetProcess[] = [];
  let worker: CtfleetProcess;
  let instances: Instances;
  let kubeConfig: KubeConfig;

  before(async () => {
    ({ instances, kubeConfig } = await prepareNamespace(NS));
    worker = new CtfleetProcess('worker', env, `e2e-ha-worker-${suffix}`);
    controllers.push(new CtfleetProcess('controller', env, `e2e-ha-controller-a-${suffix}`));
    controllers.push(new CtfleetProcess('controller', env, `e2e-ha-controller-b-${suffix}`));
  });

  after(async () => {
    // Both controllers are gone by now; one more releases the finalizers on delete.
    const cleaner = new CtfleetProcess('controller', env, `e2e-ha-cleaner-${suffix}`);
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    for (const process of [...controllers, cleaner, worker]) await process.stop();
    await kubectl(['delete', 'lease', LEASE, '-n', 'default', '--ignore-not-found']);
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('the standby takes over within 15 s of the leader being killed while 20 instances are created, and finishes them', async () => {
    const holder = await eventually('a leader', 20_000, async () => ((await leaseHolder()) === '' ? undefined : leaseHolder()));
    const leader = controllers.find((c) => holder.endsWith(`-${String(c.child.pid)}`));
    const standby = controllers.find((c) => c !== leader);
    assert.ok(leader && standby, `the holder ${holder} is one of the two controllers`);

    const names = Array.from({ length: 20 }, (_, i) => `ha-${i}`);
    await kubectl(['apply', '-f', '-'], names.map((name, i) => manifest(NS, name, webSpec(`team-${i}`))).join('\n'));
    leader.child.kill('SIGKILL');
    const killedAt = Date.now();

    const newHolder = await eventually('the standby to hold the lease', 20_000, async () => {
      const current = await leaseHolder();
      return current.endsWith(`-${String(standby.child.pid)}`) ? current : undefined;
    });
    const takeoverSeconds = (Date.now() - killedAt) / 1000;
    assert.ok(takeoverSeconds <= 15, `takeover took ${takeoverSeconds.toFixed(1)} s`);
    console.log(`# standby ${newHolder} took over ${takeoverSeconds.toFixed(1)} s after the leader was killed`);

    await Promise.all(names.map((name) => instances.waitFor(NS, name, 'to run', isRunning, 90_000)));
    // Fault-injection test 5 ends with the same convergence checks as the others.
    const ms = await waitConverged(kubeConfig, new Docker(), NS, killedAt, 30_000);
    console.log(`# failover: leader killed during 20 creates: converged in ${(ms / 1000).toFixed(1)} s`);
    appendFileSync(join(ARTIFACTS, 'convergence.txt'), `${new Date().toISOString()} failover: leader killed during 20 creates: converged in ${(ms / 1000).toFixed(1)} s\n`);
  });

  test('a leader stopped with SIGTERM releases its lease and exits 0', async () => {
    const standby = controllers.find((c) => c.child.exitCode === null && c.child.signalCode === null);
    assert.ok(standby);
    assert.equal(await standby.stop(), 0);
    assert.equal(await leaseHolder(), '', 'the lease was released, so a standby need not wait for it to expire');
  });
});
