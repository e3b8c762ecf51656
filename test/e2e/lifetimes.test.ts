import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { containersOf, CtfleetProcess, isRunning, kubectl, manifest, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

const suffix = uniqueSuffix();
const NS = `e2e-ttl-${suffix}`;
const MAX_LIFETIME = 20;

const seconds = (from: string | undefined, to: string | undefined): number => (Date.parse(to ?? '') - Date.parse(from ?? '')) / 1000;

describe('instance lifetimes', () => {
  let ctfleet: CtfleetProcess;
  let instances: Instances;

  before(async () => {
    ({ instances } = await prepareNamespace(NS));
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: `{ctfleet-e2e-${suffix}}`,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-ttl-node',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '26800-26899',
        CTFLEET_MAX_LIFETIME_SECONDS: String(MAX_LIFETIME),
      },
      `e2e-ttl-${suffix}`,
    );
  });

  after(async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('at the end of ttlSeconds the container is removed and the resource stays, Expired', async () => {
    await kubectl(['apply', '-f', '-'], manifest(NS, 'short', webSpec('team-1', { ttlSeconds: 5 })));
    const running = await instances.waitFor(NS, 'short', 'to run', isRunning);
    assert.equal(seconds(running.status?.startedAt, running.status?.expiresAt), 5);
    const expired = await instances.waitFor(NS, 'short', 'to expire', (i) => i.status?.phase === 'Expired' && i.status.containerId === undefined, 30_000);
    assert.equal(expired.status?.reason, 'LifetimeEnded');
    assert.equal(expired.status.expiresAt, running.status?.expiresAt);
    assert.ok(Date.now() >= Date.parse(expired.status.expiresAt ?? ''), 'not removed before its time');
    const left = (await containersOf(createDockerClient(stackConfig().docker), NS)).filter((c) => c.Labels['ctfleet.io/name'] === 'short');
    assert.deepEqual(left, []);
    const events = await kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=short', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    assert.match(events.stdout, /^Expired$/m);
  });

  test('a longer ttlSeconds given before the end extends the lifetime of the same container', async () => {
    await kubectl(['apply', '-f', '-'], manifest(NS, 'extended', webSpec('team-2', { ttlSeconds: 6 })));
    const running = await instances.waitFor(NS, 'extended', 'to run', isRunning);
    await kubectl(['patch', 'chi', 'extended', '-n', NS, '--type=merge', '-p', '{"spec":{"ttlSeconds":15}}']);
    const extended = await instances.waitFor(NS, 'extended', 'to take the new lifetime', (i) => isRunning(i) && seconds(i.status?.startedAt, i.status?.expiresAt) === 15);
    assert.equal(extended.status?.containerId, running.status?.containerId, 'the container was kept');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(running.status?.expiresAt ?? '') + 2_000 - Date.now())));
    const later = await instances.get(NS, 'extended');
    assert.equal(later?.status?.phase, 'Running', 'still running after the first lifetime would have ended');
  });

  test('lifetimes are capped by CTFLEET_MAX_LIFETIME_SECONDS', async () => {
    await kubectl(['apply', '-f', '-'], manifest(NS, 'greedy', webSpec('team-3', { ttlSeconds: 86_400 })));
    const running = await instances.waitFor(NS, 'greedy', 'to run', isRunning);
    assert.equal(seconds(running.status?.startedAt, running.status?.expiresAt), MAX_LIFETIME);
  });

  test('an instance without ttlSeconds still ends at CTFLEET_MAX_LIFETIME_SECONDS: its container is removed and it is Expired', async () => {
    const spec = webSpec('team-4');
    assert.equal(spec.ttlSeconds, undefined);
    await kubectl(['apply', '-f', '-'], manifest(NS, 'forever', spec));
    const running = await instances.waitFor(NS, 'forever', 'to run', isRunning);
    assert.equal(seconds(running.status?.startedAt, running.status?.expiresAt), MAX_LIFETIME);
    const expired = await instances.waitFor(NS, 'forever', 'to expire', (i) => i.status?.phase === 'Expired' && i.status.containerId === undefined, (MAX_LIFETIME + 20) * 1000);
    assert.equal(expired.status?.reason, 'LifetimeEnded');
    assert.equal(expired.status.expiresAt, running.status?.expiresAt);
    assert.ok(Date.now() >= Date.parse(expired.status.expiresAt ?? ''), 'not removed before its time');
    const left = (await containersOf(createDockerClient(stackConfig().docker), NS)).filter((c) => c.Labels['ctfleet.io/name'] === 'forever');
    assert.deepEqual(left, []);
  });

  // A test, not an assertion in `after`: node:test does not count a failing hook.
  test('SIGTERM stops ctfleet cleanly (exit 0) once its instances are released', async () => {
    const deleted = await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await ctfleet.stop(), 0);
  });
});
