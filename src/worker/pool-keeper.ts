import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { resolveInstanceSpec, type Challenge } from '../domain/challenge.ts';
import type { InstanceSpec } from '../domain/challenge-instance.ts';
import { LABELS } from '../domain/names.ts';
import { hasPoolName, nodeShare, POOL_FILES_LABEL, POOL_LABEL, poolContainerName, type ClaimRecord, type PoolCount } from '../domain/pool.ts';
import type { ChallengeCache, Clock, ContainerFile, ContainerInfo, ContainerRuntime, PoolFiles, PortGuard } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ClaimBook } from './claim-book.ts';
import type { ContainerOperations } from './container-ops.ts';
import { isOwnContainer } from './node-plan.ts';
import { planPool, type PooledChallenge, type PoolMember } from './pool-plan.ts';

export interface PoolSettings {
  node: string;
  /** The deployment's namespaces (empty: all). */
  namespaces: readonly string[];
  /** Pool containers made at once on this node: refills never crowd out fresh starts. */
  refillConcurrency: number;
  /** How often the keeper looks when nothing woke it. */
  intervalMs: number;
  /** The deployment's cap on lifetimes (resolving a Challenge applies it). */
  maxLifetimeSeconds: number;
}

/** One idle container under its pool name, as the keeper knows it. */
interface Member {
  info: ContainerInfo;
  key: string;
  generation: number;
  /** Passed its readiness check. */
  ready: boolean;
  /** When this process learnt of it: a listing begun before cannot show it. */
  knownAt: number;
}

/** What a claim needs: which Challenge generation, who claims, and the files to write (the flag). */
export interface ClaimRequest {
  /** The Challenge, `namespace/name`. */
  key: string;
  generation: number;
  record: ClaimRecord;
  files: readonly ContainerFile[];
}

/** After a failed create, a Challenge's refills wait this long, doubling up to the cap. */
const FAILURE_BACKOFF_MS = 5_000;
const MAX_FAILURE_BACKOFF_MS = 5 * 60_000;
const LIVE_NODES_TTL_MS = 10_000;
/**
 * Refills wait until no claim was made for this long: a burst of claims (the
 * opening bell) gets the node's CPU and Docker to itself, and the pool fills
 * again once it is over.
 */
const REFILL_QUIET_MS = 1_500;
/**
 * How often a keeper with no pool to keep lists the node's pool containers (to
 * find strays of a Challenge that went while it was down). A listing costs the
 * engine a walk over every container, filtered or not (~0.5 s at 500): every
 * 2 s, it took a quarter of dockerd's time in a burst of 500 fresh starts.
 */
const IDLE_LISTING_MS = 30_000;

/**
 * A Challenge's container as a pool keeps it: its effective spec for a team
 * yet unknown, or why it cannot be pooled (a flag delivered in the environment
 * cannot be given to a running container). Pure.
 */
export function poolSpecOf(challenge: Challenge, maxLifetimeSeconds: number): { spec: InstanceSpec; filesDir: string | undefined } | { problem: string } {
  const flag = challenge.spec.flag;
  if (flag !== undefined && flag.delivery !== 'File') return { problem: 'spec.flag.delivery must be File for a pooled Challenge: a running container cannot be given an environment variable' };
  const resolution = resolveInstanceSpec(
    { metadata: { namespace: challenge.metadata.namespace }, spec: { team: 'pool', challengeRef: { name: challenge.metadata.name }, desiredState: 'Running', priority: 0 } },
    challenge,
    { maxLifetimeSeconds },
  );
  if (!resolution.ok) return { problem: resolution.message };
  if (flag !== undefined && posix.dirname(flag.path) === '/') return { problem: 'spec.flag.path must be in a directory of its own for a pooled Challenge (e.g. /flag/flag.txt): that directory is mounted read-only from the node' };
  // No flag in a pool container: it is written when a team claims it.
  const spec = { ...resolution.spec };
  delete spec.flag;
  return { spec, filesDir: flag === undefined ? undefined : posix.dirname(flag.path) };
}

/**
 * The node's warm pools (docs/pools.md): keeps each pooled Challenge's share of
 * idle, started, ready containers on this node, on the instance networks and
 * with the hardening of any instance, their host ports closed by the guard
 * until claimed. Refills are bounded (`refillConcurrency` creates at once);
 * idle containers of an older Challenge generation, past their age, in surplus
 * or stopped are removed.
 *
 * Every pass lists the node's pool containers and plans with the pure
 * {@link planPool}; claims, Challenge changes, exits and a timer wake it.
 *
 * Guarantees: a pool container serves at most one instance. A claim takes it
 * out of the idle set before any await (no two claims in this process pick it)
 * and records the claim with the store's HSETNX (no two processes do); a claim
 * cut short leaves the container under its pool name with a claim record, and
 * the next pass removes it (AbandonedClaim).
 */
export class PoolKeeper {
  private readonly runtime: ContainerRuntime;
  private readonly ops: ContainerOperations;
  private readonly claims: ClaimBook;
  private readonly files: PoolFiles | undefined;
  private readonly guard: PortGuard | undefined;
  private readonly challenges: ChallengeCache;
  private readonly liveNodes: () => Promise<number>;
  private readonly settings: PoolSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly members = new Map<string, Member>();
  private readonly creating = new Map<string, number>();
  /** Host ports of creates in flight and of claims not yet finished: closed all the while. */
  private readonly heldPorts = new Map<string, readonly number[]>();
  private readonly claiming = new Set<string>();
  /**
   * Containers this process claimed to the end: instances' now, whatever name a
   * listing taken before the rename still shows (such a listing must neither make
   * them members again nor count them as abandoned claims).
   */
  private readonly claimedHere = new Set<string>();
  /** Names of pool containers being made: counted as creates in flight, not as members, until ready. */
  private readonly creatingNames = new Set<string>();
  private readonly failures = new Map<string, { until: number; delayMs: number }>();
  private readonly refused = new Map<string, string>();
  private nodes = { count: 1, at: Number.NEGATIVE_INFINITY };
  /** The last listing of pool containers: when, and how many of this node's it found. */
  private lastListing = { at: Number.NEGATIVE_INFINITY, found: 0 };
  private lastClaimAt = Number.NEGATIVE_INFINITY;
  private quietTimer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(deps: {
    runtime: ContainerRuntime;
    ops: ContainerOperations;
    claims: ClaimBook;
    /** Pool containers' files directories, removed with their containers (and here, when left behind). */
    files?: PoolFiles;
    guard: PortGuard | undefined;
    challenges: ChallengeCache;
    liveNodes: () => Promise<number>;
    settings: PoolSettings;
    clock: Clock;
    logger: Logger;
    metrics?: Metrics;
  }) {
    this.runtime = deps.runtime;
    this.ops = deps.ops;
    this.claims = deps.claims;
    this.files = deps.files;
    this.guard = deps.guard;
    this.challenges = deps.challenges;
    this.liveNodes = deps.liveNodes;
    this.settings = deps.settings;
    this.clock = deps.clock;
    this.logger = deps.logger.child({ component: 'pool-keeper' });
    this.metrics = deps.metrics;
  }

  /**
   * Follows the Challenges and keeps the pools from then on. Does not wait for
   * the first listing (the API server may be away): until it, claims find nothing
   * idle (starts are fresh) and passes change nothing.
   */
  start(): void {
    void this.challenges
      .start(() => {
        this.kick();
      })
      .then(() => {
        this.kick();
      });
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.kick();
      this.schedule();
    }, this.settings.intervalMs);
  }

  /** One pass soon; passes never overlap, and any number of kicks during one make one more. */
  kick(): void {
    if (this.closed) return;
    if (this.passing !== undefined) {
      this.again = true;
      return;
    }
    this.passing = this.pass()
      .catch((error: unknown) => {
        this.logger.warn({ err: error }, 'A pool pass failed; the next one retries');
      })
      .finally(() => {
        this.passing = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** A pool container stopped or went away (Docker's event). */
  onExit(id: string): void {
    const member = this.members.get(id);
    if (member === undefined) return;
    member.info = { ...member.info, running: false };
    this.kick();
  }

  /**
   * Makes an idle container of the Challenge's generation the instance's:
   * the oldest ready one. Undefined when none is idle (the caller starts one
   * fresh). Errors after the claim was recorded leave an abandoned claim
   * (removed by the next pass) and are thrown, so the caller's pass retries.
   */
  async claim(request: ClaimRequest): Promise<ContainerInfo | undefined> {
    const started = this.clock.now();
    this.lastClaimAt = started;
    const candidates = [...this.members.values()]
      .filter((member) => member.key === request.key && member.generation === request.generation && member.ready && member.info.running)
      .sort((a, b) => a.info.createdAt - b.info.createdAt);
    for (const member of candidates) {
      if (!this.members.has(member.info.id)) continue;
      const { id } = member.info;
      this.members.delete(id);
      this.claiming.add(id);
      this.heldPorts.set(id, member.info.hostPorts);
      let claimed: ContainerInfo | undefined;
      try {
        claimed = await this.ops.claim(member.info, request.record, request.files);
      } finally {
        this.claiming.delete(id);
        this.heldPorts.delete(id);
        this.kick();
      }
      if (claimed === undefined) {
        this.logger.warn({ container: id, challenge: request.key }, 'A pool container was already claimed by another process; trying the next');
        continue;
      }
      this.claimedHere.add(id);
      // Its ports open only now, with the flag in place and the instance's name on it.
      await this.updateGuard();
      this.metrics?.poolClaims.inc({ challenge: request.key, result: 'claimed' });
      this.metrics?.poolClaimDuration.observe((this.clock.now() - started) / 1000);
      // The gauges follow in the pass the kick above asked for.
      return claimed;
    }
    this.metrics?.poolClaims.inc({ challenge: request.key, result: 'empty' });
    this.kick();
    return undefined;
  }

  /** Per pooled Challenge: idle, ready containers of its generation here, and this node's target. */
  counts(): PoolCount[] {
    return this.countsOf(this.pooled());
  }

  /** Every Challenge of the deployment that keeps a pool, with this node's share. */
  private pooled(): PooledChallenge[] {
    const pooled: PooledChallenge[] = [];
    for (const key of this.challenges.keys()) {
      const challenge = this.challenges.get(key);
      if (challenge === undefined || challenge.metadata.deletionTimestamp !== undefined) continue;
      if (this.settings.namespaces.length > 0 && !this.settings.namespaces.includes(challenge.metadata.namespace)) continue;
      const pool = challenge.spec.pool;
      if (pool === undefined) continue;
      const shaped = poolSpecOf(challenge, this.settings.maxLifetimeSeconds);
      if ('problem' in shaped) {
        if (this.refused.get(key) !== shaped.problem) this.logger.error({ challenge: key }, `Challenge ${key} keeps no pool: ${shaped.problem}`);
        this.refused.set(key, shaped.problem);
        continue;
      }
      this.refused.delete(key);
      const maxIdle = pool.maxIdleSeconds;
      pooled.push({ key, generation: challenge.metadata.generation, target: nodeShare(pool, this.nodes.count), maxIdleMs: maxIdle === undefined ? undefined : maxIdle * 1000 });
    }
    return pooled;
  }

  private async pass(): Promise<void> {
    // Without the Challenges listed, every pool container would look like one of a Challenge that is gone.
    if (!this.challenges.hasSynced()) return;
    const now = this.clock.now();
    if (now - this.nodes.at > LIVE_NODES_TTL_MS) {
      this.nodes = { count: Math.max(1, await this.liveNodes().catch(() => this.nodes.count)), at: now };
    }
    const idle = this.members.size === 0 && this.creating.size === 0 && this.claiming.size === 0 && this.lastListing.found === 0 && this.pooled().length === 0;
    if (idle && now - this.lastListing.at < IDLE_LISTING_MS) return;
    const listed = (await this.runtime.listManaged({ pool: true })).filter((container) => isOwnContainer(container.labels, this.settings.node, this.settings.namespaces));
    this.lastListing = { at: now, found: listed.length };
    const seen = new Set<string>();
    for (const container of listed) {
      // Renamed: claimed, an instance's container now (the node reconciler's).
      if (!hasPoolName(container.name) || this.claiming.has(container.id) || this.claimedHere.has(container.id) || this.creatingNames.has(container.name)) continue;
      seen.add(container.id);
      const known = this.members.get(container.id);
      if (known !== undefined) {
        known.info = { ...known.info, running: container.running };
        continue;
      }
      const key = `${container.labels[LABELS.namespace] ?? ''}/${container.labels[POOL_LABEL] ?? ''}`;
      const member: Member = { info: container, key, generation: Number(container.labels[LABELS.challengeGeneration] ?? 0), ready: false, knownAt: now };
      this.members.set(container.id, member);
      // Found here, not made by this process (a restart): it is claimable once it answers again.
      if (!this.claims.isAbandonedClaim(container)) void this.probe(member);
    }
    await this.removeStrayFiles(listed);
    const present = new Set(listed.map((container) => container.id));
    for (const id of this.claimedHere) if (!present.has(id)) this.claimedHere.delete(id);
    // Gone behind the keeper's back (a listing begun before a member was made cannot show it).
    for (const [id, member] of [...this.members]) if (!seen.has(id) && member.knownAt < now) this.members.delete(id);

    const challenges = this.pooled();
    const members: PoolMember[] = [...this.members.values()].map((member) => ({
      id: member.info.id,
      key: member.key,
      generation: member.generation,
      createdAt: member.info.createdAt,
      running: member.info.running,
      ready: member.ready,
      abandoned: this.claims.isAbandonedClaim(member.info),
    }));
    const inFlight = [...this.creating.values()].reduce((sum, count) => sum + count, 0);
    const actions = planPool({ challenges, members, creating: this.creating, budget: Math.max(0, this.settings.refillConcurrency - inFlight), now });
    const removals = actions.flatMap((action) => (action.type === 'remove' ? [action] : []));
    for (const { member, reason } of removals) {
      const held = this.members.get(member.id);
      this.members.delete(member.id);
      if (held !== undefined) {
        await this.ops.remove(held.info);
        this.metrics?.poolRemovals.inc({ challenge: member.key, reason });
        this.logger.info({ container: member.id, challenge: member.key, reason }, `Removed pool container ${held.info.name} (${reason})`);
      }
    }
    if (removals.length > 0) await this.updateGuard();
    const quietIn = this.lastClaimAt + REFILL_QUIET_MS - this.clock.now();
    if (quietIn > 0 && actions.some((action) => action.type === 'create')) {
      // Claims are under way: refill once they pause.
      clearTimeout(this.quietTimer);
      this.quietTimer = setTimeout(() => {
        this.kick();
      }, quietIn);
      this.publishGauges(challenges);
      return;
    }
    for (const action of actions) {
      if (action.type !== 'create') continue;
      const failure = this.failures.get(action.key);
      if (failure !== undefined && failure.until > now) continue;
      void this.create(action.key, action.generation);
    }
    this.publishGauges(challenges);
  }

  private async create(key: string, generation: number): Promise<void> {
    const challenge = this.challenges.get(key);
    if (challenge === undefined) return;
    const shaped = poolSpecOf(challenge, this.settings.maxLifetimeSeconds);
    if ('problem' in shaped) return;
    const token = `create-${randomBytes(6).toString('hex')}`;
    const suffix = randomBytes(4).toString('hex');
    const name = poolContainerName(challenge.metadata.namespace, challenge.metadata.name, suffix);
    this.creating.set(key, (this.creating.get(key) ?? 0) + 1);
    this.creatingNames.add(name);
    try {
      const container = await this.ops.createPoolMember({
        namespace: challenge.metadata.namespace,
        challenge: challenge.metadata.name,
        generation,
        spec: shaped.spec,
        suffix,
        filesDir: shaped.filesDir,
        beforeCreate: async (hostPorts) => {
          this.heldPorts.set(token, hostPorts);
          await this.updateGuard();
        },
      });
      this.members.set(container.id, { info: container, key, generation, ready: true, knownAt: this.clock.now() });
      this.failures.delete(key);
      this.metrics?.poolRefills.inc({ challenge: key, result: 'created' });
      this.logger.debug({ container: container.id, challenge: key }, `Pool container ${container.name} is ready`);
    } catch (error) {
      const before = this.failures.get(key);
      const delayMs = before === undefined ? FAILURE_BACKOFF_MS : Math.min(before.delayMs * 2, MAX_FAILURE_BACKOFF_MS);
      this.failures.set(key, { until: this.clock.now() + delayMs, delayMs });
      this.metrics?.poolRefills.inc({ challenge: key, result: 'failed' });
      this.logger.warn({ err: error, challenge: key, retryInMs: delayMs }, `Making a pool container of Challenge ${key} failed; refills wait ${Math.round(delayMs / 1000)} s`);
    } finally {
      this.creating.set(key, Math.max(0, (this.creating.get(key) ?? 1) - 1));
      if (this.creating.get(key) === 0) this.creating.delete(key);
      this.heldPorts.delete(token);
      this.creatingNames.delete(name);
      await this.updateGuard().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'Updating the pool guard failed; the next pass retries');
      });
      this.kick();
    }
  }

  /** Files directories whose container is gone (removed behind the worker's back, or a create that failed). */
  private async removeStrayFiles(listed: readonly ContainerInfo[]): Promise<void> {
    if (this.files === undefined) return;
    const used = new Set([...listed, ...[...this.members.values()].map((member) => member.info)].map((container) => container.labels[POOL_FILES_LABEL]));
    for (const name of await this.files.list()) {
      if (used.has(name) || this.creatingNames.has(name)) continue;
      await this.files.remove(name);
      this.logger.debug({ directory: name }, 'Removed the files directory of a pool container that is gone');
    }
  }

  /** A pool container found after a restart: claimable once its ports answer again. */
  private async probe(member: Member): Promise<void> {
    const challenge = this.challenges.get(member.key);
    const shaped = challenge === undefined ? undefined : poolSpecOf(challenge, this.settings.maxLifetimeSeconds);
    if (shaped === undefined || 'problem' in shaped) return;
    if (await this.ops.isReady(member.info, shaped.spec)) member.ready = true;
    this.kick();
  }

  /** Closes the ports of every idle container, every create in flight and every claim not yet done. */
  private async updateGuard(): Promise<void> {
    if (this.guard === undefined) return;
    const ports = new Set<number>();
    for (const member of this.members.values()) for (const port of member.info.hostPorts) ports.add(port);
    for (const held of this.heldPorts.values()) for (const port of held) ports.add(port);
    await this.guard.guard(ports);
  }

  /** Closes the ports of every pool container still under its pool name, as listed now (the worker's start, before any pass). */
  async guardListed(): Promise<void> {
    const listed = (await this.runtime.listManaged({ pool: true })).filter((container) => isOwnContainer(container.labels, this.settings.node, this.settings.namespaces) && hasPoolName(container.name));
    await this.guard?.guard(new Set(listed.flatMap((container) => container.hostPorts)));
  }

  private publishGauges(challenges: PooledChallenge[] = this.pooled()): void {
    if (this.metrics === undefined) return;
    this.metrics.poolTarget.reset();
    this.metrics.poolIdle.reset();
    for (const count of this.countsOf(challenges)) {
      this.metrics.poolTarget.set({ challenge: count.challenge }, count.target);
      this.metrics.poolIdle.set({ challenge: count.challenge }, count.idle);
    }
  }

  private countsOf(challenges: PooledChallenge[]): PoolCount[] {
    return challenges.map((challenge) => ({
      challenge: challenge.key,
      idle: [...this.members.values()].filter((member) => member.key === challenge.key && member.generation === challenge.generation && member.ready).length,
      target: challenge.target,
    }));
  }

  /** Stops looking; pool containers stay (the next worker finds and keeps them). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.quietTimer);
    await this.passing;
    await this.challenges.close();
  }
}
