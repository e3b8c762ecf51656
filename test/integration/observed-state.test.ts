import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { KubeInstanceApi } from '../../src/adapters/kubernetes/instance-api.ts';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { RedisObservedStateStore } from '../../src/adapters/redis/observed-state-store.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import type { ContainerInfo } from '../../src/domain/ports.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { OBSERVED_REFRESH_MS } from '../../src/domain/ports.ts';
import { StatusReporter } from '../../src/worker/status-reporter.ts';
import { testInstance } from '../support/fixtures.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

// The observed state a sweep refreshes, against the stack's real Redis: a
// healthy instance's hash is written once, not at every sweep, and written again
// when Redis lost its keys or the refresh interval ran out.
const config = stackConfig();
const prefix = `{ctfleet-it-observed-${uniqueSuffix()}}`;
const NODE = 'node-observed';

describe('a sweep\'s observed-state refreshes', () => {
  let redis: Redis;
  let now = Date.parse('2026-11-30T09:00:00Z');
  let reporter: StatusReporter;
  const instance = testInstance({ generation: 1 });
  const container: ContainerInfo = { id: 'c0ffee', name: 'ctf-x', running: true, exitCode: undefined, labels: {}, hostPorts: [28_001], createdAt: Date.parse('2026-11-30T08:00:00Z') };
  const key = RedisObservedStateStore.keyFor(prefix, instance.metadata.uid);

  before(() => {
    redis = createRedisConnection(config.redis, 'command');
    reporter = new StatusReporter({ api: new KubeInstanceApi(loadKubeConfig(config.kubeconfigPath)), observed: new RedisObservedStateStore(redis, prefix), node: NODE, clock: { now: () => now }, logger: createLogger('test', 'silent') });
  });

  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  /** Whether a refresh wrote the hash: it is deleted first, so only a write brings it back. */
  const writes = async (refresh: () => Promise<void>): Promise<boolean> => {
    await redis.del(key);
    await refresh();
    return (await redis.exists(key)) === 1;
  };

  test('written at the first sweep, not at the next ones while nothing changed', async () => {
    await reporter.checkStore();
    assert.equal(await writes(() => reporter.healthy(instance, container)), true);
    const stored = await redis.hgetall(key);
    assert.equal(stored.state, 'running');
    assert.equal(stored.containerId, 'c0ffee');
    assert.equal(stored.node, NODE);
    now += 30_000;
    await reporter.checkStore();
    assert.equal(await writes(() => reporter.healthy(instance, container)), false, 'the same state within the refresh interval is not written');
  });

  test('written again when it changed, when Redis lost its keys, and once the interval ran out', async () => {
    assert.equal(await writes(() => reporter.healthy(instance, { ...container, id: 'decaf' })), true, 'another container');
    await redis.del(`${prefix}:observed-marker:${NODE}`);
    await reporter.checkStore();
    assert.equal(await writes(() => reporter.healthy(instance, { ...container, id: 'decaf' })), true, 'the node\'s marker was gone: Redis lost its keys');
    await reporter.checkStore();
    assert.equal(await writes(() => reporter.healthy(instance, { ...container, id: 'decaf' })), false);
    now += OBSERVED_REFRESH_MS;
    assert.equal(await writes(() => reporter.healthy(instance, { ...container, id: 'decaf' })), true, 'refreshed within a day, its expiry');
  });

  test('an instance gone from the node is forgotten, so it is written in full if it comes back', async () => {
    reporter.forgetOthers(new Set());
    assert.equal(await writes(() => reporter.healthy(instance, { ...container, id: 'decaf' })), true);
  });
});
