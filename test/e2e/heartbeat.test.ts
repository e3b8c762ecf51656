import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import { CtfleetProcess } from '../support/ctfleet.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

const suffix = uniqueSuffix();
const PREFIX = `{ctfleet-e2e-hb-${suffix}}`;
const NODE = `e2e-hb-${suffix}`;
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('worker heartbeats', () => {
  const redis = createRedisConnection({ url: stackConfig().redis.url, prefix: PREFIX }, 'command');
  const key = `${PREFIX}:worker:${NODE}`;

  after(async () => {
    const keys = await redis.keys(`${PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test('a worker beats every 5 s with node, capacity, running count and version, and removes its entry on SIGTERM', async () => {
    const worker = new CtfleetProcess('worker', { CTFLEET_REDIS_PREFIX: PREFIX, CTFLEET_NODE_NAME: NODE, CTFLEET_WORKER_CONCURRENCY: '3' }, `e2e-hb-${suffix}`);
    const first = await eventually('the first heartbeat', 20_000, async () => {
      const beat = await redis.hgetall(key);
      return beat.node === undefined ? undefined : beat;
    });
    assert.equal(first.node, NODE);
    assert.equal(first.capacity, '3');
    assert.match(first.running ?? '', /^\d+$/);
    assert.equal(first.version, VERSION);
    const ttl = await redis.pttl(key);
    assert.ok(ttl > 0 && ttl <= 15_000, `the entry expires unless renewed (pttl ${ttl})`);
    assert.ok((await redis.zscore(`${PREFIX}:workers`, NODE)) !== null, 'the node is listed among the workers');

    const renewed = await eventually('a later heartbeat', 12_000, async () => {
      const beat = await redis.hgetall(key);
      return beat.beatAt !== undefined && beat.beatAt !== first.beatAt ? beat : undefined;
    });
    assert.ok(Date.parse(renewed.beatAt ?? '') > Date.parse(first.beatAt ?? ''));
    assert.equal(renewed.startedAt, first.startedAt);

    assert.equal(await worker.stop(), 0);
    assert.equal(await redis.exists(key), 0);
    assert.equal(await redis.zscore(`${PREFIX}:workers`, NODE), null);
  });
});
