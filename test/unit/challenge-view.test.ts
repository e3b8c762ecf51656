import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ChallengeInstance, Phase } from '../../src/domain/challenge-instance.ts';
import type { Challenge } from '../../src/domain/challenge.ts';
import { flagSummary, PHASES, summariseChallenges, type ChallengeView } from '../../src/domain/challenge-view.ts';
import { phaseOf, viewOf, type InstanceView } from '../../src/domain/instance-view.ts';

function challenge(namespace: string, name: string, extra: Partial<Challenge['spec']> = {}, metadata: Partial<Challenge['metadata']> = {}): Challenge {
  return {
    metadata: { namespace, name, uid: `uid-${name}`, generation: 1, creationTimestamp: '2026-11-21T10:00:00Z', ...metadata },
    spec: { image: `registry.example/ctf/${name}:1`, imagePullPolicy: 'IfNotPresent', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], ...extra },
  };
}

function instance(namespace: string, challengeName: string, phase: Phase, deleting = false): InstanceView {
  return {
    team: 'team-1', challenge: challengeName, namespace, name: `${challengeName}-team-1`, phase, reason: '', message: '', ready: phase === 'Running',
    endpoints: [], node: null, ttlSeconds: null, expiresAt: null, createdAt: null, deleting,
  };
}

const counts = (view: ChallengeView | undefined): Partial<Record<Phase, number>> =>
  Object.fromEntries(Object.entries(view?.instances.phases ?? {}).filter(([, count]) => count > 0));

describe('viewOf and phaseOf', () => {
  test("an instance of a Challenge shows the Challenge it names; a direct one its own spec.challenge", () => {
    const stored = { metadata: { namespace: 'ctf', name: 'web-101-team-7', uid: 'u', generation: 1 }, spec: { team: 'team-7', challengeRef: { name: 'web-101' }, desiredState: 'Running', priority: 0 } } as unknown as ChallengeInstance;
    assert.equal(viewOf(stored).challenge, 'web-101');
    const direct = { metadata: { namespace: 'ctf', name: 'x', uid: 'u', generation: 1 }, spec: { team: 'team-7', challenge: 'pwn-300', image: 'i', imagePullPolicy: 'Never', ports: [], desiredState: 'Running', priority: 0 } } as ChallengeInstance;
    assert.equal(viewOf(direct).challenge, 'pwn-300');
  });

  test('an instance being deleted is Terminating, whatever its last phase', () => {
    assert.equal(phaseOf({ phase: 'Running', deleting: true }), 'Terminating');
    assert.equal(phaseOf({ phase: 'Failed', deleting: false }), 'Failed');
  });
});

describe('summariseChallenges', () => {
  test('counts the instances of each Challenge per phase, in its own namespace only', () => {
    const views = summariseChallenges(
      [challenge('ctf', 'web-101'), challenge('ctf', 'pwn-300'), challenge('other', 'web-101')],
      [
        instance('ctf', 'web-101', 'Running'), instance('ctf', 'web-101', 'Running'), instance('ctf', 'web-101', 'Failed'),
        instance('ctf', 'web-101', 'Running', true), instance('ctf', 'pwn-300', 'Pending'), instance('other', 'web-101', 'Expired'),
      ],
    );
    assert.deepEqual(views.map((view) => [view.namespace, view.name, view.instances.total, view.instances.running]), [
      ['ctf', 'pwn-300', 1, 0],
      ['ctf', 'web-101', 4, 2],
      ['other', 'web-101', 1, 0],
    ]);
    assert.deepEqual(counts(views[1]), { Running: 2, Failed: 1, Terminating: 1 });
    assert.deepEqual(counts(views[2]), { Expired: 1 });
    assert.deepEqual(Object.keys(views[0]?.instances.phases ?? {}), [...PHASES], 'every phase, zero included, in lifecycle order');
  });

  test("a pooled Challenge's view has its size and the idle count its status reports (0 before any report)", () => {
    const [reported, unreported, plain] = summariseChallenges([
      { ...challenge('ctf', 'a-web', { pool: { size: 50, perNode: 10 } }), status: { pool: { idle: 12, target: 20 } } },
      challenge('ctf', 'b-web', { pool: { size: 5 } }),
      challenge('ctf', 'c-web'),
    ], []);
    assert.deepEqual([reported?.pool, unreported?.pool, plain?.pool], [{ size: 50, idle: 12 }, { size: 5, idle: 0 }, null]);
  });

  test('a Challenge without instances is listed with zero counts, and sorted in natural order', () => {
    const views = summariseChallenges([challenge('ctf', 'web-12'), challenge('ctf', 'web-7')], []);
    assert.deepEqual(views.map((view) => view.name), ['web-7', 'web-12']);
    assert.deepEqual(views.map((view) => [view.instances.total, counts(view)]), [[0, {}], [0, {}]]);
  });

  test('a name instances use without a Challenge gets a row of its own, marked undeclared', () => {
    const [ghost] = summariseChallenges([], [instance('ctf', 'ghost', 'Failed'), instance('ctf', 'ghost', 'Failed')]);
    assert.deepEqual(ghost, {
      namespace: 'ctf', name: 'ghost', declared: false, image: null, flag: null, generation: null, createdAt: null, deleting: false, pool: null,
      instances: { total: 2, running: 0, phases: { ...Object.fromEntries(PHASES.map((phase) => [phase, 0])), Failed: 2 } as Record<Phase, number> },
    });
  });

  test("shows the image, generation, age, deletion and the flag's kind and delivery, never its format or Secret", () => {
    const flagged = challenge('ctf', 'web-101', {
      env: [{ name: 'SECRET', value: 'organiser-secret' }],
      flag: { kind: 'Static', format: 'CTF{%s}', delivery: 'File', env: 'FLAG', path: '/flag/flag.txt', static: { secretKeyRef: { name: 'web-101-flag', key: 'flag' } } },
    }, { generation: 3, deletionTimestamp: '2026-11-21T11:00:00Z' });
    const [view] = summariseChallenges([flagged], []);
    assert.ok(view !== undefined);
    assert.equal(view.image, 'registry.example/ctf/web-101:1');
    assert.deepEqual([view.generation, view.createdAt, view.deleting], [3, '2026-11-21T10:00:00Z', true]);
    assert.deepEqual(view.flag, { kind: 'Static', delivery: 'File' });
    const text = JSON.stringify(view);
    for (const secret of ['organiser-secret', 'CTF{', 'web-101-flag', 'SECRET']) assert.ok(!text.includes(secret), `${secret} is not in the view`);
    assert.equal(flagSummary(view.flag), 'Static/File');
    assert.equal(flagSummary(null), '-');
  });
});
