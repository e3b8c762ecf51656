import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Condition, InstanceStatus } from '../../src/domain/challenge-instance.ts';
import type { InstanceJob, JobAction } from '../../src/domain/jobs.ts';
import { LABELS } from '../../src/domain/names.ts';
import { specHash } from '../../src/domain/spec-hash.ts';
import type { ContainerInfo } from '../../src/domain/ports.ts';
import { planNode, type NodeFacts, type NodePlan } from '../../src/worker/node-plan.ts';
import { RestartPolicy } from '../../src/worker/restart-policy.ts';
import { readyCondition as ready, TEST_UID as UID, testInstance as instance } from '../support/fixtures.ts';

const NOW = 1_800_000_000_000;
const NODE = 'node-a';
const CANONICAL = 'ctfleet-ctf_web-101-team-7';

/** Status after the worker ran generation `generation` on `node`. */
function ranOn(node: string, generation = 1, extra: InstanceStatus = {}): InstanceStatus {
  return {
    phase: 'Running',
    observedGeneration: generation,
    node,
    containerId: 'c1',
    endpoints: [{ name: 'http', host: '127.0.0.1', port: 31234, protocol: 'TCP' }],
    conditions: [ready('True', 'ContainerReady', generation)],
    ...extra,
  };
}

function container(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  return { id: 'c1', name: CANONICAL, running: true, exitCode: undefined, labels: { [LABELS.uid]: UID, [LABELS.node]: NODE }, hostPorts: [31234], createdAt: NOW - 60_000, ...overrides };
}

function job(action: JobAction, generation = 1): InstanceJob {
  const result: InstanceJob = { v: 2, action, target: { namespace: 'ctf', name: 'web-101-team-7', uid: UID, generation } };
  if (action === 'start') result.specHash = specHash(instance().spec);
  return result;
}

const policy = new RestartPolicy({ limit: 5, windowMs: 600_000, backoffMs: 1_000, maxBackoffMs: 60_000 });

function facts(overrides: Partial<NodeFacts> = {}): NodeFacts {
  return {
    node: NODE,
    uid: UID,
    instance: instance(),
    containers: [],
    jobs: [],
    exit: undefined,
    restart: { dueAt: undefined, next: policy.peek('fresh', NOW), limit: 5, windowMs: 600_000 },
    engineDisrupted: false,
    now: NOW,
    ...overrides,
  };
}

/** A plan in one line per action, and its verdicts. */
function summary(plan: NodePlan): string[] {
  const actions = plan.actions.map((action): string => {
    switch (action.type) {
      case 'Remove':
        return `Remove ${action.container.id} ${action.reason}`;
      case 'Stop':
        return `Stop ${action.container.id}`;
      case 'Run':
        return `Run ${action.cause} existing=${action.existing?.id ?? '-'} ports=${action.preferredPorts.join(',') || '-'}`;
      case 'ReportRemoved':
        return `ReportRemoved${action.expired ? ' expired' : ''}`;
      case 'ReportRestarting':
      case 'ReportCrashLoop':
        return `${action.type} ${action.message}`;
      case 'RecordHealthy':
        return `RecordHealthy ${action.container.id}`;
      default:
        return action.type;
    }
  });
  const verdicts = plan.verdicts.map((verdict) => `${verdict.job.action}@${verdict.job.target.generation} ${verdict.outcome}${verdict.outcome === 'skipped' ? ` ${verdict.reason}` : verdict.outcome === 'ran' ? '' : ` ${verdict.containerId ?? 'AlreadyGone'}`}`);
  return [...actions, ...verdicts];
}

const died: NodeFacts['exit'] = { containerId: 'c1', died: true };

describe('planNode', () => {
  const cases: { name: string; facts: NodeFacts; expect: string[]; requeueAfterMs?: number | null }[] = [
    { name: 'a start job with nothing there runs a new container', facts: facts({ jobs: [job('start')] }), expect: ['Run job existing=- ports=-', 'ReportReady', 'start@1 ran'] },
    { name: 'a start job with its container there hands it to the run (adopt or replace)', facts: facts({ jobs: [job('start')], containers: [container()] }), expect: ['Run job existing=c1 ports=-', 'ReportReady', 'start@1 ran'] },
    { name: 'a start job naming another spec than the instance\'s is skipped, and nothing runs', facts: facts({ jobs: [{ ...job('start'), specHash: '0123456789abcdef' }] }), expect: ['start@1 skipped SpecMismatch'] },
    { name: 'a start job of an older generation is skipped', facts: facts({ jobs: [job('start', 1)], instance: instance({ generation: 2 }) }), expect: ['start@1 skipped Superseded'] },
    { name: 'a start job of a deleted instance removes what it may have left', facts: facts({ jobs: [job('start')], instance: undefined, containers: [container()] }), expect: ['Remove c1 Requested', 'ReportRemoved', 'start@1 skipped InstanceGone'] },
    { name: 'a start job of an instance being deleted is skipped', facts: facts({ jobs: [job('start')], instance: instance({ deleting: true }) }), expect: ['ReportRemoved', 'start@1 skipped InstanceDeleting'] },
    { name: 'a delete job removes the container', facts: facts({ jobs: [job('delete')], instance: instance({ deleting: true, status: ranOn(NODE) }), containers: [container()] }), expect: ['Remove c1 Requested', 'ReportRemoved', 'delete@1 removed c1'] },
    { name: 'a delete job with nothing left succeeds', facts: facts({ jobs: [job('delete')], instance: undefined }), expect: ['ReportRemoved', 'delete@1 removed AlreadyGone'] },
    { name: 'a stop job stops a running container', facts: facts({ jobs: [job('stop', 2)], instance: instance({ generation: 2, desiredState: 'Stopped', status: ranOn(NODE) }), containers: [container()] }), expect: ['Stop c1', 'ReportStopped', 'stop@2 stopped c1'] },
    { name: 'a stop job with the container stopped already only reports', facts: facts({ jobs: [job('stop', 2)], instance: instance({ generation: 2, desiredState: 'Stopped', status: ranOn(NODE) }), containers: [container({ running: false })] }), expect: ['ReportStopped', 'stop@2 stopped c1'] },
    { name: 'a stopped instance whose container runs again is stopped without a job', facts: facts({ instance: instance({ desiredState: 'Stopped', status: ranOn(NODE) }), containers: [container()] }), expect: ['Stop c1', 'ReportStopped'] },
    { name: 'an expire job removes the container and says so in status', facts: facts({ jobs: [job('expire')], instance: instance({ status: ranOn(NODE) }), containers: [container()] }), expect: ['Remove c1 Requested', 'ReportRemoved expired', 'expire@1 removed c1'] },
    { name: 'a late start job of an expired generation does not bring it back', facts: facts({ jobs: [job('start')], instance: instance({ status: ranOn(NODE, 1, { phase: 'Expired' }) }) }), expect: ['ReportRemoved expired', 'start@1 skipped Expired'] },
    { name: 'a container of an expired instance is removed without a job', facts: facts({ instance: instance({ status: ranOn(NODE, 1, { phase: 'Expired' }) }), containers: [container()] }), expect: ['Remove c1 Expired', 'ReportRemoved expired'] },
    { name: 'Expired at an older generation does not remove a new start', facts: facts({ jobs: [job('start', 2)], instance: instance({ generation: 2, status: ranOn(NODE, 1, { phase: 'Expired' }) }) }), expect: ['Run job existing=- ports=-', 'ReportReady', 'start@2 ran'] },
    { name: 'a healthy container refreshes the observed state only', facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container()] }), expect: ['RecordHealthy c1'] },
    {
      name: 'a container gone without a crash is re-created at once on its ports, uncounted',
      facts: facts({ instance: instance({ status: ranOn(NODE) }) }),
      expect: ['ReportRestarting The container is gone; starting it again (not counted against the restart limit).', 'Run restart existing=- ports=31234', 'ReportReady'],
    },
    {
      name: 'a crash is restarted after its backoff; the event wins over a listing that still says running',
      facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container()], exit: died }),
      expect: ['ReportRestarting The container is not running; restart 1 of 5 in 1 s.'],
      requeueAfterMs: 1_000,
    },
    { name: 'a restart waits for its backoff', facts: facts({ instance: instance({ status: ranOn(NODE, 1, { conditions: [ready('False', 'ContainerRestarting', 1)] }) }), containers: [container({ running: false })], restart: { dueAt: NOW + 400, next: policy.peek('x', NOW), limit: 5, windowMs: 600_000 } }), expect: [], requeueAfterMs: 400 },
    {
      name: 'a restart whose backoff passed runs the container again',
      facts: facts({ instance: instance({ status: ranOn(NODE, 1, { conditions: [ready('False', 'ContainerRestarting', 1)] }) }), containers: [container({ running: false })], restart: { dueAt: NOW - 1, next: policy.peek('x', NOW), limit: 5, windowMs: 600_000 } }),
      expect: ['Run restart existing=c1 ports=31234', 'ReportReady'],
    },
    {
      name: 'a crash past the restart limit is CrashLoop',
      facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container({ running: false })], exit: died, restart: { dueAt: undefined, next: { restart: false, restarts: 5 }, limit: 5, windowMs: 600_000 } }),
      expect: ['ReportCrashLoop The container is not running; it stopped 6 times within 600 s (limit 5 restarts). Change the spec to try again.'],
    },
    {
      name: 'a container the OOM killer ended is restarted as a crash, its message naming the OOM killer and the memory limit',
      facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container({ running: false, exitCode: 137, oomKilled: true, memoryBytes: 16 * 2 ** 20 })], exit: died }),
      expect: ['ReportRestarting The container was killed by the OOM killer at its memory limit of 16Mi; restart 1 of 5 in 1 s.'],
      requeueAfterMs: 1_000,
    },
    {
      name: 'OOM kills past the restart limit are CrashLoop, still naming the OOM killer',
      facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container({ running: false, exitCode: 137, oomKilled: true, memoryBytes: 256 * 2 ** 20 })], exit: died, restart: { dueAt: undefined, next: { restart: false, restarts: 5 }, limit: 5, windowMs: 600_000 } }),
      expect: ['ReportCrashLoop The container was killed by the OOM killer at its memory limit of 256Mi; it stopped 6 times within 600 s (limit 5 restarts). Change the spec to try again.'],
    },
    {
      name: 'a restarted container the OOM killer ended again before it was ready (and was removed) is named so, with no limit known',
      facts: facts({ instance: instance({ status: ranOn(NODE, 1, { conditions: [ready('False', 'ContainerRestarting', 1)] }) }), exit: { containerId: '', died: true, oomKilled: true } }),
      expect: ['ReportRestarting The container was killed by the OOM killer at its memory limit; restart 1 of 5 in 1 s.'],
      requeueAfterMs: 1_000,
    },
    {
      name: 'an exit while the engine restarts is not a crash',
      facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container({ running: false })], exit: died, engineDisrupted: true }),
      expect: ['ReportRestarting The container is not running; starting it again (not counted against the restart limit).', 'Run restart existing=c1 ports=31234', 'ReportReady'],
    },
    { name: 'a container of an instance placed on another node is removed', facts: facts({ instance: instance({ status: ranOn('node-b') }), containers: [container()] }), expect: ['Remove c1 PlacedElsewhere'] },
    { name: 'a start job moves an instance off another (lost) node', facts: facts({ jobs: [job('start')], instance: instance({ status: ranOn('node-b') }) }), expect: ['Run job existing=- ports=-', 'ReportReady', 'start@1 ran'] },
    { name: 'an instance whose start job is on its way is left to the job', facts: facts({ instance: instance({ generation: 2, status: ranOn(NODE) }), containers: [container()] }), expect: [] },
    { name: 'a failure waits for a spec change', facts: facts({ instance: instance({ status: ranOn(NODE, 1, { conditions: [ready('False', 'ImagePullFailed', 1)] }) }) }), expect: [] },
    { name: 'a second container of the instance under another name is removed', facts: facts({ instance: instance({ status: ranOn(NODE) }), containers: [container(), container({ id: 'c2', name: 'ctfleet-ctf_copy' })] }), expect: ['Remove c2 Duplicate', 'RecordHealthy c1'] },
    { name: 'containers of a gone instance are all removed', facts: facts({ instance: undefined, containers: [container(), container({ id: 'c2', name: 'other' })] }), expect: ['Remove c1 NoInstance', 'Remove c2 NoInstance'], requeueAfterMs: null },
    {
      name: 'a restarted container that runs while status still says restarting is adopted',
      facts: facts({ instance: instance({ status: ranOn(NODE, 1, { conditions: [ready('False', 'ContainerRestarting', 1)] }) }), containers: [container()] }),
      expect: ['Run restart existing=c1 ports=31234', 'ReportReady'],
    },
  ];

  for (const { name, facts: given, expect, requeueAfterMs } of cases) {
    test(name, () => {
      const plan = planNode(given);
      assert.deepEqual(summary(plan), expect);
      if (requeueAfterMs !== undefined) assert.equal(plan.requeueAfterMs, requeueAfterMs);
    });
  }

  test('a counted crash records the restart and when it is due; every other plan clears the due time', () => {
    const crash = planNode(facts({ instance: instance({ status: ranOn(NODE) }), containers: [container()], exit: died }));
    assert.deepEqual(crash.restart, { count: true, dueAt: NOW + 1_000 });
    const healthy = planNode(facts({ instance: instance({ status: ranOn(NODE) }), containers: [container()] }));
    assert.deepEqual(healthy.restart, { count: false, dueAt: undefined });
  });

  test('re-planning after applying a plan has nothing left to do (idempotency)', () => {
    for (const { name, facts: given } of cases) {
      const first = planNode(given);
      const after = apply(given, first);
      const second = planNode(after);
      const left = second.actions.filter((action) => action.type !== 'RecordHealthy');
      assert.deepEqual(left, [], `${name}: the second pass still acts: ${summary(second).join('; ')}`);
      assert.deepEqual(second.verdicts, [], `${name}: a settled job came back`);
    }
  });
});

/**
 * The world after a plan's actions, as the container operations and the
 * reporter would leave it: jobs settled, exits consumed, the due time kept.
 */
function apply(given: NodeFacts, plan: NodePlan): NodeFacts {
  let containers = [...given.containers];
  let subject = given.instance === undefined ? undefined : structuredClone(given.instance);
  const generation = subject?.metadata.generation ?? 0;
  const setReady = (condition: Condition, fields: InstanceStatus = {}): void => {
    if (subject === undefined) return;
    const rest = (subject.status?.conditions ?? []).filter((c) => c.type !== 'Ready');
    subject = { ...subject, status: { ...subject.status, ...fields, conditions: [...rest, condition] } };
  };
  let ran: ContainerInfo | undefined;
  for (const action of plan.actions) {
    switch (action.type) {
      case 'Remove':
        containers = containers.filter((c) => c.id !== action.container.id);
        break;
      case 'Stop':
        containers = containers.map((c) => (c.id === action.container.id ? { ...c, running: false } : c));
        break;
      case 'Run':
        ran = action.existing === undefined ? container({ id: 'c9' }) : { ...action.existing, running: true };
        containers = [...containers.filter((c) => c.id !== ran?.id), ran];
        break;
      case 'ReportReady':
        setReady(ready('True', 'ContainerReady', generation), { node: NODE, containerId: ran?.id ?? '' });
        break;
      case 'ReportStopped':
        setReady(ready('True', 'ContainerStopped', generation), { node: NODE, ...(action.containerId === undefined ? {} : { containerId: action.containerId }) });
        break;
      case 'ReportRemoved':
        if (action.expired && subject?.status !== undefined) {
          const rest: InstanceStatus = { ...subject.status };
          delete rest.node;
          delete rest.containerId;
          delete rest.endpoints;
          subject = { ...subject, status: rest };
          setReady(ready('True', 'ContainerRemoved', generation));
        }
        break;
      case 'ReportRestarting':
        setReady(ready('False', 'ContainerRestarting', generation));
        break;
      case 'ReportCrashLoop':
        setReady(ready('False', 'CrashLoop', generation));
        break;
      case 'RecordHealthy':
        break;
    }
  }
  return { ...given, instance: subject, containers, jobs: [], exit: undefined, restart: { ...given.restart, dueAt: plan.restart.dueAt } };
}
