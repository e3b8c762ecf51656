import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_LIFETIME_POLICY, FIRST_STATUS_GRACE_MS, plan, REQUEUE, type Action, type JobObservation, type NodePolicy, type Plan } from '../../src/controller/plan.ts';
import type { ChallengeInstance, InstanceStatus } from '../../src/domain/challenge-instance.ts';
import { jobIdFor, type JobAction } from '../../src/domain/jobs.ts';
import { readyCondition as ready, TEST_UID as UID, testInstance as instance } from '../support/fixtures.ts';

const NOW = new Date('2026-11-21T12:00:00.000Z');

/** Status as it stands after a worker ran generation `generation` on node-a. */
function running(generation: number, extra: InstanceStatus = {}): InstanceStatus {
  return {
    node: 'node-a',
    containerId: 'c0ffee',
    endpoints: [{ name: 'http', host: '127.0.0.1', port: 31234, protocol: 'TCP' }],
    conditions: [ready('True', 'ContainerReady', generation, 'Container is ready on node node-a.')],
    lastJob: { id: jobIdFor(UID, generation, 'start'), action: 'start'},
    ...extra,
  };
}

function job(action: JobAction, generation: number, state: JobObservation['state'], failedReason?: string): JobObservation {
  const observation: JobObservation = { id: jobIdFor(UID, generation, action), state };
  if (failedReason !== undefined) observation.failedReason = failedReason;
  return observation;
}

function enqueued(result: Plan): Action[] {
  return result.actions.filter((action) => action.type === 'Enqueue');
}

/** Applies a plan's controller-owned status to the instance, as the reconciler's write would. */
function applyStatus(subject: ChallengeInstance, result: Plan): ChallengeInstance {
  if (result.status === undefined) return subject;
  const workerConditions = (subject.status?.conditions ?? []).filter((condition) => condition.type === 'Ready');
  return { ...subject, status: { ...subject.status, ...result.status, conditions: [...workerConditions, ...result.status.conditions] } };
}

describe('plan', () => {
  const cases: {
    name: string;
    subject: ChallengeInstance;
    job?: JobObservation;
    phase?: string;
    reason?: string;
    actions: Action[];
  }[] = [
    {
      name: 'a new instance without the finalizer gets it first, and nothing else',
      subject: instance({ finalizers: [] }),
      actions: [{ type: 'AddFinalizer' }],
    },
    {
      name: 'an instance with the finalizer and no job queues a start job on the shared queue',
      subject: instance(),
      phase: 'Scheduled',
      reason: 'WaitingForWorker',
      actions: [{ type: 'Enqueue', action: 'start', jobId: jobIdFor(UID, 1, 'start'), generation: 1, node: undefined }],
    },
    {
      name: 'a queued start job is waited for, not queued again',
      subject: instance({ status: { lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start'} } }),
      job: job('start', 1, 'waiting'),
      phase: 'Scheduled',
      reason: 'WaitingForWorker',
      actions: [],
    },
    {
      name: 'an active start job shows the instance as Starting',
      subject: instance({ status: { lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start'} } }),
      job: job('start', 1, 'active'),
      phase: 'Starting',
      reason: 'StartingContainer',
      actions: [],
    },
    {
      name: 'a start job that Redis lost is queued again',
      subject: instance({ status: { lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start'} } }),
      job: job('start', 1, 'missing'),
      phase: 'Scheduled',
      actions: [{ type: 'Enqueue', action: 'start', jobId: jobIdFor(UID, 1, 'start'), generation: 1, node: undefined }],
    },
    {
      name: 'a container ready for the current generation is Running',
      subject: instance({ status: running(1) }),
      job: job('start', 1, 'completed'),
      phase: 'Running',
      reason: 'ContainerReady',
      actions: [],
    },
    {
      name: 'a spec change replaces the container on the node it already runs on',
      subject: instance({ generation: 2, status: running(1) }),
      job: job('start', 1, 'completed'),
      phase: 'Scheduled',
      actions: [{ type: 'Enqueue', action: 'start', jobId: jobIdFor(UID, 2, 'start'), generation: 2, node: 'node-a' }],
    },
    {
      name: 'a permanent failure reported by the worker fails the instance until the spec changes',
      subject: instance({ status: { ...running(1), conditions: [ready('False', 'ImagePullFailed', 1, 'pull access denied')] } }),
      job: job('start', 1, 'failed', 'ImagePullFailed: pull access denied'),
      phase: 'Failed',
      reason: 'ImagePullFailed',
      actions: [],
    },
    {
      name: 'a start job that failed without a report fails the instance with the job reason',
      subject: instance({ status: { lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start'} } }),
      job: job('start', 1, 'failed', 'InvalidJob: spec.ports: Required'),
      phase: 'Failed',
      reason: 'InvalidJob',
      actions: [],
    },
    {
      name: 'desiredState Stopped stops a running container on its node',
      subject: instance({ generation: 2, desiredState: 'Stopped', status: running(1) }),
      job: job('start', 1, 'completed'),
      phase: 'Stopping',
      actions: [{ type: 'Enqueue', action: 'stop', jobId: jobIdFor(UID, 2, 'stop'), generation: 2, node: 'node-a' }],
    },
    {
      name: 'a stopped container for the current generation is Stopped',
      subject: instance({ generation: 2, desiredState: 'Stopped', status: { ...running(1), conditions: [ready('True', 'ContainerStopped', 2)] } }),
      phase: 'Stopped',
      actions: [],
    },
    {
      name: 'an instance asked to stop before any container exists is Stopped at once',
      subject: instance({ desiredState: 'Stopped' }),
      phase: 'Stopped',
      actions: [],
    },
    {
      name: 'deleting an instance with a container queues a delete job on its node',
      subject: instance({ deleting: true, status: running(1) }),
      job: job('start', 1, 'completed'),
      phase: 'Terminating',
      actions: [{ type: 'Enqueue', action: 'delete', jobId: jobIdFor(UID, 1, 'delete'), generation: 1, node: 'node-a' }],
    },
    {
      name: 'a completed delete job releases the finalizer',
      subject: instance({ deleting: true, status: { ...running(1), lastJob: { id: jobIdFor(UID, 1, 'delete'), action: 'delete'} } }),
      job: job('delete', 1, 'completed'),
      actions: [{ type: 'RemoveFinalizer' }],
    },
    {
      name: 'deleting an instance that never ran releases the finalizer at once',
      subject: instance({ deleting: true }),
      actions: [{ type: 'RemoveFinalizer' }],
    },
    {
      name: 'deleting while a start job is queued waits for that job first',
      subject: instance({ deleting: true, status: { lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start'} } }),
      job: job('start', 1, 'waiting'),
      phase: 'Terminating',
      reason: 'WaitingForStartJob',
      actions: [],
    },
    {
      name: 'at the end of its lifetime a running instance has its container removed on its node and becomes Expired',
      subject: instance({ ttlSeconds: 60, status: running(1, { startedAt: '2026-11-21T11:58:59Z' }) }),
      job: job('start', 1, 'completed'),
      phase: 'Expired',
      reason: 'LifetimeEnded',
      actions: [{ type: 'Enqueue', action: 'expire', jobId: jobIdFor(UID, 1, 'expire'), generation: 1, node: 'node-a' }],
    },
    {
      name: 'an instance without ttlSeconds still ends at the maximum lifetime (7 days by default): its container is removed and it becomes Expired',
      subject: instance({ status: running(1, { startedAt: '2026-11-14T12:00:00Z' }) }),
      job: job('start', 1, 'completed'),
      phase: 'Expired',
      reason: 'LifetimeEnded',
      actions: [{ type: 'Enqueue', action: 'expire', jobId: jobIdFor(UID, 1, 'expire'), generation: 1, node: 'node-a' }],
    },
    {
      name: 'an object already without our finalizer needs nothing at all',
      subject: instance({ deleting: true, finalizers: ['other.io/keep'] }),
      actions: [],
    },
  ];

  for (const { name, subject, job: observation, phase, reason, actions } of cases) {
    test(name, () => {
      const result = plan(subject, observation, NOW);
      assert.deepEqual(result.actions, actions);
      if (phase !== undefined) assert.equal(result.status?.phase, phase);
      if (reason !== undefined) assert.equal(result.status?.reason, reason);
      if (result.status !== undefined) assert.equal(result.status.observedGeneration, subject.metadata.generation);
    });
  }

  test('re-planning after applying a plan has nothing left to do (idempotency)', () => {
    for (const { name, subject, job: observation } of cases) {
      const first = plan(subject, observation, NOW);
      if (enqueued(first).length === 0) continue;
      const afterWrite = applyStatus(subject, first);
      const queued = enqueued(first)[0];
      assert.ok(queued?.type === 'Enqueue');
      const second = plan(afterWrite, { id: queued.jobId, state: 'waiting' }, new Date(NOW.getTime() + 1_000));
      assert.deepEqual(second.actions, [], `${name}: second pass enqueued again`);
      assert.deepEqual(second.status, first.status, `${name}: second pass changed the status`);
      assert.deepEqual(second.events, [], `${name}: second pass emitted an event`);
    }
  });

  test('Reconciling and Stalled (kstatus) follow the phase: Failed is Stalled with its reason, work on the way is Reconciling, a settled instance is neither', () => {
    const seen = new Set<string>();
    for (const { name, subject, job: observation } of cases) {
      const result = plan(subject, observation, NOW);
      if (result.status === undefined) continue;
      const { phase, reason, message, conditions } = result.status;
      seen.add(phase);
      const reconciling = conditions.find((c) => c.type === 'Reconciling');
      const stalled = conditions.find((c) => c.type === 'Stalled');
      assert.ok(reconciling !== undefined && stalled !== undefined, `${name}: both conditions are written`);
      assert.equal(reconciling.observedGeneration, subject.metadata.generation, name);
      assert.equal(stalled.observedGeneration, subject.metadata.generation, name);
      if (phase === 'Failed') {
        assert.deepEqual([stalled.status, stalled.reason, stalled.message], ['True', reason, message], `${name}: Stalled says why`);
        assert.equal(reconciling.status, 'False', name);
      } else if (['Running', 'Stopped'].includes(phase) && result.actions.length === 0) {
        assert.deepEqual([reconciling.status, reconciling.reason, stalled.status, stalled.reason], ['False', phase, 'False', phase], name);
      } else if (['Pending', 'Scheduled', 'Starting', 'Stopping', 'Terminating'].includes(phase)) {
        assert.deepEqual([reconciling.status, reconciling.reason, reconciling.message, stalled.status], ['True', reason, message, 'False'], `${name}: Reconciling says what is on the way`);
      }
    }
    for (const phase of ['Scheduled', 'Starting', 'Running', 'Failed']) assert.ok(seen.has(phase), `the table covers ${phase}`);
  });

  test('an expiry reads Reconciling until the worker has removed the container, then neither', () => {
    const ended = instance({ ttlSeconds: 60, status: running(1, { startedAt: '2026-11-21T11:58:00Z' }) });
    const removing = plan(ended, job('start', 1, 'completed'), NOW);
    assert.equal(removing.status?.phase, 'Expired');
    const expire = enqueued(removing)[0];
    assert.ok(expire?.type === 'Enqueue' && expire.action === 'expire');
    const condition = (result: Plan, type: string) => result.status?.conditions.find((c) => c.type === type)?.status;
    assert.equal(condition(removing, 'Reconciling'), 'True');
    const waiting = plan(applyStatus(ended, removing), { id: expire.jobId, state: 'active' }, NOW);
    assert.equal(condition(waiting, 'Reconciling'), 'True', 'while the expire job runs');
    const removed = applyStatus(ended, removing);
    const gone = plan({ ...removed, status: { ...removed.status, containerId: '', conditions: [...(removed.status?.conditions ?? []).filter((c) => c.type !== 'Ready'), ready('True', 'ContainerRemoved', 1, 'removed')] } }, { id: expire.jobId, state: 'completed' }, NOW);
    assert.equal(gone.status?.phase, 'Expired');
    assert.deepEqual([condition(gone, 'Reconciling'), condition(gone, 'Stalled')], ['False', 'False']);
  });

  test('the Scheduled condition keeps its lastTransitionTime while its status does not flip', () => {
    const first = plan(instance(), undefined, NOW);
    const afterWrite = applyStatus(instance(), first);
    const later = new Date(NOW.getTime() + 60_000);
    const workerReport = running(1);
    const conditions = [...(afterWrite.status?.conditions ?? []), ...(workerReport.conditions ?? [])];
    const second = plan({ ...afterWrite, status: { ...afterWrite.status, ...workerReport, conditions } }, job('start', 1, 'completed'), later);
    assert.equal(second.status?.phase, 'Running');
    const before = first.status?.conditions.find((c) => c.type === 'Scheduled');
    const after = second.status.conditions.find((c) => c.type === 'Scheduled');
    assert.ok(before !== undefined && after !== undefined);
    assert.equal(before.status, 'True');
    assert.equal(after.lastTransitionTime, before.lastTransitionTime);
    assert.equal(before.reason, 'Queued');
    assert.equal(after.reason, 'Placed');
    assert.equal(after.message, 'Placed on node node-a.');
  });

  test('a phase change emits one event; failures are warnings', () => {
    const failed = plan(
      instance({ status: { conditions: [ready('False', 'ContainerExited', 1, 'exited with code 3')] } }),
      undefined,
      NOW,
    );
    assert.deepEqual(failed.events, [{ type: 'Warning', reason: 'ContainerExited', message: 'exited with code 3' }]);
    assert.equal(failed.requeueAfterMs, REQUEUE.settled);
  });

  test('an instance with work in flight is looked at again soon; a settled one rarely', () => {
    assert.equal(plan(instance(), undefined, NOW).requeueAfterMs, REQUEUE.busy);
    assert.equal(plan(instance({ status: running(1) }), job('start', 1, 'completed'), NOW).requeueAfterMs, REQUEUE.settled);
  });

  test('the safety net looks at a job waiting in the queue less often the longer it has waited, never past busyMax', () => {
    const queued = { ...instance(), metadata: { ...instance().metadata, creationTimestamp: new Date(NOW.getTime() - 600_000).toISOString() } };
    const subject = { ...queued, status: { phase: 'Scheduled' as const, observedGeneration: 1, lastJob: { id: jobIdFor(UID, 1, 'start'), action: 'start' as const } } };
    const waitedFor = (ms: number, state: JobObservation['state'] = 'waiting'): number =>
      plan(subject, { ...job('start', 1, state), queuedAt: NOW.getTime() - ms }, NOW).requeueAfterMs;
    assert.equal(waitedFor(2_000), REQUEUE.busy, 'a job queued just now: the usual 5 s');
    assert.equal(waitedFor(20_000), 10_000, 'half its wait so far');
    assert.equal(waitedFor(40_000, 'active'), 20_000, 'a job being worked on alike');
    assert.equal(waitedFor(600_000), REQUEUE.busyMax, 'capped');
    assert.equal(plan(subject, job('start', 1, 'waiting'), NOW).requeueAfterMs, REQUEUE.busy, 'no queue time known: 5 s');
    const lost = plan(subject, { ...job('start', 1, 'missing'), queuedAt: NOW.getTime() - 600_000 }, NOW);
    assert.equal(lost.actions.filter((action) => action.type === 'Enqueue').length, 1, 'a job the queue lost is enqueued again');
    assert.equal(lost.requeueAfterMs, REQUEUE.busy, 'and the new job is looked at in 5 s');
  });

  describe('a fresh instance\'s first status', () => {
    const createdAt = (msAgo: number): ChallengeInstance => {
      const fresh = instance();
      return { ...fresh, metadata: { ...fresh.metadata, creationTimestamp: new Date(NOW.getTime() - msAgo).toISOString() } };
    };
    const startJob = jobIdFor(UID, 1, 'start');

    test('is held back while the start is in flight within the grace: the job is queued, nothing is written, no Event, and it looks again at the grace\'s end', () => {
      const result = plan(createdAt(1_000), undefined, NOW);
      assert.deepEqual(result.actions, [{ type: 'Enqueue', action: 'start', jobId: startJob, generation: 1, node: undefined }]);
      assert.equal(result.status, undefined);
      assert.deepEqual(result.events, []);
      assert.equal(result.requeueAfterMs, FIRST_STATUS_GRACE_MS - 1_000);
    });

    test('a held-back instance whose job is found by its id (the reconciler infers lastJob) is not queued again', () => {
      const subject = { ...createdAt(1_500), status: { lastJob: { id: startJob, action: 'start' as const } } };
      for (const state of ['waiting', 'active'] as const) {
        const result = plan(subject, { id: startJob, state }, NOW);
        assert.deepEqual(result.actions, [], state);
        assert.equal(result.status, undefined, state);
      }
    });

    test('is written as Scheduled or Starting once the grace is over, with its Event', () => {
      const subject = { ...createdAt(FIRST_STATUS_GRACE_MS), status: { lastJob: { id: startJob, action: 'start' as const } } };
      const waiting = plan(subject, { id: startJob, state: 'waiting' }, NOW);
      assert.equal(waiting.status?.phase, 'Scheduled');
      assert.deepEqual(waiting.events.map((event) => event.reason), ['Scheduled']);
      assert.equal(plan(subject, { id: startJob, state: 'active' }, NOW).status?.phase, 'Starting');
    });

    test('the grace is the deployment\'s: a longer one holds a queued instance back longer, 0 writes its status at once', () => {
      const subject = { ...createdAt(30_000), status: { lastJob: { id: startJob, action: 'start' as const } } };
      const long = plan(subject, { id: startJob, state: 'waiting' }, NOW, undefined, undefined, undefined, 60_000);
      assert.equal(long.status, undefined);
      assert.equal(long.requeueAfterMs, REQUEUE.busy, 'still looked at again soon, the safety net');
      assert.equal(plan(subject, { id: startJob, state: 'waiting' }, NOW, undefined, undefined, undefined, 30_000).status?.phase, 'Scheduled');
      const atOnce = plan(createdAt(0), undefined, NOW, undefined, undefined, undefined, 0);
      assert.equal(atOnce.status?.phase, 'Scheduled');
      assert.deepEqual(atOnce.events.map((event) => event.reason), ['Scheduled']);
    });

    test('is written at once when it says Running (one controller write for the whole start) or Failed', () => {
      const ready = { ...createdAt(500), status: running(1) };
      const result = plan(ready, { id: startJob, state: 'completed' }, NOW);
      assert.equal(result.status?.phase, 'Running');
      assert.equal(result.status.lastJob?.id, startJob);
      assert.deepEqual(result.events.map((event) => event.reason), ['Running']);
      const failed = plan({ ...createdAt(500), status: { lastJob: { id: startJob, action: 'start' } } }, { id: startJob, state: 'failed', failedReason: 'ImageNotAllowed: no' }, NOW);
      assert.equal(failed.status?.phase, 'Failed');
    });

    test('is not held back for an instance the controller cannot date', () => {
      assert.equal(plan(instance(), undefined, NOW).status?.phase, 'Scheduled');
    });

    test('once written as Scheduled, it stays so while a worker takes and runs the job (no write, no Event), and its end is written', () => {
      const queued = plan({ ...createdAt(FIRST_STATUS_GRACE_MS), status: { lastJob: { id: startJob, action: 'start' } } }, { id: startJob, state: 'waiting' }, NOW);
      assert.equal(queued.status?.phase, 'Scheduled');
      const written = applyStatus(createdAt(FIRST_STATUS_GRACE_MS), queued);
      const later = new Date(NOW.getTime() + 5_000);
      const taken = plan(written, { id: startJob, state: 'active' }, later);
      assert.deepEqual(taken.status, queued.status, 'Scheduled → Starting is left out');
      assert.deepEqual(taken.events, []);
      const ran = plan({ ...written, status: { ...written.status, ...running(1), conditions: [...(written.status?.conditions ?? []), ready('True', 'ContainerReady', 1)] } }, { id: startJob, state: 'completed' }, later);
      assert.equal(ran.status?.phase, 'Running');
      assert.deepEqual(ran.events.map((event) => event.reason), ['Running']);
    });
  });

  describe('lifetimes', () => {
    const startedTenSecondsAgo = running(1, { startedAt: '2026-11-21T11:59:50Z' });

    test('a running instance with ttlSeconds reports expiresAt and is looked at again when it ends', () => {
      const result = plan(instance({ ttlSeconds: 60, status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW);
      assert.equal(result.status?.phase, 'Running');
      assert.equal(result.status.expiresAt, '2026-11-21T12:00:50Z');
      assert.equal(result.requeueAfterMs, 50_000);
    });

    test('once its container is gone an expired instance stays Expired and keeps its expiresAt', () => {
      const expired: InstanceStatus = {
        phase: 'Expired',
        reason: 'LifetimeEnded',
        observedGeneration: 1,
        expiresAt: '2026-11-21T11:59:59Z',
        conditions: [ready('True', 'ContainerRemoved', 1)],
      };
      const result = plan(instance({ ttlSeconds: 60, status: expired }), job('expire', 1, 'completed'), NOW);
      assert.deepEqual(result.actions, []);
      assert.equal(result.status?.phase, 'Expired');
      assert.equal(result.status.expiresAt, '2026-11-21T11:59:59Z');
      assert.match(result.status.message, /the container was removed/);
    });

    test('a longer ttlSeconds given before the end extends the lifetime', () => {
      const extended = plan(instance({ generation: 2, ttlSeconds: 120, status: running(1, { startedAt: '2026-11-21T11:58:59Z' }) }), job('start', 1, 'completed'), NOW);
      assert.equal(extended.status?.expiresAt, '2026-11-21T12:00:59Z');
      assert.ok(!extended.actions.some((action) => action.type === 'Enqueue' && action.action === 'expire'));
    });

    test('lifetimes are capped by the configured maximum', () => {
      const result = plan(instance({ ttlSeconds: 3_600, status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW, { ...DEFAULT_LIFETIME_POLICY, maxLifetimeSeconds: 30 });
      assert.equal(result.status?.expiresAt, '2026-11-21T12:00:20Z');
    });

    test('an instance without ttlSeconds reports expiresAt at startedAt + the maximum lifetime and is looked at again then', () => {
      const capped = plan(instance({ status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW, { ...DEFAULT_LIFETIME_POLICY, maxLifetimeSeconds: 30 });
      assert.equal(capped.status?.phase, 'Running');
      assert.equal(capped.status.expiresAt, '2026-11-21T12:00:20Z');
      assert.equal(capped.requeueAfterMs, 20_000);
      const byDefault = plan(instance({ status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW);
      assert.equal(byDefault.status?.expiresAt, '2026-11-28T11:59:50Z');
      assert.equal(byDefault.requeueAfterMs, REQUEUE.settled);
    });

    test('an instance without ttlSeconds at the end of the maximum lifetime is deleted with onExpiry Delete', () => {
      const result = plan(instance({ status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW, { maxLifetimeSeconds: 10, onExpiry: 'Delete' });
      assert.deepEqual(result.actions, [{ type: 'DeleteResource' }]);
      assert.equal(result.status?.phase, 'Expired');
      assert.equal(result.status.expiresAt, '2026-11-21T12:00:00Z');
    });

    test('before its container has started an instance has no expiresAt, with or without ttlSeconds', () => {
      assert.equal(plan(instance(), undefined, NOW).status?.expiresAt, undefined);
      assert.equal(plan(instance({ ttlSeconds: 60 }), undefined, NOW).status?.expiresAt, undefined);
    });

    test('with onExpiry Delete the resource itself is deleted at the end of its lifetime', () => {
      const result = plan(instance({ ttlSeconds: 5, status: startedTenSecondsAgo }), job('start', 1, 'completed'), NOW, { ...DEFAULT_LIFETIME_POLICY, onExpiry: 'Delete' });
      assert.deepEqual(result.actions, [{ type: 'DeleteResource' }]);
      assert.equal(result.status?.phase, 'Expired');
    });

    test('a spec change after expiry starts the instance again', () => {
      const expired: InstanceStatus = { phase: 'Expired', reason: 'LifetimeEnded', observedGeneration: 1, expiresAt: '2026-11-21T11:59:59Z' };
      const result = plan(instance({ generation: 2, ttlSeconds: 600, status: expired }), undefined, NOW);
      assert.deepEqual(result.actions, [{ type: 'Enqueue', action: 'start', jobId: jobIdFor(UID, 2, 'start'), generation: 2, node: undefined }]);
    });
  });

  describe('lost nodes', () => {
    const lostA: NodePolicy = { isNodeLost: (node) => node === 'node-a', onNodeLost: 'Reschedule' };
    const reschedule1 = jobIdFor(UID, 1, 'start', 1);

    test('a running instance on a lost node is marked NodeLost and rescheduled on the shared queue with a new job id', () => {
      const result = plan(instance({ status: { ...running(1), phase: 'Running' } }), job('start', 1, 'completed'), NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(result.actions, [{ type: 'Enqueue', action: 'start', jobId: reschedule1, generation: 1, node: undefined }]);
      assert.equal(result.status?.phase, 'Scheduled');
      assert.equal(result.status.reason, 'NodeLost');
      assert.equal(result.status.reschedules, 1);
      const scheduled = result.status.conditions.find((condition) => condition.type === 'Scheduled');
      assert.equal(scheduled?.status, 'False');
      assert.equal(scheduled.reason, 'NodeLost');
      assert.deepEqual(result.events.map((event) => [event.type, event.reason]), [['Warning', 'NodeLost']]);
    });

    test('while the rescheduled job waits nothing more is queued; when the queue lost it, it is queued again under the same id', () => {
      const moving = running(1, { phase: 'Scheduled', reason: 'NodeLost', reschedules: 1, lastJob: { id: reschedule1, action: 'start' } });
      const waiting = plan(instance({ status: moving }), { id: reschedule1, state: 'waiting' }, NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(waiting.actions, []);
      assert.equal(waiting.status?.reason, 'NodeLost');
      const lost = plan(instance({ status: moving }), { id: reschedule1, state: 'missing' }, NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(enqueued(lost).map((action) => action.type === 'Enqueue' && action.jobId), [reschedule1]);
    });

    test('once another node reports it ready the instance is Running there, and its start jobs keep the reschedule number', () => {
      const moved = running(1, { node: 'node-b', reschedules: 1, lastJob: { id: reschedule1, action: 'start' } });
      const result = plan(instance({ status: moved }), { id: reschedule1, state: 'completed' }, NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.equal(result.status?.phase, 'Running');
      assert.deepEqual(result.actions, []);
      const changed = plan(instance({ generation: 2, status: moved }), { id: reschedule1, state: 'completed' }, NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(enqueued(changed).map((action) => action.type === 'Enqueue' && action.jobId), [jobIdFor(UID, 2, 'start', 1)]);
    });

    test('with policy Keep the instance waits for its node as Pending/NodeLost', () => {
      const result = plan(instance({ status: running(1) }), job('start', 1, 'completed'), NOW, DEFAULT_LIFETIME_POLICY, { ...lostA, onNodeLost: 'Keep' });
      assert.deepEqual(result.actions, []);
      assert.equal(result.status?.phase, 'Pending');
      assert.equal(result.status.reason, 'NodeLost');
    });

    test('deleting, stopping or expiring an instance on a lost node never waits for that node', () => {
      const deleting = plan(instance({ deleting: true, status: running(1) }), job('start', 1, 'completed'), NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(deleting.actions, [{ type: 'RemoveFinalizer' }]);
      const stopping = plan(instance({ generation: 2, desiredState: 'Stopped', status: running(1) }), job('start', 1, 'completed'), NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(stopping.actions, []);
      assert.equal(stopping.status?.phase, 'Stopped');
      const expiring = plan(instance({ ttlSeconds: 5, status: running(1, { startedAt: '2026-11-21T11:59:50Z' }) }), job('start', 1, 'completed'), NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.deepEqual(expiring.actions, []);
      assert.equal(expiring.status?.phase, 'Expired');
    });

    test('a rescheduled start that fails marks the instance Failed with the job\'s reason', () => {
      const moving = running(1, { reschedules: 1, lastJob: { id: reschedule1, action: 'start' } });
      const result = plan(instance({ status: moving }), { id: reschedule1, state: 'failed', failedReason: 'PortsExhausted: none left' }, NOW, DEFAULT_LIFETIME_POLICY, lostA);
      assert.equal(result.status?.phase, 'Failed');
      assert.equal(result.status.reason, 'PortsExhausted');
    });
  });

  describe('crash restarts', () => {
    test('a container the worker is restarting shows as Starting/ContainerRestarting with no new job', () => {
      const restarting = running(1, { conditions: [ready('False', 'ContainerRestarting', 1, 'The container is not running; restart 1 of 5 in 1 s.')] });
      const result = plan(instance({ status: restarting }), job('start', 1, 'completed'), NOW);
      assert.deepEqual(result.actions, []);
      assert.equal(result.status?.phase, 'Starting');
      assert.equal(result.status.reason, 'ContainerRestarting');
      assert.match(result.status.message, /restart 1 of 5/);
    });

    test('past the restart limit the instance is Failed with CrashLoop until its spec changes', () => {
      const looping = running(1, { conditions: [ready('False', 'CrashLoop', 1, 'stopped 6 times')] });
      const result = plan(instance({ status: looping }), job('start', 1, 'completed'), NOW);
      assert.equal(result.status?.phase, 'Failed');
      assert.equal(result.status.reason, 'CrashLoop');
      assert.deepEqual(result.actions, []);
      const changed = plan(instance({ generation: 2, status: looping }), job('start', 1, 'completed'), NOW);
      assert.equal(enqueued(changed).length, 1);
    });
  });
});
