import {
  findCondition,
  type ChallengeInstance,
  type Condition,
  type LastJob,
  type Phase,
} from '../domain/challenge-instance.ts';
import { boundText, kubeTime, mergeCondition } from '../domain/conditions.ts';
import { decodeJobFailure, jobIdFor, type JobAction, type JobState } from '../domain/jobs.ts';
import { FINALIZER } from '../domain/names.ts';
import { CONTROLLER_REASONS, GITOPS_CONDITIONS, isPermanentReason, isServing, NODE_LOST, READY_REASONS } from '../domain/reasons.ts';

/**
 * What the controller knows of the last job it enqueued for an instance, read from
 * the queue. `missing` means the queue no longer has it (completed and cleaned up,
 * or Redis lost its keys).
 */
export interface JobObservation {
  id: string;
  state: JobState | 'missing';
  failedReason?: string;
  attempts?: number;
  /** When the job entered the queue, ms since the epoch (BullMQ's job timestamp). */
  queuedAt?: number;
}

/** A side effect the reconciler must carry out. */
export type Action =
  | { type: 'AddFinalizer' }
  | { type: 'RemoveFinalizer' }
  | { type: 'DeleteResource' }
  | { type: 'Enqueue'; action: JobAction; jobId: string; generation: number; node: string | undefined };

/** The status fields the controller owns (the worker owns node, endpoints, Ready…). */
export interface ControllerStatus {
  phase: Phase;
  reason: string;
  message: string;
  observedGeneration: number;
  conditions: Condition[];
  lastJob?: LastJob;
  expiresAt?: string;
  reschedules?: number;
}

/** What happens when an instance's lifetime (`spec.ttlSeconds`, or the maximum without one) ends. */
export interface LifetimePolicy {
  /** Lifetimes are capped here, however long `ttlSeconds` asks for; an instance without `ttlSeconds` lives this long. */
  maxLifetimeSeconds: number;
  /** Keep: remove the container, keep the resource as `Expired`. Delete: delete the resource. */
  onExpiry: 'Keep' | 'Delete';
}

export const DEFAULT_LIFETIME_POLICY: LifetimePolicy = { maxLifetimeSeconds: 7 * 24 * 3600, onExpiry: 'Keep' };

/** What the controller knows of the worker nodes, and what to do when one is lost. */
export interface NodePolicy {
  /** True when the node's worker stopped sending heartbeats long enough ago to count as lost. */
  isNodeLost(node: string): boolean;
  /** Reschedule: start the instance on another worker (new endpoint). Keep: wait for the node. */
  onNodeLost: 'Reschedule' | 'Keep';
}

export const NO_LOST_NODES: NodePolicy = { isNodeLost: () => false, onNodeLost: 'Reschedule' };

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface Plan {
  actions: Action[];
  /**
   * Undefined when there is nothing to write: the object is gone for good
   * (finalizer removed), or a fresh instance's first status is held back
   * ({@link FIRST_STATUS_GRACE_MS}).
   */
  status: ControllerStatus | undefined;
  events: PlannedEvent[];
  requeueAfterMs: number;
}

/** How soon to look again, by how settled the instance is. */
export const REQUEUE = {
  /**
   * Something is in flight; its completion also wakes us, this is the safety net.
   * A job that has waited longer is looked at less often (half its age so far, up
   * to `busyMax`): a burst of 500 queued for minutes was polled every 5 s, ~20
   * Redis reads of each job while it waited (docs/benchmark.md).
   */
  busy: 5_000,
  busyMax: 30_000,
  /** Nothing to do: a periodic resync repairs anything missed. */
  settled: 5 * 60_000,
} as const;

/**
 * A fresh instance's first controller status, while its start is only in flight
 * (Scheduled, Starting), is held back this long from its creation by default
 * (`CTFLEET_FIRST_STATUS_GRACE_SECONDS`): most starts are Running sooner, and
 * their first status write then says Running. A fresh start thus costs three
 * Kubernetes writes (finalizer, the worker's Ready, the controller's Running)
 * instead of four; one still waiting at the end of the grace gets its Scheduled
 * or Starting status then, so `kubectl get` tells the story of a queue that is
 * backed up. The Events wait with the status. A longer grace saves that fourth
 * write in bursts whose queue wait it covers, at the price of an empty phase
 * meanwhile; 0 writes every first status at once.
 */
export const FIRST_STATUS_GRACE_MS = 3_000;

/** The safety net's delay while something is in flight: longer the longer the job has waited in the queue. */
export function busyRequeueMs(job: JobObservation | undefined, now: Date): number {
  const inFlight = job !== undefined && job.state !== 'missing' && job.state !== 'failed' && job.state !== 'completed';
  if (!inFlight || job.queuedAt === undefined) return REQUEUE.busy;
  const waited = now.getTime() - job.queuedAt;
  return Math.min(REQUEUE.busyMax, Math.max(REQUEUE.busy, Math.round(waited / 2)));
}

/**
 * Decides what an instance needs, from the newest object and the state of the last
 * job enqueued for it. Pure: no I/O, no clock but `now`, no logging. `instance`
 * carries its effective spec (its Challenge's, for a `challengeRef`); `unresolved`
 * says why it has none (ChallengeNotFound, InvalidSpec): it fails, unless its
 * container already runs this generation.
 *
 * Guarantees: applying the returned actions and status, then planning again with
 * the same observations, yields no actions and the same status (idempotent).
 */
export function plan(
  instance: ChallengeInstance,
  lastJob: JobObservation | undefined,
  now: Date,
  lifetime: LifetimePolicy = DEFAULT_LIFETIME_POLICY,
  nodes: NodePolicy = NO_LOST_NODES,
  unresolved?: { reason: string; message: string },
  firstStatusGraceMs = FIRST_STATUS_GRACE_MS,
): Plan {
  const { metadata, spec } = instance;
  const status = instance.status ?? {};
  const generation = metadata.generation;
  const hasFinalizer = metadata.finalizers?.includes(FINALIZER) ?? false;
  const ready = findCondition(status, 'Ready');
  const known = status.lastJob;
  const job = known !== undefined && lastJob?.id === known.id ? lastJob : undefined;
  const hasContainer = status.containerId !== undefined && status.containerId !== '';
  const expiredThisGeneration = status.phase === 'Expired' && status.observedGeneration === generation;
  const reschedules = status.reschedules ?? 0;
  const node = status.node === undefined || status.node === '' ? undefined : status.node;
  const nodeLost = node !== undefined && nodes.isNodeLost(node);
  const expiresAt = expiryOf(spec.ttlSeconds, status.startedAt, lifetime) ?? (expiredThisGeneration ? status.expiresAt : undefined);

  const decide = (
    nextPhase: Phase,
    nextReason: string,
    nextText: string,
    actions: Action[] = [],
    lastJobStatus: LastJob | undefined = known,
    nextReschedules = reschedules,
  ): Plan => {
    // A start in flight is not worth a write of its own: a status that already
    // says this generation's start job is queued stays as written while a worker
    // takes and runs it (Scheduled → Starting is left out); its end is written.
    const coalesced =
      isStartInFlight(nextPhase, nextReason) && isStartInFlight(status.phase, status.reason) &&
      status.observedGeneration === generation && status.lastJob?.id === lastJobStatus?.id && actions.length === 0;
    const phase = coalesced && status.phase !== undefined ? status.phase : nextPhase;
    const reason = coalesced ? (status.reason ?? nextReason) : nextReason;
    const text = coalesced ? (status.message ?? nextText) : nextText;
    // A job's failure or the worker's message may quote a container's output.
    const message = boundText(text);
    const settled = actions.length === 0 && ['Running', 'Stopped', 'Failed', 'Expired'].includes(phase);
    const conditions = [
      scheduledCondition(phase, reason, message, generation, node),
      // An expiry whose container is still being removed is still on its way.
      ...progressConditions(phase, reason, message, generation, settled && !(phase === 'Expired' && isPending('expire'))),
    ].map((condition) => mergeCondition(findCondition(status, condition.type), condition, now));
    const next: ControllerStatus = { phase, reason, message, observedGeneration: generation, conditions };
    if (lastJobStatus !== undefined) next.lastJob = lastJobStatus;
    if (expiresAt !== undefined) next.expiresAt = expiresAt;
    if (nextReschedules > 0) next.reschedules = nextReschedules;
    const events: PlannedEvent[] =
      status.phase === phase && (status.reason ?? '') === reason
        ? []
        : [{ type: phase === 'Failed' || reason === NODE_LOST ? 'Warning' : 'Normal', reason: eventReason(phase, reason), message }];
    // A job enqueued by this pass is new: the one observed is not the one in flight.
    let requeueAfterMs: number = settled ? REQUEUE.settled : actions.some((action) => action.type === 'Enqueue') ? REQUEUE.busy : busyRequeueMs(job, now);
    // Expiry is driven by requeue-after: the pass at expiresAt removes the container.
    if (phase === 'Running' && expiresAt !== undefined) requeueAfterMs = Math.min(requeueAfterMs, Math.max(0, Date.parse(expiresAt) - now.getTime()));
    const holdBackMs = firstStatusHoldBack(instance, phase, now, firstStatusGraceMs);
    if (holdBackMs > 0) return { actions, status: undefined, events: [], requeueAfterMs: Math.min(requeueAfterMs, holdBackMs) };
    return { actions, status: next, events, requeueAfterMs };
  };

  const enqueue = (action: JobAction, target: string | undefined, phase: Phase, reason: string, message: string, moves = reschedules): Plan => {
    const jobId = jobIdFor(metadata.uid, generation, action, moves);
    return decide(phase, reason, message, [{ type: 'Enqueue', action, jobId, generation, node: target }], { id: jobId, action }, moves);
  };

  // A job counts as ours when the status records it and the queue still knows it,
  // or it finished; a job the queue lost is as good as never enqueued.
  const isPending = (action: JobAction): boolean =>
    known?.action === action &&
    known.id === jobIdFor(metadata.uid, generation, action, reschedules) &&
    job !== undefined &&
    job.state !== 'missing' &&
    job.state !== 'failed' &&
    job.state !== 'completed';
  const hasFailed = (action: JobAction): boolean =>
    known?.id === jobIdFor(metadata.uid, generation, action, reschedules) && job?.state === 'failed';

  // ---- deletion
  if (metadata.deletionTimestamp !== undefined) {
    if (!hasFinalizer) return { actions: [], status: undefined, events: [], requeueAfterMs: REQUEUE.settled };
    const deleteDone =
      known?.action === 'delete' && known.id === jobIdFor(metadata.uid, generation, 'delete') && job?.state === 'completed';
    // A lost node's queue is not served: its worker removes the container in its
    // first sweep if it ever returns, so deletion does not wait for it.
    if (!hasContainer || deleteDone || nodeLost) {
      // A start job still in the queue is skipped by the worker once it sees the
      // deletion; wait for it so it cannot leave a container behind.
      if (isPending('start')) return decide('Terminating', CONTROLLER_REASONS.waitingForStartJob, 'Waiting for the in-flight start job to finish before cleanup.');
      const message = nodeLost && !deleteDone
        ? `Released ChallengeInstance ${metadata.namespace}/${metadata.name}: node ${node} is lost, and its worker removes the container if it returns`
        : `Removed container and finalizer of ChallengeInstance ${metadata.namespace}/${metadata.name}`;
      return { actions: [{ type: 'RemoveFinalizer' }], status: undefined, events: [{ type: 'Normal', reason: CONTROLLER_REASONS.deleted, message }], requeueAfterMs: REQUEUE.settled };
    }
    if (isPending('delete')) return decide('Terminating', CONTROLLER_REASONS.removingContainer, `Removing the container on node ${status.node ?? 'unknown'}.`);
    if (hasFailed('delete')) {
      return decide('Terminating', CONTROLLER_REASONS.cleanupFailed, `Removing the container failed: ${job?.failedReason ?? 'unknown error'}; retrying.`, [
        { type: 'Enqueue', action: 'delete', jobId: jobIdFor(metadata.uid, generation, 'delete'), generation, node: status.node },
      ]);
    }
    return enqueue('delete', status.node, 'Terminating', CONTROLLER_REASONS.removingContainer, `Removing the container on node ${status.node ?? 'unknown'}.`);
  }

  // ---- finalizer first: the reconciler sends it with the first job (see reconciler.ts)
  if (!hasFinalizer) {
    return { actions: [{ type: 'AddFinalizer' }], status: undefined, events: [], requeueAfterMs: REQUEUE.busy };
  }

  const readyForThisGeneration = ready !== undefined && ready.observedGeneration === generation;

  // ---- desired: Stopped
  if (spec.desiredState === 'Stopped') {
    if (!hasContainer || (readyForThisGeneration && ready.reason === READY_REASONS.stopped)) {
      return decide('Stopped', CONTROLLER_REASONS.stopped, 'The instance is stopped as requested.');
    }
    if (nodeLost) return decide('Stopped', NODE_LOST, `Node ${node} is lost; its worker stops the container if it returns.`);
    if (isPending('stop')) return decide('Stopping', CONTROLLER_REASONS.stoppingContainer, `Stopping the container on node ${status.node ?? 'unknown'}.`);
    if (hasFailed('stop')) return decide('Failed', CONTROLLER_REASONS.stopFailed, `Stopping the container failed: ${job?.failedReason ?? 'unknown error'}.`);
    return enqueue('stop', status.node, 'Stopping', CONTROLLER_REASONS.stoppingContainer, `Stopping the container on node ${status.node ?? 'unknown'}.`);
  }

  // ---- desired: Running, but there is nothing to run: its Challenge is missing
  // or refuses it. A container already running keeps its Challenge's generation.
  if (unresolved !== undefined && !(readyForThisGeneration && isServing(ready))) {
    return decide('Failed', unresolved.reason, unresolved.message);
  }

  // ---- desired: Running, but its lifetime is over
  const lifetimeOver = expiresAt !== undefined && Date.parse(expiresAt) <= now.getTime();
  if (lifetimeOver || expiredThisGeneration) {
    const ended = `The lifetime ended at ${expiresAt ?? 'an earlier time'}`;
    if (lifetime.onExpiry === 'Delete') {
      return decide('Expired', CONTROLLER_REASONS.lifetimeEnded, `${ended}; deleting the instance.`, [{ type: 'DeleteResource' }]);
    }
    if (!hasContainer) return decide('Expired', CONTROLLER_REASONS.lifetimeEnded, `${ended}; the container was removed.`);
    if (nodeLost) return decide('Expired', CONTROLLER_REASONS.lifetimeEnded, `${ended}; node ${node} is lost, and its worker removes the container if it returns.`);
    if (isPending('expire')) return decide('Expired', CONTROLLER_REASONS.lifetimeEnded, `${ended}; removing the container.`);
    return enqueue('expire', status.node, 'Expired', CONTROLLER_REASONS.lifetimeEnded, `${ended}; removing the container.`);
  }

  // ---- desired: Running, on a node that stopped sending heartbeats
  if (nodeLost) {
    const lost = `Node ${node} stopped sending heartbeats`;
    if (nodes.onNodeLost === 'Keep') return decide('Pending', NODE_LOST, `${lost}; waiting for it to return (node-lost policy Keep).`);
    const current = jobIdFor(metadata.uid, generation, 'start', reschedules);
    if (reschedules > 0 && known?.id === current && job !== undefined) {
      if (job.state === 'failed') return decide('Failed', reasonOfFailure(job.failedReason), job.failedReason ?? 'The rescheduled start job failed.');
      if (job.state !== 'missing') return decide('Scheduled', NODE_LOST, `${lost}; rescheduled, waiting for another worker to start it.`);
      return enqueue('start', undefined, 'Scheduled', NODE_LOST, `${lost}; rescheduling on another worker.`);
    }
    return enqueue('start', undefined, 'Scheduled', NODE_LOST, `${lost}; rescheduling on another worker.`, reschedules + 1);
  }

  // ---- desired: Running
  if (readyForThisGeneration && ready.status === 'False' && ready.reason === READY_REASONS.restarting) {
    return decide('Starting', READY_REASONS.restarting, ready.message);
  }
  if (readyForThisGeneration && isServing(ready)) {
    return decide('Running', READY_REASONS.ready, ready.message);
  }
  if (readyForThisGeneration && ready.status === 'False' && isPermanentReason(ready.reason)) {
    return decide('Failed', ready.reason, ready.message);
  }
  if (isPending('start')) {
    const active = job?.state === 'active';
    return decide(
      active ? 'Starting' : 'Scheduled',
      active ? CONTROLLER_REASONS.startingContainer : CONTROLLER_REASONS.waitingForWorker,
      active ? 'A worker is starting the container.' : 'Queued a start job; waiting for a worker to take it.',
    );
  }
  if (hasFailed('start')) {
    const reason = reasonOfFailure(job?.failedReason);
    return decide('Failed', reason, job?.failedReason ?? 'The start job failed.');
  }
  // Sticky placement: a container that exists stays on its node, where the worker
  // replaces it in place (and keeps its ports when it can).
  return enqueue('start', hasContainer ? status.node : undefined, 'Scheduled', CONTROLLER_REASONS.waitingForWorker, 'Queued a start job; waiting for a worker to take it.');
}

/** Scheduled or Starting because a start job is queued or running (not a restart, not a lost node). */
function isStartInFlight(phase: Phase | undefined, reason: string | undefined): boolean {
  return (phase === 'Scheduled' && reason === CONTROLLER_REASONS.waitingForWorker) || (phase === 'Starting' && reason === CONTROLLER_REASONS.startingContainer);
}

/**
 * How much longer a fresh instance's in-flight status is held back (0: write it
 * now). Only an instance the controller never wrote a status for, only phases on
 * the way to Running, only within `graceMs` of its creation.
 */
function firstStatusHoldBack(instance: ChallengeInstance, phase: Phase, now: Date, graceMs: number): number {
  if (instance.status?.phase !== undefined || (phase !== 'Scheduled' && phase !== 'Starting')) return 0;
  const created = Date.parse(instance.metadata.creationTimestamp ?? '');
  if (Number.isNaN(created)) return 0;
  return Math.max(0, created + graceMs - now.getTime());
}

/** The stable code a failed job carries; JobFailed for an unstructured failure. */
function reasonOfFailure(failedReason: string | undefined): string {
  return decodeJobFailure(failedReason).code;
}

/**
 * Scheduled says where the instance stands with the workers: queued for one,
 * placed on a node, or not placed because it failed or is not wanted running.
 */
function scheduledCondition(phase: Phase, reason: string, message: string, generation: number, node: string | undefined): Omit<Condition, 'lastTransitionTime'> {
  const base = { type: 'Scheduled', observedGeneration: generation };
  if (phase === 'Failed' || reason === NODE_LOST) return { ...base, status: 'False', reason, message };
  if (node !== undefined && node !== '') return { ...base, status: 'True', reason: CONTROLLER_REASONS.placed, message: `Placed on node ${node}.` };
  if (phase === 'Scheduled' || phase === 'Starting') return { ...base, status: 'True', reason: CONTROLLER_REASONS.queued, message: 'Queued for the workers; the first with free capacity takes it.' };
  return { ...base, status: 'False', reason: CONTROLLER_REASONS.notPlaced, message: 'No container is placed on a node.' };
}

/**
 * Reconciling and Stalled, the pair GitOps engines read (kstatus): a Failed
 * instance is Stalled (it will not run without a change to it or its Challenge);
 * one with work in flight or a phase on the way somewhere is Reconciling; a
 * settled one (Running, Stopped, Expired, nothing to do) is neither. The worker's
 * Ready condition says whether the container serves.
 */
function progressConditions(phase: Phase, reason: string, message: string, generation: number, settled: boolean): Omit<Condition, 'lastTransitionTime'>[] {
  const stalled = phase === 'Failed';
  const reconciling = !stalled && !settled;
  const base = { observedGeneration: generation };
  return [
    reconciling
      ? { ...base, type: GITOPS_CONDITIONS.reconciling, status: 'True', reason, message }
      : { ...base, type: GITOPS_CONDITIONS.reconciling, status: 'False', reason: phase, message: `Nothing in progress: the instance is ${phase}.` },
    stalled
      ? { ...base, type: GITOPS_CONDITIONS.stalled, status: 'True', reason, message }
      : { ...base, type: GITOPS_CONDITIONS.stalled, status: 'False', reason: phase, message: `Not stalled: the instance is ${phase}.` },
  ];
}

/**
 * startedAt + ttl, capped by the policy's maximum; without a ttl, startedAt + the
 * maximum (no instance runs for ever). Undefined until the container has started.
 */
function expiryOf(ttlSeconds: number | undefined, startedAt: string | undefined, lifetime: LifetimePolicy): string | undefined {
  if (startedAt === undefined) return undefined;
  const started = Date.parse(startedAt);
  if (Number.isNaN(started)) return undefined;
  return kubeTime(new Date(started + Math.min(ttlSeconds ?? lifetime.maxLifetimeSeconds, lifetime.maxLifetimeSeconds) * 1000));
}

function eventReason(phase: Phase, reason: string): string {
  if (phase === 'Failed' || reason === NODE_LOST || reason === READY_REASONS.restarting) return reason;
  return phase;
}
