import { isDeepStrictEqual } from 'node:util';
import type { ChallengeInstance, Condition } from '../domain/challenge-instance.ts';
import { challengeKey, challengeKeyOf, isAdmittedBy, type Challenge, type ChallengeStatus } from '../domain/challenge.ts';
import { mergeCondition } from '../domain/conditions.ts';
import { CHALLENGE_FINALIZER } from '../domain/names.ts';
import { CHALLENGE_REASONS, CONTROLLER_REASONS, GITOPS_CONDITIONS } from '../domain/reasons.ts';
import type { PlannedEvent } from './plan.ts';

/** A side effect the Challenge reconciler must carry out. */
export type ChallengeAction = { type: 'AddFinalizer' } | { type: 'RemoveFinalizer' };

export interface ChallengePlan {
  actions: ChallengeAction[];
  /** The status the controller wants; undefined when there is none to write (the Challenge is going, or not ours to keep). */
  status: ChallengeStatus | undefined;
  events: PlannedEvent[];
  requeueAfterMs: number;
}

/** How soon to look at a Challenge again. Instance changes wake it anyway; these are the safety net. */
export const CHALLENGE_REQUEUE = {
  settled: 5 * 60_000,
  /** A pooled Challenge's status follows its pool as the workers report it (every 5 s). */
  pooled: 5_000,
  /** Deletion waits for instances: look more often, in case an instance's deletion went unheard. */
  deletionBlocked: 30_000,
} as const;

/** The instances naming a Challenge, counted. */
export interface InstanceTally {
  /** Every ChallengeInstance naming it, in its namespace (`status.instances.total`). */
  total: number;
  /** Those in phase Running (`status.instances.running`). */
  running: number;
  /** Those it admitted ({@link isAdmittedBy}): what its deletion waits for. */
  holding: number;
}

/** Counts the instances of `instances` that name `challenge` (others are ignored). Pure. */
export function tallyInstances(challenge: Challenge, instances: readonly ChallengeInstance[]): InstanceTally {
  const key = challengeKey(challenge);
  const tally: InstanceTally = { total: 0, running: 0, holding: 0 };
  for (const instance of instances) {
    if (challengeKeyOf(instance) !== key) continue;
    tally.total += 1;
    if (instance.status?.phase === 'Running') tally.running += 1;
    if (isAdmittedBy(instance, challenge)) tally.holding += 1;
  }
  return tally;
}

/**
 * Decides what a Challenge needs, from the newest object and the instances that
 * name it. Pure: no I/O, no clock but `now`, no logging.
 *
 * The deletion rule (docs/challenges.md, "Deleting a Challenge"): the finalizer
 * `ctfleet.io/instances` goes on first; while the Challenge is being deleted and
 * instances it admitted still exist, the finalizer stays, Ready is False with
 * reason InstancesExist, and one Warning Event DeletionBlocked says so (recorded
 * when Ready turns to InstancesExist, not on every pass); when none remain, the
 * finalizer is removed and the Challenge goes.
 *
 * Guarantees: applying the returned actions and status, then planning again with
 * the same instances, yields no actions, no events and the same status (idempotent).
 *
 * Assumptions: `instances` holds every instance naming the Challenge, at least as
 * new as the Challenge (the caller reads them again from the API server before a
 * RemoveFinalizer, which cannot be undone).
 */
export function planChallenge(challenge: Challenge, instances: readonly ChallengeInstance[], now: Date, pool?: { idle: number; target: number }): ChallengePlan {
  const { metadata } = challenge;
  const hasFinalizer = metadata.finalizers?.includes(CHALLENGE_FINALIZER) ?? false;
  const tally = tallyInstances(challenge, instances);
  const previous = challenge.status?.conditions?.find((condition) => condition.type === 'Ready');
  const key = challengeKey(challenge);

  if (metadata.deletionTimestamp !== undefined) {
    // Not ours to hold (deleted before the finalizer went on, or already released).
    if (!hasFinalizer) return { actions: [], status: undefined, events: [], requeueAfterMs: CHALLENGE_REQUEUE.settled };
    if (tally.holding === 0) {
      const message = `Released Challenge ${key}: no ChallengeInstance it admitted remains.`;
      return { actions: [{ type: 'RemoveFinalizer' }], status: undefined, events: [{ type: 'Normal', reason: CONTROLLER_REASONS.deleted, message }], requeueAfterMs: CHALLENGE_REQUEUE.settled };
    }
    const waits = `${count(tally.holding, 'ChallengeInstance')} (${tally.running} running) still use it; deletion completes when they are gone.`;
    const status = statusOf(challenge, tally, { status: 'False', reason: CHALLENGE_REASONS.instancesExist, message: `Deletion waits: ${waits}` }, now);
    const events: PlannedEvent[] =
      previous?.reason === CHALLENGE_REASONS.instancesExist ? [] : [{ type: 'Warning', reason: CHALLENGE_REASONS.deletionBlocked, message: `Blocked deletion of Challenge ${key}: ${waits}` }];
    return { actions: [], status, events, requeueAfterMs: CHALLENGE_REQUEUE.deletionBlocked };
  }

  // Finalizer first: a Challenge that can go at any moment cannot promise its instances anything.
  if (!hasFinalizer) return { actions: [{ type: 'AddFinalizer' }], status: undefined, events: [], requeueAfterMs: CHALLENGE_REQUEUE.settled };

  const ready = { status: 'True' as const, reason: CHALLENGE_REASONS.ready, message: `${count(tally.total, 'instance')}, ${tally.running} running.` };
  const status = statusOf(challenge, tally, ready, now);
  if (challenge.spec.pool === undefined) return { actions: [], status, events: [], requeueAfterMs: CHALLENGE_REQUEUE.settled };
  return { actions: [], status: { ...status, pool: pool ?? { idle: 0, target: 0 } }, events: [], requeueAfterMs: CHALLENGE_REQUEUE.pooled };
}

/**
 * Whether two Challenge statuses agree on the fields the controller writes: when
 * they do, the write is skipped (it would only wake the controller again).
 */
export function isSameChallengeStatus(current: ChallengeStatus | undefined, next: ChallengeStatus): boolean {
  const owned = (status: ChallengeStatus | undefined): unknown => ({
    observedGeneration: status?.observedGeneration,
    instances: status?.instances,
    conditions: status?.conditions,
    pool: status?.pool,
  });
  return isDeepStrictEqual(owned(current), owned(next));
}

function statusOf(
  challenge: Challenge,
  tally: InstanceTally,
  ready: Pick<Condition, 'status' | 'reason' | 'message'>,
  now: Date,
): ChallengeStatus {
  const generation = challenge.metadata.generation;
  const conditions = challenge.status?.conditions ?? [];
  const merge = (next: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>): Condition =>
    mergeCondition(conditions.find((condition) => condition.type === next.type), { ...next, observedGeneration: generation }, now);
  // kstatus's pair: a Challenge has no failure of its own (what it asks for is
  // checked per instance), so it is never Stalled; it is Reconciling only while its
  // deletion waits for instances.
  const waiting = ready.reason === CHALLENGE_REASONS.instancesExist;
  return {
    observedGeneration: generation,
    instances: { total: tally.total, running: tally.running },
    conditions: [
      merge({ type: 'Ready', ...ready }),
      merge(waiting
        ? { type: GITOPS_CONDITIONS.reconciling, status: 'True', reason: ready.reason, message: ready.message }
        : { type: GITOPS_CONDITIONS.reconciling, status: 'False', reason: ready.reason, message: 'Nothing in progress.' }),
      merge({ type: GITOPS_CONDITIONS.stalled, status: 'False', reason: ready.reason, message: 'Not stalled.' }),
    ],
  };
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
