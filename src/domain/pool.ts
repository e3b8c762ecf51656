import { GROUP } from './names.ts';

/**
 * Warm pools (docs/pools.md): idle, started, isolated containers of a Challenge
 * that a new instance claims instead of starting one. Names, labels and the
 * claim record live here, shared by the worker and its Redis adapter.
 */

/** `Challenge.spec.pool` as the API server stores it (schema defaults applied). */
export interface PoolSpec {
  /** Idle containers across the deployment's nodes; 0 keeps none. */
  size: number;
  /** Idle containers on each node, in place of an equal share of `size`. */
  perNode?: number;
  /** An idle container older than this is replaced by a fresh one. */
  maxIdleSeconds?: number;
}

/** On a pool container: the name of its Challenge (its namespace is `ctfleet.io/namespace`). */
export const POOL_LABEL = `${GROUP}/pool`;

/** On a pool container with a files directory: the directory's name (its pool name, which a claim changes). */
export const POOL_FILES_LABEL = `${GROUP}/pool-files`;

/** Pool containers' names start with this; instance containers' with `ctfleet-`, so the two never meet. */
export const POOL_NAME_PREFIX = 'ctfpool-';

/** The name of an idle pool container: `ctfpool-<namespace>_<challenge>-<suffix>`. */
export function poolContainerName(namespace: string, challenge: string, suffix: string): string {
  return `${POOL_NAME_PREFIX}${namespace}_${challenge}-${suffix}`;
}

/** True while a pool container still has its pool name: idle, or a claim that never finished. */
export function hasPoolName(name: string): boolean {
  return name.startsWith(POOL_NAME_PREFIX);
}

/**
 * How many idle containers one node keeps: `perNode` when set, else its equal
 * share of `size` over the nodes whose workers are alive (rounded up, so the
 * pool is never smaller than asked). Pure.
 */
export function nodeShare(pool: PoolSpec | undefined, liveNodes: number): number {
  if (pool === undefined) return 0;
  if (pool.perNode !== undefined) return pool.perNode;
  if (pool.size <= 0) return 0;
  return Math.ceil(pool.size / Math.max(1, liveNodes));
}

/**
 * What makes a claimed pool container an instance's: the labels it would carry
 * had it been created for that instance. Docker labels cannot change after
 * creation, so these live in a claim record (Redis, one hash per node), written
 * once per container with HSETNX: the write that wins is the only claim.
 */
export interface ClaimRecord {
  uid: string;
  namespace: string;
  name: string;
  team: string;
  generation: number;
  specHash: string;
  /** When the claim was made, ms since the epoch. */
  claimedAt: number;
}

/** Idle and wanted containers of one Challenge on one node, as workers publish them for the Challenge's status. */
export interface PoolCount {
  /** The Challenge, `namespace/name`. */
  challenge: string;
  /** Started, ready and waiting to be claimed. */
  idle: number;
  /** What this node keeps (its share). */
  target: number;
}
