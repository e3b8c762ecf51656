import type { ChallengeInstance } from '../domain/challenge-instance.ts';
import { challengeKeyOf, type Challenge } from '../domain/challenge.ts';
import { CHALLENGE_FINALIZER, FIELD_MANAGERS } from '../domain/names.ts';
import type { ChallengeApi, ChallengeCache, InstanceApi, InstanceCache, PoolCountSource } from '../domain/ports.ts';
import { describeError } from '../health/dependency-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { WorkResult } from '../reconcile/work-queue.ts';
import { isSameChallengeStatus, planChallenge } from './challenge-plan.ts';

export interface ChallengeReconcilerDeps {
  challenges: ChallengeCache;
  /** The instance cache the instance reconciler runs on: where the counts come from. */
  instances: InstanceCache;
  api: ChallengeApi;
  /** Read from the API server, not the cache, before a finalizer is removed. */
  instanceApi: Pick<InstanceApi, 'list'>;
  logger: Logger;
  now: () => Date;
  /** Pooled Challenges' idle counts, from the workers' heartbeats; absent: reported as 0. */
  pools?: PoolCountSource;
}

/** Pool counts are read at most this often: the workers report every 5 s. */
const POOL_COUNTS_TTL_MS = 2_000;

/**
 * One pass over one Challenge: read it and the instances naming it, plan
 * ({@link planChallenge}), act, write status once if it changed, record Events.
 * Never told why it runs.
 */
export class ChallengeReconciler {
  private readonly deps: ChallengeReconcilerDeps;
  private poolCounts: { at: number; value: Promise<Map<string, { idle: number; target: number }>> } | undefined;

  constructor(deps: ChallengeReconcilerDeps) {
    this.deps = deps;
  }

  async reconcile(key: string): Promise<WorkResult> {
    const { challenges, api, instanceApi, logger, now } = this.deps;
    let challenge = challenges.get(key);
    // Gone from the cache: deleted for good.
    if (challenge === undefined) return { requeueAfterMs: null };
    const log = logger.child({ challenge: key, uid: challenge.metadata.uid, generation: challenge.metadata.generation });

    let instances = this.cachedInstancesOf(key);
    const pool = challenge.spec.pool === undefined ? undefined : (await this.readPoolCounts()).get(key);
    let result = planChallenge(challenge, instances, now(), pool);
    // Finalizer first, then on in the same pass with the object as it now is.
    if (result.actions.some((action) => action.type === 'AddFinalizer')) {
      const resourceVersion = await api.addFinalizer(challenge);
      log.debug(`Added finalizer to Challenge ${key}`);
      challenge = withFinalizer(challenge, resourceVersion);
      result = planChallenge(challenge, instances, now(), pool);
    }
    // Releasing the finalizer cannot be undone: count again from the API server,
    // not the cache. A list made after the cache showed the deletion holds every
    // instance created before it, so an admitted instance the watch has not yet
    // delivered cannot be missed.
    if (result.actions.some((action) => action.type === 'RemoveFinalizer')) {
      instances = (await instanceApi.list([challenge.metadata.namespace])).filter((instance) => challengeKeyOf(instance) === key);
      result = planChallenge(challenge, instances, now(), pool);
    }

    for (const action of result.actions) {
      switch (action.type) {
        case 'AddFinalizer':
          break;
        case 'RemoveFinalizer':
          await api.removeFinalizer(challenge);
          log.info(`Removed finalizer of Challenge ${key}: no instance it admitted remains`);
          break;
      }
    }
    if (result.status !== undefined && !isSameChallengeStatus(challenge.status, result.status)) {
      await api.applyStatus(challenge, FIELD_MANAGERS.controller, result.status);
    }
    // Best effort and after the status write: the condition the event announces is
    // stored first, so a failed write that is retried does not record it twice.
    const subject = challenge;
    for (const event of result.events) {
      void api.recordEvent(subject, event, 'controller').catch((error: unknown) => {
        log.warn({ code: (error as { code?: unknown }).code }, `Recording event ${event.reason} failed: ${describeError(error)}`);
      });
    }
    return { requeueAfterMs: result.requeueAfterMs };
  }

  /** The workers' pool counts, shared by the passes of a few seconds; unreadable (Redis away) reads as none. */
  private async readPoolCounts(): Promise<Map<string, { idle: number; target: number }>> {
    const source = this.deps.pools;
    if (source === undefined) return new Map();
    const at = this.deps.now().getTime();
    if (this.poolCounts === undefined || at - this.poolCounts.at > POOL_COUNTS_TTL_MS) {
      this.poolCounts = { at, value: source.poolCounts().catch((error: unknown) => {
        this.deps.logger.warn({ err: error }, 'Reading the workers\' pool counts failed; pooled Challenges show the last ones known');
        this.poolCounts = undefined;
        return new Map<string, { idle: number; target: number }>();
      }) };
    }
    return this.poolCounts.value;
  }

  private cachedInstancesOf(key: string): ChallengeInstance[] {
    const { instances } = this.deps;
    const found: ChallengeInstance[] = [];
    for (const instanceKey of instances.keys()) {
      const instance = instances.get(instanceKey);
      if (instance !== undefined && challengeKeyOf(instance) === key) found.push(instance);
    }
    return found;
  }
}

function withFinalizer(challenge: Challenge, resourceVersion: string | undefined): Challenge {
  return {
    ...challenge,
    metadata: { ...challenge.metadata, finalizers: [...(challenge.metadata.finalizers ?? []), CHALLENGE_FINALIZER], ...(resourceVersion === undefined ? {} : { resourceVersion }) },
  };
}
