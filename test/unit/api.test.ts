import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimiter } from '../../src/api/rate-limit.ts';
import { instanceName } from '../../src/api/routes.ts';
import { createWithinCap, holdsSlot } from '../../src/api/team-cap.ts';
import { authenticate, parseTokens } from '../../src/api/tokens.ts';
import type { ChallengeInstance } from '../../src/domain/challenge-instance.ts';
import { conflict, permanent, transient } from '../../src/domain/errors.ts';
import type { SlotRef, SlotRequest, SlotVerdict, TeamSlots } from '../../src/domain/team-slots.ts';
import { createLogger } from '../../src/observability/logger.ts';

describe('API tokens', () => {
  const tokens = parseTokens('# comment\n\nplatform:admin:0123456789abcdef-admin\nboard:read:0123456789abcdef-read\n', 'tokens.txt');

  test('parses name:role:token lines and finds the presented token', () => {
    assert.deepEqual(tokens.map((token) => [token.name, token.role]), [['platform', 'admin'], ['board', 'read']]);
    assert.equal(authenticate(tokens, 'Bearer 0123456789abcdef-read')?.name, 'board');
    assert.equal(authenticate(tokens, 'bearer 0123456789abcdef-admin')?.name, 'platform');
  });

  test('refuses missing, malformed and unknown credentials', () => {
    for (const header of [undefined, '', 'Basic abc', 'Bearer', 'Bearer 0123456789abcdef-admi', 'Bearer 0123456789abcdef-adminX']) {
      assert.equal(authenticate(tokens, header), undefined, String(header));
    }
  });

  test('bad lines are refused naming the line and the rule', () => {
    assert.throws(() => parseTokens('ok:admin:0123456789abcdef\nBad Name:admin:0123456789abcdef', 'f'), /^Error: f line 2: the name must be a DNS label/);
    assert.throws(() => parseTokens('a:owner:0123456789abcdef', 'f'), /f line 1: the role must be admin or read/);
    assert.throws(() => parseTokens('a:read:short', 'f'), /f line 1: the token must be at least 16 characters/);
    assert.throws(() => parseTokens('# nothing\n', 'f'), /f: no tokens/);
  });
});

describe('RateLimiter', () => {
  test('allows a burst of perMinute, then refills at perMinute per minute, per key', () => {
    const limiter = new RateLimiter(3);
    for (let i = 0; i < 3; i += 1) assert.deepEqual(limiter.take('team-a', 0), { ok: true });
    assert.deepEqual(limiter.take('team-a', 0), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(limiter.take('team-b', 0), { ok: true }, 'another team has its own bucket');
    assert.deepEqual(limiter.take('team-a', 20_000), { ok: true }, 'one token back after 20 s');
    assert.equal(limiter.take('team-a', 20_000).ok, false);
  });
});

describe('instanceName', () => {
  test('is challenge-team, and stays a DNS label (≤ 63) with a hash when long', () => {
    assert.equal(instanceName('team-7', 'web-101'), 'web-101-team-7');
    const long = instanceName('t'.repeat(63), 'c'.repeat(63));
    assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
    assert.notEqual(long, instanceName('t'.repeat(62), 'c'.repeat(63)));
  });
});

/** Team slots in memory, counted as the Redis store counts them (without its clock). */
class MemorySlots implements TeamSlots {
  readonly reserved = new Map<string, string>();
  readonly confirmed = new Set<string>();
  staleAnswers = 0;
  private tokens = 0;

  now(): Promise<number> {
    return Promise.resolve(0);
  }

  reserve(request: SlotRequest): Promise<SlotVerdict> {
    if (this.staleAnswers > 0) {
      this.staleAnswers -= 1;
      return Promise.resolve({ kind: 'stale' });
    }
    const held = new Set([...request.listed, ...this.reserved.values(), ...this.confirmed]);
    if (!held.has(request.name) && held.size >= request.limit) return Promise.resolve({ kind: 'full', held: held.size });
    this.tokens += 1;
    const slot = { namespace: request.namespace, team: request.team, name: request.name, token: String(this.tokens) };
    this.reserved.set(slot.token, slot.name);
    return Promise.resolve({ kind: 'reserved', held: held.size + (held.has(request.name) ? 0 : 1), slot });
  }

  confirm(slot: SlotRef): Promise<void> {
    this.reserved.delete(slot.token);
    this.confirmed.add(slot.name);
    return Promise.resolve();
  }

  release(slot: SlotRef): Promise<void> {
    this.reserved.delete(slot.token);
    return Promise.resolve();
  }

  held(): string[] {
    return [...new Set([...this.reserved.values(), ...this.confirmed])].sort();
  }
}

const instance = (name: string, extra: { deleting?: boolean; phase?: 'Running' | 'Expired' } = {}): ChallengeInstance =>
  ({
    metadata: { namespace: 'ctf', name, uid: `uid-${name}`, generation: 1, ...(extra.deleting === true ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}) },
    spec: { team: 'team-a', challenge: name },
    ...(extra.phase === undefined ? {} : { status: { phase: extra.phase } }),
  }) as ChallengeInstance;

describe('createWithinCap', () => {
  const logger = createLogger('test', 'silent');
  const request = { namespace: 'ctf', team: 'team-a', name: 'new', limit: 2 };

  test('instances being deleted or expired hold no slot; every other one does', () => {
    assert.deepEqual([instance('a'), instance('b', { deleting: true }), instance('c', { phase: 'Expired' }), instance('d', { phase: 'Running' })].filter(holdsSlot).map((item) => item.metadata.name), ['a', 'd']);
  });

  const outcomes: [string, () => Promise<string>, { rejects?: RegExp; held: string[] }][] = [
    ['a create that succeeds keeps its slot', () => Promise.resolve('made'), { held: ['new'] }],
    ['a create the API server refuses frees its slot at once', () => Promise.reject(permanent('Invalid', 'spec.resources.cpu: must be a quantity')), { rejects: /cpu/, held: [] }],
    ['a create that lost a race with a deletion frees its slot', () => Promise.reject(conflict('Conflict', 'already exists')), { rejects: /already exists/, held: [] }],
    ['a create whose outcome is unknown keeps its reservation until it lapses (the instance may exist)', () => Promise.reject(transient('ApiUnreachable', 'socket hang up')), { rejects: /socket hang up/, held: ['new'] }],
  ];
  for (const [name, create, expected] of outcomes) {
    test(name, async () => {
      const slots = new MemorySlots();
      const deps = { slots, list: () => Promise.resolve([instance('a')]), logger };
      if (expected.rejects === undefined) assert.deepEqual(await createWithinCap(deps, request, create), { admitted: true, value: 'made' });
      else await assert.rejects(createWithinCap(deps, request, create), expected.rejects);
      assert.deepEqual(slots.held(), expected.held);
    });
  }

  test('a team at its limit is refused without a create, counting the listing and the reservations of other requests', async () => {
    const slots = new MemorySlots();
    const deps = { slots, list: () => Promise.resolve([instance('a'), instance('gone', { deleting: true })]), logger };
    // Another request's create of b is in flight: its reservation counts.
    assert.equal((await slots.reserve({ ...request, name: 'b', listedAt: 0, listed: ['a'] })).kind, 'reserved');
    let created = false;
    const refused = await createWithinCap(deps, request, () => {
      created = true;
      return Promise.resolve('made');
    });
    assert.deepEqual(refused, { admitted: false, held: 2 });
    assert.equal(created, false);
  });

  test('a listing the store finds stale is taken again, a few times at most', async () => {
    const slots = new MemorySlots();
    const deps = { slots, list: () => Promise.resolve([]), logger };
    slots.staleAnswers = 2;
    assert.equal((await createWithinCap(deps, request, () => Promise.resolve('made'))).admitted, true);
    slots.staleAnswers = 3;
    await assert.rejects(createWithinCap(deps, { ...request, name: 'other' }, () => Promise.resolve('made')), (error: unknown) => (error as { retry?: string }).retry === 'transient');
  });
});
