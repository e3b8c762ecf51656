import type { Phase } from '../domain/challenge-instance.ts';
import { challengeKeyOf } from '../domain/challenge.ts';
import type { ChallengeApi, ChallengeCache, InstanceApi, InstanceCache, JobQueue, PoolCountSource } from '../domain/ports.ts';
import { parseJobId } from '../domain/jobs.ts';

const PHASES: Phase[] = ['Pending', 'Scheduled', 'Starting', 'Running', 'Stopping', 'Stopped', 'Failed', 'Expired', 'Terminating'];
import { describeError } from '../health/dependency-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { NodeMonitor } from './node-monitor.ts';
import { ChallengeReconciler } from './challenge-reconciler.ts';
import { EventBudget } from './event-budget.ts';
import { NO_LOST_NODES, type LifetimePolicy } from './plan.ts';
import { Reconciler } from './reconciler.ts';
import { WorkQueue } from '../reconcile/work-queue.ts';

export interface ControllerOptions {
  concurrency: number;
  lifetime: LifetimePolicy;
  /** CTFLEET_FIRST_STATUS_GRACE_SECONDS; absent: FIRST_STATUS_GRACE_MS (plan.ts). */
  firstStatusGraceMs?: number;
}

/** Challenge passes are short (counts from the cache, one status write): two at a time keep up. */
const CHALLENGE_CONCURRENCY = 2;

/**
 * The controller: two level-triggered reconcilers, each with its own keyed work
 * queue. ChallengeInstances: informer events and job changes enqueue instance
 * keys. Challenges (with a {@link ChallengeApi}): their own informer events, and
 * every change of an instance naming one, enqueue its key.
 *
 * Two queues rather than one with prefixed keys: both kinds are keyed
 * `namespace/name` and a Challenge and an instance may well share a name; and a
 * burst of instance starts (exactly when a Challenge's counts move) must not
 * delay the Challenge's deletion, nor Challenge passes the instances.
 */
/** Normal Events of instances: 30 at once, then 10 a second (Warnings always). */
const EVENT_BUDGET = { perSecond: 10, burst: 30 } as const;

export class Controller {
  private readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly challengeQueue: WorkQueue;
  private readonly challengeReconciler: ChallengeReconciler | undefined;
  /** The Challenge key each instance named when last seen, so an instance's deletion still wakes its Challenge. */
  private readonly challengeOfInstance = new Map<string, string>();
  private readonly cache: InstanceCache;
  private readonly challenges: ChallengeCache | undefined;
  private readonly jobs: JobQueue;
  private readonly logger: Logger;
  private readonly nodes: NodeMonitor | undefined;
  private readonly metrics: Metrics | undefined;

  constructor(
    deps: {
      cache: InstanceCache;
      challenges?: ChallengeCache;
      /** With it (and `challenges`), the controller reconciles Challenges too: finalizer, status, the deletion rule. */
      challengeApi?: ChallengeApi;
      api: InstanceApi;
      jobs: JobQueue;
      logger: Logger;
      nodes?: NodeMonitor;
      metrics?: Metrics;
      now?: () => Date;
      /** Pooled Challenges' counts, for their status (the workers' heartbeats). */
      pools?: PoolCountSource;
    },
    options: ControllerOptions,
  ) {
    this.cache = deps.cache;
    this.challenges = deps.challenges;
    this.jobs = deps.jobs;
    this.logger = deps.logger;
    this.nodes = deps.nodes;
    this.metrics = deps.metrics;
    this.queue = new WorkQueue({ concurrency: options.concurrency, baseBackoffMs: 50, maxBackoffMs: 60_000 });
    this.challengeQueue = new WorkQueue({ concurrency: CHALLENGE_CONCURRENCY, baseBackoffMs: 50, maxBackoffMs: 60_000 });
    this.challengeReconciler =
      deps.challenges === undefined || deps.challengeApi === undefined
        ? undefined
        : new ChallengeReconciler({ challenges: deps.challenges, instances: deps.cache, api: deps.challengeApi, instanceApi: deps.api, logger: deps.logger, now: deps.now ?? (() => new Date()), ...(deps.pools === undefined ? {} : { pools: deps.pools }) });
    const timeToReady = deps.metrics?.timeToReady;
    this.reconciler = new Reconciler({
      ...deps,
      nodes: deps.nodes ?? NO_LOST_NODES,
      lifetime: options.lifetime,
      ...(options.firstStatusGraceMs === undefined ? {} : { firstStatusGraceMs: options.firstStatusGraceMs }),
      now: deps.now ?? (() => new Date()),
      ...(timeToReady === undefined ? {} : { onFirstReady: (seconds: number) => { timeToReady.observe(seconds); } }),
      events: new EventBudget({ ...EVENT_BUDGET, onDrop: () => { deps.metrics?.eventsSkipped.inc(); } }, () => Date.now()),
    });
  }

  /** Counts by phase, queue depth and nodes, for the metrics scrape. */
  observe(metrics: Metrics): void {
    metrics.workQueueDepth.set(this.queue.depth());
    const phases = new Map<string, number>(PHASES.map((phase) => [phase, 0]));
    for (const key of this.cache.keys()) {
      const phase = this.cache.get(key)?.status?.phase ?? 'Pending';
      phases.set(phase, (phases.get(phase) ?? 0) + 1);
    }
    for (const [phase, count] of phases) metrics.instances.set({ phase }, count);
    if (this.nodes !== undefined) {
      const { live, lost } = this.nodes.counts();
      metrics.nodes.set({ state: 'live' }, live);
      metrics.nodes.set({ state: 'lost' }, lost);
    }
  }

  async start(): Promise<void> {
    this.jobs.onJobChange((jobId) => {
      const uid = parseJobId(jobId)?.uid;
      const key = uid === undefined ? undefined : this.cache.keyForUid(uid);
      if (key !== undefined) this.queue.add(key);
    });
    // Challenges first: an instance's first pass resolves it against them.
    await this.challenges?.start((challengeKey) => {
      if (this.challengeReconciler !== undefined) this.challengeQueue.add(challengeKey);
      // A Challenge that changed, came or went: the instances naming it look again.
      for (const key of this.cache.keys()) {
        const instance = this.cache.get(key);
        if (instance !== undefined && challengeKeyOf(instance) === challengeKey) this.queue.add(key);
      }
    });
    await this.cache.start((key) => {
      this.queue.add(key);
      if (this.challengeReconciler !== undefined) this.wakeChallengeOf(key);
    });
    const metrics = this.metrics;
    // The uid of a key whose pass failed, for the failure's log line: the object
    // may have left the cache by then (deleted while it was reconciled).
    const failingUids = new Map<string, string>();
    this.queue.start(
      async (key) => {
        const uid = this.cache.get(key)?.metadata.uid;
        const end = metrics?.reconcileDuration.startTimer();
        try {
          const result = await this.reconciler.reconcile(key);
          end?.({ result: 'success' });
          metrics?.reconciles.inc({ result: 'success' });
          failingUids.delete(key);
          return result;
        } catch (error) {
          end?.({ result: 'error' });
          metrics?.reconciles.inc({ result: 'error' });
          if (uid !== undefined) failingUids.set(key, uid);
          throw error;
        }
      },
      (key, error) => {
        this.logger.warn({ instance: key, uid: this.cache.get(key)?.metadata.uid ?? failingUids.get(key), code: (error as { code?: unknown }).code }, `Reconciling ChallengeInstance ${key} failed: ${describeError(error)}`);
      },
    );
    // Only now, with both caches listed: a Challenge pass that counted instances
    // from a cache not yet filled could release a Challenge still in use.
    const challengeReconciler = this.challengeReconciler;
    if (challengeReconciler !== undefined) {
      this.challengeQueue.start(
        (key) => challengeReconciler.reconcile(key),
        (key, error) => {
          this.logger.warn({ challenge: key, uid: this.challenges?.get(key)?.metadata.uid, code: (error as { code?: unknown }).code }, `Reconciling Challenge ${key} failed: ${describeError(error)}`);
        },
      );
    }
    // A node lost or back changes what its instances need: look at each again.
    this.nodes?.start((nodes) => {
      const changed = new Set(nodes);
      for (const key of this.cache.keys()) {
        const node = this.cache.get(key)?.status?.node;
        if (node !== undefined && changed.has(node)) this.queue.add(key);
      }
    });
    this.logger.info({ instances: this.cache.keys().length }, 'Controller started');
  }

  /**
   * An instance came, changed or went: the counts of the Challenge it names (and,
   * had its reference changed, of the one it named before) may have moved.
   */
  private wakeChallengeOf(key: string): void {
    const instance = this.cache.get(key);
    const current = instance === undefined ? undefined : challengeKeyOf(instance);
    const previous = this.challengeOfInstance.get(key);
    if (current === undefined) this.challengeOfInstance.delete(key);
    else this.challengeOfInstance.set(key, current);
    if (previous !== undefined && previous !== current) this.challengeQueue.add(previous);
    if (current !== undefined) this.challengeQueue.add(current);
  }

  isReady(): boolean {
    return this.cache.hasSynced() && (this.challenges?.hasSynced() ?? true);
  }

  async close(): Promise<void> {
    this.nodes?.close();
    await this.challengeQueue.close();
    await this.queue.close();
    await this.cache.close();
    await this.challenges?.close();
  }
}
