import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decideLease, DEFAULT_ELECTION_TIMING, microTime } from '../../src/controller/leader-election.ts';
import type { LeaseRecord } from '../../src/domain/ports.ts';
import { leaseNameFor } from '../../src/config/config.ts';

const NOW = new Date('2026-11-21T12:00:00.000Z');
const held = (holder: string): LeaseRecord => ({
  holderIdentity: holder,
  leaseDurationSeconds: 10,
  acquireTime: '2026-11-21T11:00:00.000000Z',
  renewTime: '2026-11-21T11:59:59.000000Z',
  leaseTransitions: 3,
  resourceVersion: '42',
});

describe('decideLease', () => {
  test('no lease yet: create it, held by us', () => {
    const decision = decideLease(undefined, 'me', NOW.getTime(), NOW, DEFAULT_ELECTION_TIMING);
    assert.equal(decision.write, 'create');
    assert.equal(decision.record?.holderIdentity, 'me');
    assert.equal(decision.record.leaseTransitions, 0);
  });

  test('our own lease: renew it, keeping its version for the compare-and-swap', () => {
    const decision = decideLease(held('me'), 'me', NOW.getTime(), NOW, DEFAULT_ELECTION_TIMING);
    assert.equal(decision.write, 'update');
    assert.equal(decision.record?.renewTime, '2026-11-21T12:00:00.000000Z');
    assert.equal(decision.record.resourceVersion, '42');
    assert.equal(decision.record.leaseTransitions, 3);
  });

  test('another holder that renewed within the lease duration (as we observed it) keeps it', () => {
    assert.equal(decideLease(held('other'), 'me', NOW.getTime() - 9_000, NOW, DEFAULT_ELECTION_TIMING).write, 'none');
  });

  test('another holder silent for longer than the lease duration loses it to us', () => {
    const decision = decideLease(held('other'), 'me', NOW.getTime() - 11_000, NOW, DEFAULT_ELECTION_TIMING);
    assert.equal(decision.write, 'update');
    assert.equal(decision.record?.holderIdentity, 'me');
    assert.equal(decision.record.leaseTransitions, 4);
  });

  test('a released lease (empty holder) is taken at once', () => {
    assert.equal(decideLease({ ...held(''), holderIdentity: '' }, 'me', NOW.getTime(), NOW, DEFAULT_ELECTION_TIMING).write, 'update');
  });

  test('expiry is judged by our own observation, not the holder\u2019s clock', () => {
    // The holder's renewTime is an hour in the past (its clock is behind), but we
    // saw the record change a moment ago: it is alive.
    const skewed = { ...held('other'), renewTime: '2026-11-21T11:00:00.000000Z' };
    assert.equal(decideLease(skewed, 'me', NOW.getTime() - 1_000, NOW, DEFAULT_ELECTION_TIMING).write, 'none');
  });
});

describe('microTime', () => {
  test('writes exactly six fractional digits, as the API server parses MicroTime', () => {
    assert.equal(microTime(new Date('2026-11-21T12:00:00.123Z')), '2026-11-21T12:00:00.123000Z');
  });
});

describe('leaseNameFor', () => {
  test('one lease per deployment, named after its Redis prefix', () => {
    assert.equal(leaseNameFor('{ctfleet}'), 'ctfleet-controller');
    assert.equal(leaseNameFor('{ctfleet-e2e-ab12}'), 'ctfleet-e2e-ab12-controller');
    assert.equal(leaseNameFor('{CTF_Prod}'), 'ctf-prod-controller');
  });
});
