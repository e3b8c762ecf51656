import { isDeepStrictEqual } from 'node:util';
import type { ChallengeInstance, InstanceStatus } from '../domain/challenge-instance.ts';
import { isFirstStartJob, jobIdFor, nodeQueue, SHARED_QUEUE, type InstanceJob } from '../domain/jobs.ts';
import { FIELD_MANAGERS, FINALIZER } from '../domain/names.ts';
import { specHash } from '../domain/spec-hash.ts';
import { describeError } from '../health/dependency-check.ts';
import { resolveInstanceSpec } from '../domain/challenge.ts';
import type { ChallengeCache, InstanceApi, InstanceCache, JobQueue } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import { plan, type Action, type ControllerStatus, type JobObservation, type LifetimePolicy, type NodePolicy } from './plan.ts';
import type { WorkResult } from '../reconcile/work-queue.ts';
import type { EventBudget } from './event-budget.ts';

export interface ReconcilerDeps {
  lifetime: LifetimePolicy;
  /** How long a fresh instance's first in-flight status is held back (plan.ts); absent: FIRST_STATUS_GRACE_MS. */
  firstStatusGraceMs?: number;
  nodes: NodePolicy;
  cache: InstanceCache;
  /** The Challenges instances name in `spec.challengeRef`; absent, such instances are ChallengeNotFound. */
  challenges?: ChallengeCache;
  api: InstanceApi;
  jobs: JobQueue;
  logger: Logger;
  now: () => Date;
  /** Called with the seconds from creation when an instance first reaches Running. */
  onFirstReady?: (seconds: number) => void;
  /** Normal Events beyond it are left out during bursts; absent: every Event is recorded. */
  events?: EventBudget;
}

/** How long a status write may take to come back through the informer before the cache is trusted again. */
const ECHO_WAIT_MS = 10_000;

/** BullMQ runs lower numbers first; a spec priority of 1000 becomes 1, 0 becomes 1001. */
export function queuePriority(action: Action & { type: 'Enqueue' }, instance: ChallengeInstance): number {
  return action.action === 'start' ? 1001 - instance.spec.priority : 1;
}

/**
 * One reconcile pass: read the newest cached object and its last job, plan, act,
 * write the controller's status once if it changed. Never told why it runs.
 */
export class Reconciler {
  private readonly deps: ReconcilerDeps;
  /**
   * The controller's last status write per key, until the informer brings it
   * back: a pass that runs before the echo (woken by the job's completion, say)
   * plans from what was written, not from the older cached object, and neither
   * writes it again nor records its Event twice.
   */
  private readonly ownWrites = new Map<string, { uid: string; status: InstanceStatus; at: number }>();

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
  }

  private resolve(instance: ChallengeInstance): Resolved {
    const ref = instance.spec.challengeRef;
    const challenge = ref === undefined ? undefined : this.deps.challenges?.get(`${instance.metadata.namespace}/${ref.name}`);
    const resolution = resolveInstanceSpec(instance, challenge, this.deps.lifetime);
    if (!resolution.ok) return { planned: instance, problem: { reason: resolution.reason, message: resolution.message } };
    return { planned: { ...instance, spec: { ...resolution.spec, ...(ref === undefined ? {} : { challengeRef: ref }) } } };
  }

  /** The cached instance with the controller's own newer write laid over it (see {@link ownWrites}). */
  private withOwnWrite(key: string, instance: ChallengeInstance): ChallengeInstance {
    const own = this.ownWrites.get(key);
    if (own === undefined) return instance;
    const echoed = isSameControllerStatus(instance.status, own.status);
    if (own.uid !== instance.metadata.uid || echoed || this.deps.now().getTime() - own.at > ECHO_WAIT_MS) {
      this.ownWrites.delete(key);
      return instance;
    }
    const workers = (instance.status?.conditions ?? []).filter((condition) => condition.type === 'Ready');
    return { ...instance, status: { ...instance.status, ...own.status, conditions: [...workers, ...(own.status.conditions ?? []).filter((condition) => condition.type !== 'Ready')] } };
  }

  async reconcile(key: string): Promise<WorkResult> {
    const { cache, api, jobs, logger, now, lifetime, nodes, firstStatusGraceMs } = this.deps;
    let instance = cache.get(key);
    // Gone from the cache: deleted for good (its finalizer was already released).
    if (instance === undefined) {
      this.ownWrites.delete(key);
      return { requeueAfterMs: null };
    }
    const log = logger.child({ instance: key, uid: instance.metadata.uid, generation: instance.metadata.generation });

    instance = this.withOwnWrite(key, instance);
    const written = instance.status;
    let known = written?.lastJob;
    let observation: JobObservation | undefined;
    if (known !== undefined) {
      const queued = await jobs.inspect(known.queue ?? SHARED_QUEUE, known.id);
      observation = { id: known.id, ...queued };
    } else if (written?.phase === undefined && instance.metadata.finalizers?.includes(FINALIZER) === true) {
      // A fresh instance whose first status is held back (FIRST_STATUS_GRACE_MS)
      // has no lastJob yet: its start job is found by its deterministic id.
      const id = jobIdFor(instance.metadata.uid, instance.metadata.generation, 'start', written?.reschedules ?? 0);
      const queued = await jobs.inspect(SHARED_QUEUE, id);
      if (queued.state !== 'missing') {
        known = { id, action: 'start', queue: SHARED_QUEUE };
        observation = { id, ...queued };
        instance = { ...instance, status: { ...written, lastJob: known } };
      }
    }

    // The spec to plan with: the instance's own, or what its Challenge makes of it.
    // Jobs still carry the hash of the stored spec, which is what the worker checks.
    const resolved = this.resolve(instance);
    let result = plan(resolved.planned, observation, now(), lifetime, nodes, resolved.problem, firstStatusGraceMs);
    // A fresh instance: its finalizer and its first job go out together, planned as
    // if the finalizer were there (waiting for the patch, or for the informer to echo
    // it, cost a round trip before the job). A deletion that wins the race leaves no
    // container behind: the worker skips a job whose instance is gone, removes a
    // container whose Ready write finds it gone, and its sweep removes a container
    // whose instance no longer exists. A refused patch fails the pass, which runs
    // again and enqueues the same job id, which the queue adds only once.
    let finalizerAdded: Promise<string | undefined> | undefined;
    if (result.actions.some((action) => action.type === 'AddFinalizer')) {
      finalizerAdded = api.addFinalizer(instance);
      // Its rejection is the pass's, awaited below; until then it is not unhandled.
      finalizerAdded.catch(() => undefined);
      instance = { ...instance, metadata: { ...instance.metadata, finalizers: [...(instance.metadata.finalizers ?? []), FINALIZER] } };
      result = plan({ ...resolved.planned, metadata: instance.metadata }, observation, now(), lifetime, nodes, resolved.problem, firstStatusGraceMs);
    }
    const enqueued = new Map<string, string>();
    for (const action of result.actions) {
      switch (action.type) {
        case 'AddFinalizer':
          break;
        case 'DeleteResource':
          await api.delete(instance);
          log.info(`Deleted expired ChallengeInstance ${key}`);
          break;
        case 'RemoveFinalizer':
          await api.removeFinalizer(instance);
          log.info(`Removed finalizer of ChallengeInstance ${key}`);
          break;
        case 'Enqueue': {
          const queue = action.node === undefined ? SHARED_QUEUE : nodeQueue(action.node);
          await jobs.enqueue(queue, action.jobId, jobFor(instance, action), queuePriority(action, instance));
          enqueued.set(action.jobId, queue);
          log.info({ job: action.jobId, queue }, `Queued ${action.action} job for ChallengeInstance ${key}`);
          break;
        }
      }
    }
    if (finalizerAdded !== undefined) {
      const resourceVersion = await finalizerAdded;
      log.debug('Added finalizer');
      if (resourceVersion !== undefined) instance = { ...instance, metadata: { ...instance.metadata, resourceVersion } };
    }

    if (result.status !== undefined) {
      const status: InstanceStatus = { ...result.status };
      if (status.lastJob !== undefined) {
        status.lastJob = { ...status.lastJob, queue: enqueued.get(status.lastJob.id) ?? known?.queue ?? SHARED_QUEUE };
      }
      if (!isSameControllerStatus(written, status)) {
        await api.applyStatus(instance, FIELD_MANAGERS.controller, status);
        this.ownWrites.set(key, { uid: instance.metadata.uid, status, at: now().getTime() });
        // First Running of a fresh instance: its first start job of generation 1.
        const created = Date.parse(instance.metadata.creationTimestamp ?? '');
        if (status.phase === 'Running' && written?.phase !== 'Running' && status.lastJob !== undefined && isFirstStartJob(status.lastJob.id, instance.metadata.uid) && !Number.isNaN(created)) {
          this.deps.onFirstReady?.((now().getTime() - created) / 1000);
        }
      }
    }
    // Events are best effort and off the critical path: a slow or refused event
    // never delays the instance.
    for (const event of result.events) {
      if (this.deps.events?.take(event.type) === false) {
        log.debug({ reason: event.reason }, 'Left out a Normal Event: the burst budget is spent');
        continue;
      }
      const subject = instance;
      void api.recordEvent(subject, event, 'controller').catch((error: unknown) => {
        log.warn({ code: (error as { code?: unknown }).code }, `Recording event ${event.reason} failed: ${describeError(error)}`);
      });
    }
    return { requeueAfterMs: result.requeueAfterMs };
  }
}

/** `planned`: the instance with its effective spec; `problem`: why it has none. */
interface Resolved {
  planned: ChallengeInstance;
  problem?: { reason: string; message: string };
}

function jobFor(instance: ChallengeInstance, action: Action & { type: 'Enqueue' }): InstanceJob {
  const { namespace, name, uid } = instance.metadata;
  const job: InstanceJob = { v: 2, action: action.action, target: { namespace, name, uid, generation: action.generation } };
  if (action.action === 'start') job.specHash = specHash(instance.spec);
  return job;
}

/** Compares only the fields the controller owns, so the worker's writes never trigger ours. */
function isSameControllerStatus(current: InstanceStatus | undefined, next: InstanceStatus): boolean {
  const owned = (status: InstanceStatus | undefined): Partial<ControllerStatus> & { lastJob?: unknown } => ({
    phase: status?.phase,
    reason: status?.reason,
    message: status?.message,
    observedGeneration: status?.observedGeneration,
    conditions: (status?.conditions ?? []).filter((condition) => condition.type !== 'Ready'),
    lastJob: status?.lastJob,
    expiresAt: status?.expiresAt,
    reschedules: status?.reschedules,
  });
  return isDeepStrictEqual(owned(current), owned(next));
}

