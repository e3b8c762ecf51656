import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import { RedisTeamSlots } from '../../src/adapters/redis/team-slots-store.ts';
import type { SlotRef, SlotRequest, SlotVerdict } from '../../src/domain/team-slots.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

// The platform API's team slots against the stack's Redis: the contract the API's
// cap relies on (test/e2e/api-cap.test.ts runs it through two API processes).
describe('RedisTeamSlots', () => {
  const prefix = `{ctfleet-it-slots-${uniqueSuffix()}}`;
  let redis: Redis;
  const request = (team: string, name: string, limit: number, listedAt: number, listed: string[] = []): SlotRequest => ({ namespace: 'ctf', team, name, limit, listedAt, listed });
  const kinds = (verdicts: SlotVerdict[]): string[] => verdicts.map((verdict) => verdict.kind);
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const slotOf = (verdict: SlotVerdict): SlotRef => {
    if (verdict.kind !== 'reserved') throw new Error(`expected a reservation, got ${JSON.stringify(verdict)}`);
    return verdict.slot;
  };

  before(() => {
    redis = createRedisConnection(stackConfig().redis, 'command');
  });
  after(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test('concurrent reservations for one team never take more slots than its limit, and its keys expire', async () => {
    const slots = new RedisTeamSlots(redis, prefix);
    const listedAt = await slots.now();
    const verdicts = await Promise.all(Array.from({ length: 20 }, (_, i) => slots.reserve(request('team-a', `web-${String(i)}`, 3, listedAt))));
    assert.equal(kinds(verdicts).filter((kind) => kind === 'reserved').length, 3);
    assert.ok(verdicts.every((verdict) => verdict.kind !== 'full' || verdict.held === 3));
    assert.equal((await slots.reserve(request('team-b', 'web-0', 3, listedAt))).kind, 'reserved', 'another team has slots of its own');
    const [reservations] = RedisTeamSlots.keysFor(prefix, 'ctf', 'team-a');
    const ttl = await redis.pttl(reservations);
    assert.ok(ttl > 0 && ttl <= 120_000, `the reservations expire (pttl ${String(ttl)})`);
  });

  test('an instance the listing shows, or a name reserved already, is counted once and admitted again', async () => {
    const slots = new RedisTeamSlots(redis, prefix);
    const listedAt = await slots.now();
    const listed = ['a', 'b'];
    const reserve = (name: string): Promise<SlotVerdict> => slots.reserve(request('team-c', name, 3, listedAt, listed));
    assert.deepEqual(await reserve('a').then((verdict) => [verdict.kind, 'held' in verdict ? verdict.held : -1]), ['reserved', 2]);
    assert.deepEqual(await reserve('c').then((verdict) => [verdict.kind, 'held' in verdict ? verdict.held : -1]), ['reserved', 3]);
    assert.deepEqual(await reserve('d'), { kind: 'full', held: 3 });
    assert.equal((await reserve('c')).kind, 'reserved', 'a second request for the same instance');
  });

  test('a released reservation frees its slot at once; one never confirmed or released lapses after its ttl', async () => {
    const slots = new RedisTeamSlots(redis, prefix, { reservationTtlMs: 300, listingMaxAgeMs: 10_000 });
    const first = slotOf(await slots.reserve(request('team-d', 'x', 1, await slots.now())));
    assert.equal((await slots.reserve(request('team-d', 'y', 1, await slots.now()))).kind, 'full');
    await slots.release(first);
    assert.equal((await slots.reserve(request('team-d', 'y', 1, await slots.now()))).kind, 'reserved', 'released');
    assert.equal((await slots.reserve(request('team-d', 'z', 1, await slots.now()))).kind, 'full');
    await sleep(400);
    assert.equal((await slots.reserve(request('team-d', 'z', 1, await slots.now()))).kind, 'reserved', 'y lapsed');
  });

  test('a confirmed create holds its slot against listings that began before it; later listings are the truth (a deleted instance frees it)', async () => {
    const slots = new RedisTeamSlots(redis, prefix);
    const before = await slots.now();
    await slots.confirm(slotOf(await slots.reserve(request('team-e', 'x', 1, before))));
    assert.deepEqual(await slots.reserve(request('team-e', 'y', 1, before)), { kind: 'full', held: 1 }, 'a listing from before the create may miss it');
    await sleep(5);
    const later = await slots.now();
    assert.deepEqual(await slots.reserve(request('team-e', 'y', 1, later, ['x'])), { kind: 'full', held: 1 }, 'x exists');
    assert.equal((await slots.reserve(request('team-e', 'y', 1, later, []))).kind, 'reserved', 'x was deleted: its slot is free');
  });

  test('a listing older than the store accepts is answered stale', async () => {
    const slots = new RedisTeamSlots(redis, prefix, { reservationTtlMs: 1_000, listingMaxAgeMs: 50 });
    const old = await slots.now();
    await sleep(100);
    assert.deepEqual(await slots.reserve(request('team-f', 'x', 3, old)), { kind: 'stale' });
    assert.equal((await slots.reserve(request('team-f', 'x', 3, await slots.now()))).kind, 'reserved');
  });
});
