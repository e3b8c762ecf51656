import { isDeepStrictEqual } from 'node:util';
import { findCondition, type ChallengeInstance, type Condition, type Endpoint, type InstanceStatus } from '../domain/challenge-instance.ts';
import { boundText, kubeTime, mergeCondition } from '../domain/conditions.ts';
import { isNotFound } from '../domain/errors.ts';
import type { JobTarget } from '../domain/jobs.ts';
import { FIELD_MANAGERS, LABELS } from '../domain/names.ts';
import { OBSERVED_REFRESH_MS, type Clock, type ContainerInfo, type InstanceApi, type ObservedState, type ObservedStateStore } from '../domain/ports.ts';
import { READY_REASONS } from '../domain/reasons.ts';
import type { Logger } from '../observability/logger.ts';

/**
 * The worker's one writer: every status field the worker owns (`node`,
 * `containerId`, `endpoints`, `startedAt`, the Ready condition, as field manager
 * ctfleet-worker), the observed state in Redis, and the worker's Events.
 *
 * Server-side apply removes the fields this manager set before and omits now, so
 * each report names the whole set of fields it keeps. A report that would change
 * nothing the worker owns is not sent: the worker's own writes never wake anyone.
 */
export class StatusReporter {
  private readonly api: InstanceApi;
  private readonly observed: ObservedStateStore;
  private readonly node: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** What this process last wrote to Redis for each instance uid, and when. */
  private readonly recorded = new Map<string, { state: RecordedState; at: number }>();
  /** Counts the losses of Redis's keys {@link checkStore} found. */
  private epoch = 0;

  constructor(deps: { api: InstanceApi; observed: ObservedStateStore; node: string; clock: Clock; logger: Logger }) {
    this.api = deps.api;
    this.observed = deps.observed;
    this.node = deps.node;
    this.clock = deps.clock;
    this.logger = deps.logger;
  }

  /**
   * The container runs and is ready for `generation`. False when the instance was
   * deleted meanwhile (nothing will ask for the container again).
   */
  async ready(instance: ChallengeInstance, generation: number, container: ContainerInfo, endpoints: Endpoint[]): Promise<boolean> {
    // The lifetime runs from the first start of this generation: a restart, a
    // re-created container or a move to another node does not reset it.
    const readyBefore = findCondition(instance.status, 'Ready');
    const sameGeneration = readyBefore?.observedGeneration === generation && readyBefore.reason !== READY_REASONS.removed;
    const previousStart = instance.status?.containerId === container.id || sameGeneration ? instance.status?.startedAt : undefined;
    // Which Challenge generation runs: from the container, which keeps the one it was made from.
    const ref = instance.spec.challengeRef;
    const challengeGeneration = Number(container.labels[LABELS.challengeGeneration]);
    try {
      await this.apply(instance, {
        node: this.node,
        containerId: container.id,
        endpoints,
        ...(ref === undefined || !Number.isInteger(challengeGeneration) ? {} : { challenge: { name: ref.name, generation: challengeGeneration } }),
        startedAt: previousStart ?? kubeTime(new Date(this.clock.now())),
        conditions: [this.readyCondition(instance, 'True', READY_REASONS.ready, `Container is ready on node ${this.node}.`, generation)],
      });
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    await this.record(instance.metadata, { state: 'running', reason: READY_REASONS.ready, containerId: container.id, endpoints, generation });
    return true;
  }

  /**
   * Before a sweep's refreshes: when Redis lost its keys since the last sweep,
   * every healthy instance's state is written again, not only the stale ones.
   */
  async checkStore(): Promise<void> {
    if (!(await this.observed.lostSince(this.node))) return;
    this.recorded.clear();
    // A write in flight may have landed before the loss: it must not count as recorded.
    this.epoch += 1;
  }

  /**
   * Refreshes Redis's observed state of a container that runs as it should: a
   * state this process wrote as it is within OBSERVED_REFRESH_MS is not written
   * again (a sweep of 500 running instances wrote 500 hashes every 30 s); a Redis
   * that lost its keys is caught by {@link checkStore} at once.
   */
  async healthy(instance: ChallengeInstance, container: ContainerInfo): Promise<void> {
    const { generation, uid } = instance.metadata;
    const state = { state: 'running', reason: READY_REASONS.ready, containerId: container.id, generation, ...(instance.status?.endpoints === undefined ? {} : { endpoints: instance.status.endpoints }) } as const;
    const last = this.recorded.get(uid);
    if (last !== undefined && this.clock.now() - last.at < OBSERVED_REFRESH_MS && isDeepStrictEqual(last.state, state)) return;
    await this.record(instance.metadata, state);
  }

  /** Forgets what was recorded of instances not in `uids` (gone from this node). */
  forgetOthers(uids: ReadonlySet<string>): void {
    for (const uid of this.recorded.keys()) if (!uids.has(uid)) this.recorded.delete(uid);
  }

  /** The container is stopped as the instance asks (`containerId`: the stopped container, if there is one). */
  async stopped(instance: ChallengeInstance | undefined, target: JobTarget, containerId: string | undefined): Promise<void> {
    if (instance !== undefined) {
      const status: InstanceStatus = { node: this.node, conditions: [this.readyCondition(instance, 'True', READY_REASONS.stopped, 'The container is stopped as requested.', target.generation)] };
      if (containerId !== undefined) status.containerId = containerId;
      await this.apply(instance, status);
    }
    await this.record(target, { state: 'stopped', reason: READY_REASONS.stopped, generation: target.generation });
  }

  /** The container is gone; with `instance`, because its lifetime ended (the resource stays, without node or endpoints). */
  async removed(instance: ChallengeInstance | undefined, target: JobTarget): Promise<void> {
    if (instance !== undefined) {
      await this.apply(instance, { conditions: [this.readyCondition(instance, 'True', READY_REASONS.removed, 'The container was removed at the end of its lifetime.', target.generation)] });
    }
    await this.record(target, { state: 'removed', reason: READY_REASONS.removed, generation: target.generation });
  }

  /** Starting failed for good: Ready=False with the failure's code, until the spec changes. */
  async failed(instance: ChallengeInstance, generation: number, code: string, message: string): Promise<void> {
    await this.apply(instance, { node: this.node, conditions: [this.readyCondition(instance, 'False', code, message, generation)] });
    await this.record(instance.metadata, { state: 'failed', reason: code, generation });
  }

  /** The container exited behind ctfleet's back and is being restarted (status and a Warning event). */
  async restarting(instance: ChallengeInstance, message: string): Promise<void> {
    await this.notReady(instance, READY_REASONS.restarting, message);
  }

  /** The container exited more often than the restart policy allows (status and a Warning event). */
  async crashLoop(instance: ChallengeInstance, message: string): Promise<void> {
    await this.notReady(instance, READY_REASONS.crashLoop, message);
  }

  /** Ready=False keeping the container's node, id, endpoints and start time. */
  private async notReady(instance: ChallengeInstance, reason: string, message: string): Promise<void> {
    const { status, metadata } = instance;
    const changed = await this.apply(instance, {
      node: this.node,
      ...(status?.containerId === undefined ? {} : { containerId: status.containerId }),
      ...(status?.endpoints === undefined ? {} : { endpoints: status.endpoints }),
      ...(status?.startedAt === undefined ? {} : { startedAt: status.startedAt }),
      conditions: [this.readyCondition(instance, 'False', reason, message, metadata.generation)],
    });
    await this.record(metadata, { state: 'failed', reason, generation: metadata.generation });
    if (changed) this.warn(instance, reason, message);
  }

  /** The Ready condition, its message bounded to MAX_MESSAGE_BYTES (by mergeCondition): it may quote a container's output. */
  private readyCondition(instance: ChallengeInstance, status: 'True' | 'False', reason: string, message: string, generation: number): Condition {
    return mergeCondition(findCondition(instance.status, 'Ready'), { type: 'Ready', status, reason, message, observedGeneration: generation }, new Date(this.clock.now()));
  }

  /** Applies the worker's fields unless they already read so; true when it wrote. */
  private async apply(instance: ChallengeInstance, status: InstanceStatus): Promise<boolean> {
    if (isDeepStrictEqual(workerFields(instance.status), workerFields(status))) return false;
    await this.api.applyStatus(instance, FIELD_MANAGERS.worker, status);
    return true;
  }

  private async record(where: { namespace: string; name: string; uid: string }, state: RecordedState): Promise<void> {
    this.recorded.delete(where.uid);
    const at = this.clock.now();
    const epoch = this.epoch;
    await this.observed.record(where.uid, { namespace: where.namespace, name: where.name, node: this.node, ...state });
    if (epoch === this.epoch) this.recorded.set(where.uid, { state, at });
  }

  /** A Warning event from the worker, its message bounded as the condition's: best effort, off the critical path. */
  private warn(instance: ChallengeInstance, reason: string, message: string): void {
    void this.api.recordEvent(instance, { type: 'Warning', reason, message: boundText(message) }, 'worker').catch((error: unknown) => {
      this.logger.warn({ err: error, reason, instance: `${instance.metadata.namespace}/${instance.metadata.name}`, uid: instance.metadata.uid }, 'Recording an event failed');
    });
  }
}

type RecordedState = Omit<ObservedState, 'namespace' | 'name' | 'node'>;

/** The status fields the worker owns, as a report would leave them. */
function workerFields(status: InstanceStatus | undefined): unknown {
  return {
    node: status?.node,
    containerId: status?.containerId,
    endpoints: status?.endpoints,
    startedAt: status?.startedAt,
    ready: findCondition(status, 'Ready'),
  };
}
