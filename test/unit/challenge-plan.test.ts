import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CHALLENGE_REQUEUE, isSameChallengeStatus, planChallenge, tallyInstances, type ChallengeAction, type ChallengePlan } from '../../src/controller/challenge-plan.ts';
import type { ChallengeInstance, Phase } from '../../src/domain/challenge-instance.ts';
import type { Challenge } from '../../src/domain/challenge.ts';
import { CHALLENGE_FINALIZER, FINALIZER } from '../../src/domain/names.ts';

const NOW = new Date('2026-11-21T12:00:00.000Z');
/** When deletion of the deleting Challenges below began. */
const DELETED_AT = '2026-11-21T11:59:00Z';

function challenge(overrides: { finalizers?: string[]; deleting?: boolean; generation?: number; status?: Challenge['status'] } = {}): Challenge {
  const result: Challenge = {
    metadata: { namespace: 'ctf', name: 'web-101', uid: '9b7e0c1d-0000-4000-8000-000000000002', generation: overrides.generation ?? 1, finalizers: overrides.finalizers ?? [CHALLENGE_FINALIZER] },
    spec: { image: 'ctfleet-test/web:1', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
  };
  if (overrides.deleting === true) result.metadata.deletionTimestamp = DELETED_AT;
  if (overrides.status !== undefined) result.status = overrides.status;
  return result;
}

let serial = 0;
/** A ChallengeInstance naming `web-101` (or `challengeName`) in `namespace`, created at `created`. */
function instanceOf(phase: Phase | undefined, options: { created?: string; challengeName?: string; namespace?: string } = {}): ChallengeInstance {
  serial += 1;
  const result: ChallengeInstance = {
    metadata: { namespace: options.namespace ?? 'ctf', name: `web-101-team-${serial}`, uid: `uid-${serial}`, generation: 1, finalizers: [FINALIZER], creationTimestamp: options.created ?? '2026-11-21T11:00:00Z' },
    spec: { team: `team-${serial}`, challengeRef: { name: options.challengeName ?? 'web-101' }, desiredState: 'Running', priority: 0 } as unknown as ChallengeInstance['spec'],
  };
  if (phase !== undefined) result.status = { phase };
  return result;
}

/** Carries out a plan on the object as the reconciler and the API server would. */
function applyPlan(subject: Challenge, result: ChallengePlan): Challenge {
  let finalizers = subject.metadata.finalizers ?? [];
  for (const action of result.actions) {
    if (action.type === 'AddFinalizer') finalizers = [...finalizers, CHALLENGE_FINALIZER];
    if (action.type === 'RemoveFinalizer') finalizers = finalizers.filter((finalizer) => finalizer !== CHALLENGE_FINALIZER);
  }
  const applied: Challenge = { ...subject, metadata: { ...subject.metadata, finalizers } };
  if (result.status !== undefined) applied.status = result.status;
  return applied;
}

describe('planChallenge', () => {
  const cases: {
    name: string;
    subject: Challenge;
    instances: ChallengeInstance[];
    actions: ChallengeAction[];
    ready?: { status: string; reason: string; message: RegExp };
    counts?: { total: number; running: number };
    events?: string[];
    requeueAfterMs?: number;
  }[] = [
    {
      name: 'a new Challenge gets the finalizer first, and nothing else',
      subject: challenge({ finalizers: [] }),
      instances: [instanceOf('Running')],
      actions: [{ type: 'AddFinalizer' }],
      events: [],
    },
    {
      name: 'a Challenge without instances is Ready with zero counts',
      subject: challenge(),
      instances: [],
      actions: [],
      ready: { status: 'True', reason: 'Ready', message: /^0 instances, 0 running\.$/ },
      counts: { total: 0, running: 0 },
      events: [],
      requeueAfterMs: CHALLENGE_REQUEUE.settled,
    },
    {
      name: 'a Challenge counts the instances naming it and those Running',
      subject: challenge(),
      instances: [instanceOf('Running'), instanceOf('Running'), instanceOf('Scheduled'), instanceOf(undefined)],
      actions: [],
      ready: { status: 'True', reason: 'Ready', message: /^4 instances, 2 running\.$/ },
      counts: { total: 4, running: 2 },
      events: [],
    },
    {
      name: 'instances of another Challenge, or of a Challenge of the same name elsewhere, are not counted',
      subject: challenge(),
      instances: [instanceOf('Running'), instanceOf('Running', { challengeName: 'web-102' }), instanceOf('Running', { namespace: 'other' })],
      actions: [],
      ready: { status: 'True', reason: 'Ready', message: /^1 instance, 1 running\.$/ },
      counts: { total: 1, running: 1 },
    },
    {
      name: 'a Challenge being deleted with instances keeps its finalizer, is Ready False InstancesExist, and says so once with a Warning event',
      subject: challenge({ deleting: true }),
      instances: [instanceOf('Running'), instanceOf('Failed')],
      actions: [],
      ready: { status: 'False', reason: 'InstancesExist', message: /^Deletion waits: 2 ChallengeInstances \(1 running\) still use it; deletion completes when they are gone\.$/ },
      counts: { total: 2, running: 1 },
      events: ['Warning DeletionBlocked'],
      requeueAfterMs: CHALLENGE_REQUEUE.deletionBlocked,
    },
    {
      name: 'a Challenge being deleted whose instances are themselves terminating still waits for them',
      subject: challenge({ deleting: true }),
      instances: [instanceOf('Terminating')],
      actions: [],
      ready: { status: 'False', reason: 'InstancesExist', message: /1 ChallengeInstance \(0 running\)/ },
    },
    {
      name: 'a Challenge being deleted without instances has its finalizer removed at once',
      subject: challenge({ deleting: true }),
      instances: [],
      actions: [{ type: 'RemoveFinalizer' }],
      events: ['Normal Deleted'],
    },
    {
      name: 'instances created after deletion began do not hold the Challenge: they never started from it',
      subject: challenge({ deleting: true }),
      instances: [instanceOf('Failed', { created: '2026-11-21T11:59:30Z' })],
      actions: [{ type: 'RemoveFinalizer' }],
    },
    {
      name: 'an instance created in the very second deletion began is admitted, and holds the Challenge',
      subject: challenge({ deleting: true }),
      instances: [instanceOf('Scheduled', { created: DELETED_AT })],
      actions: [],
      ready: { status: 'False', reason: 'InstancesExist', message: /1 ChallengeInstance / },
    },
    {
      name: 'a Challenge being deleted that never got the finalizer gets none now and needs nothing',
      subject: challenge({ deleting: true, finalizers: [] }),
      instances: [instanceOf('Running')],
      actions: [],
      events: [],
    },
    {
      name: "deleting leaves other controllers' finalizers alone: only ours is planned away",
      subject: challenge({ deleting: true, finalizers: ['other.io/keep', CHALLENGE_FINALIZER] }),
      instances: [],
      actions: [{ type: 'RemoveFinalizer' }],
    },
  ];

  for (const { name, subject, instances, actions, ready, counts, events, requeueAfterMs } of cases) {
    test(name, () => {
      const result = planChallenge(subject, instances, NOW);
      assert.deepEqual(result.actions, actions);
      if (ready !== undefined) {
        const condition = result.status?.conditions?.find((c) => c.type === 'Ready');
        assert.equal(condition?.status, ready.status);
        assert.equal(condition.reason, ready.reason);
        assert.match(condition.message, ready.message);
        assert.equal(condition.observedGeneration, subject.metadata.generation);
      }
      if (counts !== undefined) assert.deepEqual(result.status?.instances, counts);
      if (result.status !== undefined) assert.equal(result.status.observedGeneration, subject.metadata.generation);
      if (events !== undefined) assert.deepEqual(result.events.map((event) => `${event.type} ${event.reason}`), events);
      if (requeueAfterMs !== undefined) assert.equal(result.requeueAfterMs, requeueAfterMs);
    });
  }

  test('re-planning after applying a plan has nothing left to do (idempotency)', () => {
    for (const { name, subject, instances } of cases) {
      let current = subject;
      let first = planChallenge(current, instances, NOW);
      // The reconciler re-plans within the pass after adding the finalizer.
      if (first.actions.some((action) => action.type === 'AddFinalizer')) {
        current = applyPlan(current, first);
        first = planChallenge(current, instances, NOW);
      }
      const afterWrite = applyPlan(current, first);
      const second = planChallenge(afterWrite, instances, new Date(NOW.getTime() + 1_000));
      assert.deepEqual(second.actions, [], `${name}: second pass acted again`);
      assert.deepEqual(second.events, [], `${name}: second pass recorded an event again`);
      if (first.status !== undefined) {
        assert.deepEqual(second.status, first.status, `${name}: second pass changed the status`);
        assert.ok(isSameChallengeStatus(afterWrite.status, first.status), `${name}: second pass would write`);
      }
    }
  });

  test('DeletionBlocked is recorded when the deletion starts waiting, not again as the counts move', () => {
    const blocked = planChallenge(challenge({ deleting: true }), [instanceOf('Running'), instanceOf('Running')], NOW);
    assert.equal(blocked.events.length, 1);
    assert.match(blocked.events[0]?.message ?? '', /^Blocked deletion of Challenge ctf\/web-101: 2 ChallengeInstances \(2 running\) still use it; deletion completes when they are gone\.$/);
    const afterWrite = applyPlan(challenge({ deleting: true }), blocked);
    const fewer = planChallenge(afterWrite, [instanceOf('Running')], new Date(NOW.getTime() + 5_000));
    assert.deepEqual(fewer.events, []);
    assert.deepEqual(fewer.status?.instances, { total: 1, running: 1 });
    assert.ok(!isSameChallengeStatus(afterWrite.status, fewer.status), 'the new count is written');
  });

  test("a pooled Challenge's status carries the workers' pool counts (0 before any report) and is looked at every 5 s", () => {
    const pooled: Challenge = { ...challenge(), spec: { ...challenge().spec, pool: { size: 10 } } };
    const reported = planChallenge(pooled, [], NOW, { idle: 7, target: 10 });
    assert.deepEqual(reported.status?.pool, { idle: 7, target: 10 });
    assert.equal(reported.requeueAfterMs, CHALLENGE_REQUEUE.pooled);
    assert.deepEqual(planChallenge(pooled, [], NOW).status?.pool, { idle: 0, target: 0 });
    const plain = planChallenge(challenge(), [], NOW, { idle: 7, target: 10 });
    assert.equal(plain.status?.pool, undefined, 'no pool in the status of a Challenge without one');
    assert.equal(plain.requeueAfterMs, CHALLENGE_REQUEUE.settled);
    // A change of the counts alone is a change of status (written), the same counts are not.
    const written = applyPlan(pooled, reported);
    assert.equal(isSameChallengeStatus(written.status, planChallenge(written, [], NOW, { idle: 7, target: 10 }).status ?? {}), true);
    assert.equal(isSameChallengeStatus(written.status, planChallenge(written, [], NOW, { idle: 6, target: 10 }).status ?? {}), false);
  });

  test("Ready keeps its lastTransitionTime while its status does not flip, and moves when deletion turns it False", () => {
    const first = planChallenge(challenge(), [], NOW);
    const afterWrite = applyPlan(challenge(), first);
    const more = planChallenge(afterWrite, [instanceOf('Running')], new Date(NOW.getTime() + 60_000));
    assert.equal(more.status?.conditions?.[0]?.lastTransitionTime, '2026-11-21T12:00:00Z');
    assert.equal(more.status.conditions[0].message, '1 instance, 1 running.');
    const deleting: Challenge = { ...applyPlan(afterWrite, more), metadata: { ...afterWrite.metadata, deletionTimestamp: DELETED_AT } };
    const blocked = planChallenge(deleting, [instanceOf('Running')], new Date(NOW.getTime() + 120_000));
    assert.equal(blocked.status?.conditions?.[0]?.lastTransitionTime, '2026-11-21T12:02:00Z');
  });

  test('Reconciling and Stalled (kstatus): never Stalled; Reconciling only while a deletion waits for instances', () => {
    const pick = (result: ChallengePlan) => Object.fromEntries((result.status?.conditions ?? []).map((c) => [c.type, [c.status, c.reason, c.observedGeneration]]));
    const settled = planChallenge(challenge({ generation: 3 }), [instanceOf('Running')], NOW);
    assert.deepEqual(pick(settled), { Ready: ['True', 'Ready', 3], Reconciling: ['False', 'Ready', 3], Stalled: ['False', 'Ready', 3] });
    const waiting = planChallenge(challenge({ deleting: true }), [instanceOf('Running')], NOW);
    assert.deepEqual(pick(waiting), { Ready: ['False', 'InstancesExist', 1], Reconciling: ['True', 'InstancesExist', 1], Stalled: ['False', 'InstancesExist', 1] });
    assert.match(waiting.status?.conditions?.find((c) => c.type === 'Reconciling')?.message ?? '', /^Deletion waits: 1 ChallengeInstance \(1 running\) still use it/);
  });

  test('a spec change moves observedGeneration on the status and on Ready', () => {
    const first = applyPlan(challenge(), planChallenge(challenge(), [], NOW));
    const changed = planChallenge({ ...first, metadata: { ...first.metadata, generation: 2 } }, [], NOW);
    assert.equal(changed.status?.observedGeneration, 2);
    assert.equal(changed.status.conditions?.[0]?.observedGeneration, 2);
    assert.ok(!isSameChallengeStatus(first.status, changed.status), 'the new generation is written');
  });
});

describe('tallyInstances', () => {
  test('holding counts only the instances admitted before deletion began; total and running count every instance naming it', () => {
    const tally = tallyInstances(challenge({ deleting: true }), [
      instanceOf('Running'),
      instanceOf('Failed', { created: '2026-11-21T11:59:01Z' }),
      instanceOf('Running', { challengeName: 'other' }),
    ]);
    assert.deepEqual(tally, { total: 2, running: 1, holding: 1 });
  });
});
