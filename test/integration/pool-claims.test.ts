import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisPoolClaimStore } from '../../src/adapters/redis/pool-claim-store.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import type { ClaimRecord } from '../../src/domain/pool.ts';
import { ClaimBook } from '../../src/worker/claim-book.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

// The claim store against the stack's Redis: the arbiter that keeps a pool
// container to one instance when two workers (two connections, two books, as two
// processes have) race for the same containers (docs/pools.md).
describe('RedisPoolClaimStore', () => {
  const prefix = `{ctfleet-it-claims-${uniqueSuffix()}}`;
  let first: Redis;
  let second: Redis;
  const record = (uid: string): ClaimRecord => ({ uid, namespace: 'ctf', name: `web-${uid}`, team: `team-${uid}`, generation: 1, specHash: '0123456789abcdef', claimedAt: Date.now() });

  before(() => {
    first = createRedisConnection(stackConfig().redis, 'command');
    second = createRedisConnection(stackConfig().redis, 'command');
  });
  after(async () => {
    const keys = await first.keys(`${prefix}:*`);
    if (keys.length > 0) await first.del(...keys);
    first.disconnect();
    second.disconnect();
  });

  test('two workers racing for ten containers with forty claims: each container claimed exactly once', async () => {
    const books = [new ClaimBook(new RedisPoolClaimStore(first, prefix), 'node-a'), new ClaimBook(new RedisPoolClaimStore(second, prefix), 'node-a')];
    const containers = Array.from({ length: 10 }, (_, i) => `container-${String(i)}`);
    // Every container asked for by four instances, two through each worker, all at once.
    const attempts = containers.flatMap((id) => [0, 1, 2, 3].map((n) => ({ id, book: books[n % 2] as ClaimBook, uid: `${id}-u${String(n)}` })));
    const won = await Promise.all(attempts.map(async ({ id, book, uid }) => ({ id, uid, won: await book.claim(id, record(uid)) })));
    for (const id of containers) {
      const winners = won.filter((attempt) => attempt.id === id && attempt.won);
      assert.equal(winners.length, 1, `${id} was claimed ${String(winners.length)} times`);
      const stored = await new RedisPoolClaimStore(first, prefix).load('node-a');
      assert.equal(stored.get(id)?.uid, winners[0]?.uid, 'the stored claim is the winner\'s');
    }
  });

  test('a worker restarting reads its claims back; forgetting removes them; other nodes are apart', async () => {
    const store = new RedisPoolClaimStore(first, prefix);
    assert.equal(await store.claim('node-b', 'c1', record('x')), true);
    assert.equal(await store.claim('node-c', 'c1', record('y')), true, 'another node\'s containers are another hash');
    const restarted = new ClaimBook(new RedisPoolClaimStore(second, prefix), 'node-b');
    await restarted.load();
    assert.equal(restarted.get('c1')?.uid, 'x');
    await restarted.forget(['c1']);
    assert.equal((await store.load('node-b')).has('c1'), false);
    assert.equal((await store.load('node-c')).get('c1')?.uid, 'y');
  });

  test('a record this version cannot read is left out, and still blocks a claim of its container', async () => {
    const store = new RedisPoolClaimStore(first, prefix);
    await first.hset(RedisPoolClaimStore.keyFor(prefix, 'node-d'), 'odd', '{"uid":', 'older', JSON.stringify({ uid: 'u' }));
    assert.deepEqual([...(await store.load('node-d')).keys()], []);
    assert.equal(await store.claim('node-d', 'odd', record('z')), false);
  });
});
