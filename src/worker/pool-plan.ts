/**
 * The pool planner: what one node does about its warm pools, from what should
 * be (each pooled Challenge's generation and this node's share) and what is
 * (this node's pool containers, the creates in flight). Pure: no I/O, no clock
 * but `now`. docs/pools.md has the rules in prose.
 */

/** A Challenge as the pools see it. */
export interface PooledChallenge {
  /** `namespace/name`. */
  key: string;
  generation: number;
  /** Idle containers this node keeps (its share, see `nodeShare`). */
  target: number;
  /** Idle containers older than this are replaced; undefined: kept until claimed. */
  maxIdleMs: number | undefined;
}

/** One pool container of this node, still under its pool name. */
export interface PoolMember {
  id: string;
  /** Its Challenge, `namespace/name`, from its labels. */
  key: string;
  generation: number;
  createdAt: number;
  running: boolean;
  /** Passed its readiness check: claimable. */
  ready: boolean;
  /** A claim took it and did not finish (the worker stopped mid-claim). */
  abandoned: boolean;
}

export type PoolRemoval = 'ChallengeGone' | 'NotPooled' | 'Outdated' | 'Aged' | 'Surplus' | 'Exited' | 'AbandonedClaim';

export type PoolAction =
  | { type: 'create'; key: string; generation: number }
  | { type: 'remove'; member: PoolMember; reason: PoolRemoval };

export interface PoolFacts {
  /** Every Challenge of the deployment with a pool; a Challenge being deleted is absent. */
  challenges: readonly PooledChallenge[];
  members: readonly PoolMember[];
  /** Creates in flight, by Challenge key (they count toward the target). */
  creating: ReadonlyMap<string, number>;
  /** Creates that may start now (the refill bound, less those in flight). */
  budget: number;
  now: number;
}

/**
 * Decides the node's pool actions.
 *
 * - A member whose Challenge is gone, deleting or no longer pooled here, one
 *   that stopped running, or an abandoned claim: removed.
 * - A member of an older Challenge generation: removed (no new instance may
 *   get an old generation); so is one idle past `maxIdleSeconds`.
 * - Members of the current generation plus creates in flight above the target:
 *   the youngest surplus is removed, ready ones last.
 * - Below the target: creates, at most `budget` in all, shared out one at a
 *   time across the Challenges furthest below their target, so one large pool
 *   cannot starve a small one.
 *
 * Guarantees: idempotent. Once the actions are done (creates counted as in
 * flight), planning again yields nothing but the creates the budget held back.
 */
export function planPool(facts: PoolFacts): PoolAction[] {
  const actions: PoolAction[] = [];
  const byKey = new Map(facts.challenges.map((challenge) => [challenge.key, challenge]));
  const kept = new Map<string, PoolMember[]>();
  for (const member of facts.members) {
    const challenge = byKey.get(member.key);
    const reason: PoolRemoval | undefined =
      member.abandoned ? 'AbandonedClaim'
      : challenge === undefined ? 'ChallengeGone'
      : challenge.target <= 0 ? 'NotPooled'
      : !member.running ? 'Exited'
      : member.generation !== challenge.generation ? 'Outdated'
      : challenge.maxIdleMs !== undefined && facts.now - member.createdAt >= challenge.maxIdleMs ? 'Aged'
      : undefined;
    if (reason !== undefined) actions.push({ type: 'remove', member, reason });
    else kept.set(member.key, [...(kept.get(member.key) ?? []), member]);
  }

  const missing = new Map<string, number>();
  for (const challenge of facts.challenges) {
    const members = kept.get(challenge.key) ?? [];
    const creating = facts.creating.get(challenge.key) ?? 0;
    const surplus = members.length + creating - challenge.target;
    if (surplus > 0) {
      // Not-yet-ready ones first, then the youngest: the oldest ready ones are claimed first anyway.
      const order = [...members].sort((a, b) => Number(a.ready) - Number(b.ready) || b.createdAt - a.createdAt);
      for (const member of order.slice(0, Math.min(surplus, members.length))) actions.push({ type: 'remove', member, reason: 'Surplus' });
    } else if (surplus < 0) {
      missing.set(challenge.key, -surplus);
    }
  }

  let budget = facts.budget;
  while (budget > 0 && missing.size > 0) {
    let worst: string | undefined;
    for (const [key, count] of missing) if (worst === undefined || count > (missing.get(worst) ?? 0)) worst = key;
    if (worst === undefined) break;
    const challenge = byKey.get(worst);
    if (challenge !== undefined) actions.push({ type: 'create', key: worst, generation: challenge.generation });
    const left = (missing.get(worst) ?? 0) - 1;
    if (left <= 0) missing.delete(worst);
    else missing.set(worst, left);
    budget -= 1;
  }
  return actions;
}
