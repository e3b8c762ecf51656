import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ContainerInfo } from '../../src/domain/ports.ts';
import { NodeMonitor } from '../../src/controller/node-monitor.ts';
import type { LiveNodeSource } from '../../src/domain/ports.ts';
import type { ChallengeInstance, InstanceStatus } from '../../src/domain/challenge-instance.ts';
import { LABELS } from '../../src/domain/names.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { planDrift, type DriftAction } from '../../src/worker/node-plan.ts';
import { RestartPolicy } from '../../src/worker/restart-policy.ts';

const logger = createLogger('test', 'silent');

describe('NodeMonitor', () => {
  const never: LiveNodeSource = { liveNodes: () => Promise.resolve(new Set()) };
  const monitorAt = (clock: { now: number }) => new NodeMonitor(never, { lostAfterMs: 10_000, pollMs: 1_000, onNodeLost: 'Reschedule' }, logger, () => clock.now);

  test('a node is lost after its heartbeat was missing for lostAfterMs in consecutive reads, and back when it beats again', () => {
    const clock = { now: 0 };
    const monitor = monitorAt(clock);
    assert.deepEqual(monitor.observe(new Set(['a', 'b'])), []);
    clock.now = 1_000;
    assert.deepEqual(monitor.observe(new Set(['b'])), []);
    clock.now = 10_999;
    assert.deepEqual(monitor.observe(new Set(['b'])), []);
    assert.equal(monitor.isNodeLost('a'), false);
    clock.now = 11_000;
    assert.deepEqual(monitor.observe(new Set(['b'])), ['a']);
    assert.equal(monitor.isNodeLost('a'), true);
    assert.equal(monitor.isNodeLost('b'), false);
    clock.now = 12_000;
    assert.deepEqual(monitor.observe(new Set(['a', 'b'])), ['a']);
    assert.equal(monitor.isNodeLost('a'), false);
  });

  test('failed reads declare nothing lost, and after a gap every missing node gets a fresh grace period', () => {
    const clock = { now: 0 };
    const monitor = monitorAt(clock);
    monitor.observe(new Set(['a']));
    clock.now = 1_000;
    monitor.observe(new Set());
    clock.now = 30_000;
    assert.deepEqual(monitor.observe(undefined), []);
    assert.equal(monitor.isNodeLost('a'), false);
    // Redis came back empty (wiped): 'a' has until 40 s to beat again.
    clock.now = 35_000;
    assert.deepEqual(monitor.observe(new Set()), []);
    clock.now = 39_000;
    assert.deepEqual(monitor.observe(new Set(['a'])), []);
    assert.equal(monitor.isNodeLost('a'), false);
  });

  test('a node only named by an instance (never seen beating) is lost once the grace period passes', () => {
    const clock = { now: 0 };
    const monitor = monitorAt(clock);
    monitor.observe(new Set());
    assert.equal(monitor.isNodeLost('ghost'), false);
    clock.now = 1_000;
    monitor.observe(new Set());
    clock.now = 11_000;
    assert.deepEqual(monitor.observe(new Set()), ['ghost']);
  });

  test('a node lost before a gap in the reads stays lost after it', () => {
    const clock = { now: 0 };
    const monitor = monitorAt(clock);
    monitor.observe(new Set(['a']));
    clock.now = 1_000;
    monitor.observe(new Set());
    clock.now = 12_000;
    assert.deepEqual(monitor.observe(new Set()), ['a']);
    monitor.observe(undefined);
    clock.now = 13_000;
    assert.deepEqual(monitor.observe(new Set()), []);
    assert.equal(monitor.isNodeLost('a'), true);
  });
});

describe('RestartPolicy', () => {
  test('backs off exponentially up to a maximum, gives up past the limit, and forgets restarts that left the window', () => {
    const policy = new RestartPolicy({ limit: 3, windowMs: 60_000, backoffMs: 1_000, maxBackoffMs: 3_000 });
    assert.deepEqual(policy.next('u/1', 0), { restart: true, attempt: 1, delayMs: 1_000 });
    assert.deepEqual(policy.next('u/1', 1_000), { restart: true, attempt: 2, delayMs: 2_000 });
    assert.deepEqual(policy.next('u/1', 2_000), { restart: true, attempt: 3, delayMs: 3_000 });
    assert.deepEqual(policy.next('u/1', 3_000), { restart: false, restarts: 3 });
    assert.deepEqual(policy.next('u/2', 3_000), { restart: true, attempt: 1, delayMs: 1_000 }, 'a new generation starts afresh');
    assert.deepEqual(policy.next('u/1', 61_500), { restart: true, attempt: 2, delayMs: 2_000 }, 'the first two restarts left the window');
  });

  test('restarts forgiven since a moment no longer count, for every key; earlier ones still do', () => {
    const policy = new RestartPolicy({ limit: 2, windowMs: 60_000, backoffMs: 1_000, maxBackoffMs: 8_000 });
    policy.next('u/1', 0);
    policy.next('u/1', 10_000);
    policy.next('v/1', 10_000);
    policy.forgiveSince(5_000);
    assert.deepEqual(policy.next('u/1', 11_000), { restart: true, attempt: 2, delayMs: 2_000 }, 'only the restart at 0 still counts');
    assert.deepEqual(policy.next('u/1', 12_000), { restart: false, restarts: 2 });
    assert.deepEqual(policy.next('v/1', 12_000), { restart: true, attempt: 1, delayMs: 1_000 }, 'a key with nothing left starts afresh');
  });

  test('a limit of 0 never restarts', () => {
    assert.deepEqual(new RestartPolicy({ limit: 0, windowMs: 1_000, backoffMs: 1, maxBackoffMs: 1 }).next('u/1', 0), { restart: false, restarts: 0 });
  });
});

describe('planDrift', () => {
  const NOW = 1_000_000;
  const node = 'node-a';
  let serial = 0;

  function subject(name: string, status: InstanceStatus | undefined, extra: { deleting?: boolean; desiredState?: 'Running' | 'Stopped'; generation?: number } = {}): ChallengeInstance {
    serial += 1;
    const result: ChallengeInstance = {
      metadata: { namespace: 'ctf', name, uid: `00000000-0000-4000-8000-${String(serial).padStart(12, '0')}`, generation: extra.generation ?? 1 },
      spec: { team: 't', challenge: 'c', image: 'i', imagePullPolicy: 'IfNotPresent', ports: [], desiredState: extra.desiredState ?? 'Running', priority: 0 },
    };
    if (status !== undefined) result.status = status;
    if (extra.deleting === true) result.metadata.deletionTimestamp = '2026-11-21T12:00:00Z';
    return result;
  }
  const readyOn = (where: string, reason = 'ContainerReady', status: 'True' | 'False' = 'True'): InstanceStatus => ({
    node: where,
    phase: 'Running',
    conditions: [{ type: 'Ready', status, reason, message: '', lastTransitionTime: '2026-11-21T11:00:00Z', observedGeneration: 1 }],
  });
  function containerOf(instance: ChallengeInstance, overrides: Partial<ContainerInfo> = {}): ContainerInfo {
    return {
      id: `id-${instance.metadata.name}`,
      name: `ctfleet-${instance.metadata.namespace}_${instance.metadata.name}`,
      running: true,
      exitCode: undefined,
      labels: { [LABELS.uid]: instance.metadata.uid, [LABELS.node]: 'node-a' },
      hostPorts: [31000],
      createdAt: NOW - 60_000,
      ...overrides,
    };
  }
  const summary = (actions: DriftAction[]): string[] =>
    actions.map((action) => (action.type === 'remove' ? `remove ${action.container.name} ${action.reason}` : action.type === 'stop' ? `stop ${action.container.name}` : `${action.type} ${action.instance.metadata.name}`)).sort();

  test('keeps what matches, removes orphans (never another node\'s or an unlabelled container), stops what should be stopped and revives what is missing or stopped', () => {
    const healthy = subject('healthy', readyOn(node));
    const missing = subject('missing', readyOn(node));
    const exited = subject('exited', readyOn(node));
    const elsewhere = subject('elsewhere', readyOn('node-b'));
    const deleting = subject('deleting', readyOn(node), { deleting: true });
    const stopped = subject('stopped', readyOn(node), { desiredState: 'Stopped' });
    const expired = subject('expired', { ...readyOn(node, 'ContainerRemoved', 'True'), phase: 'Expired' });
    const ghost = subject('ghost', undefined);
    const actions = planDrift({
      node,
      namespaces: [],
      instances: [healthy, missing, exited, elsewhere, deleting, stopped, expired],
      containers: [
        containerOf(healthy),
        containerOf(healthy, { id: 'dup', name: 'ctfleet-ctf_copy' }),
        containerOf(exited, { running: false }),
        containerOf(elsewhere),
        containerOf(deleting),
        containerOf(stopped),
        containerOf(expired),
        containerOf(ghost),
        containerOf(ghost, { id: 'theirs', name: 'ctfleet-ctf_theirs', labels: { [LABELS.uid]: 'other', [LABELS.node]: 'node-b' } }),
        containerOf(ghost, { id: 'unlabelled', name: 'ctfleet-ctf_unlabelled', labels: { [LABELS.uid]: 'old' } }),
      ],
      isBusy: () => false,
      now: NOW,
      graceMs: 15_000,
    });
    assert.deepEqual(summary(actions), [
      'healthy healthy',
      'remove ctfleet-ctf_copy Duplicate',
      'remove ctfleet-ctf_deleting InstanceDeleting',
      'remove ctfleet-ctf_elsewhere PlacedElsewhere',
      'remove ctfleet-ctf_expired Expired',
      'remove ctfleet-ctf_ghost NoInstance',
      'revive exited',
      'revive missing',
      'stop ctfleet-ctf_stopped',
    ]);
  });

  test('with namespaces set, containers and instances of other namespaces are left alone', () => {
    const stranger = subject('stranger', undefined);
    const actions = planDrift({
      node,
      namespaces: ['other'],
      instances: [],
      containers: [{ ...containerOf(stranger), labels: { [LABELS.uid]: stranger.metadata.uid, [LABELS.node]: node, [LABELS.namespace]: 'ctf' } }],
      isBusy: () => false,
      now: NOW,
      graceMs: 0,
    });
    assert.deepEqual(actions, []);
  });

  test('leaves alone young containers (and their instances, with every container of their uid), busy uids, and instances that are not ready for their generation', () => {
    const ghost = subject('ghost', undefined);
    const busy = subject('busy', readyOn(node));
    const pending = subject('pending', readyOn(node), { generation: 2 });
    const restarting = subject('restarting', readyOn(node, 'ContainerRestarting', 'False'));
    // Just started and reported: its container is in the grace, its status names the node.
    const fresh = subject('fresh', readyOn(node));
    const actions = planDrift({
      node,
      namespaces: [],
      instances: [busy, pending, restarting, fresh],
      containers: [containerOf(ghost, { createdAt: NOW - 1_000 }), containerOf(busy, { running: false }), containerOf(fresh, { createdAt: NOW - 1_000 }), containerOf(fresh, { id: 'older-copy', name: 'ctfleet-ctf_fresh-copy' })],
      isBusy: (uid) => uid === busy.metadata.uid,
      now: NOW,
      graceMs: 15_000,
    });
    assert.deepEqual(summary(actions), ['revive restarting']);
  });
});
