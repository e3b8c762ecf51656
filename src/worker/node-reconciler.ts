import { CHALLENGE_OWNED_FIELDS, resolveInstanceSpec } from '../domain/challenge.ts';
import { deliverFlag, flagOf } from '../domain/flag-delivery.ts';
import { findCondition, type ChallengeInstance, type Endpoint, type InstanceSpec } from '../domain/challenge-instance.ts';
import { CtfleetError, permanent, transient } from '../domain/errors.ts';
import { parseJob, type InstanceJob, type JobTarget } from '../domain/jobs.ts';
import { containerName, LABELS } from '../domain/names.ts';
import type { ChallengeSource, Clock, ContainerFile, ContainerInfo, FlagStore, ContainerExit, ContainerRuntime, InstanceApi, JobContext, JobOutcome, StartTimeline } from '../domain/ports.ts';
import { ALREADY_GONE, isPermanentReason, SKIP_REASONS } from '../domain/reasons.ts';
import { specHash } from '../domain/spec-hash.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { WorkQueue, type WorkResult } from '../reconcile/work-queue.ts';
import type { ClaimBook } from './claim-book.ts';
import type { PoolKeeper } from './pool-keeper.ts';
import { hasPoolName, POOL_LABEL, type ClaimRecord } from '../domain/pool.ts';
import type { ContainerOperations } from './container-ops.ts';
import { endpointsOf } from './container-shape.ts';
import { ENGINE_DISRUPTION_MS, EngineEvents } from './engine-events.ts';
import { NodeListing } from './node-listing.ts';
import { isOwnContainer, planDrift, planNode, type ExitNote, type JobVerdict, type NodePlan } from './node-plan.ts';
import { RestartPolicy, type RestartPolicyOptions } from './restart-policy.ts';
import type { StatusReporter } from './status-reporter.ts';


/** What a container is made from: the effective spec, its Challenge generation and the files to write. */
interface Made {
  spec: InstanceSpec;
  challengeGeneration: number | undefined;
  files: ContainerFile[];
  /** Its Challenge keeps a warm pool: `namespace/name`. */
  pooled?: string;
}

export interface NodeSettings {
  node: string;
  /** Host written into endpoints: where teams reach this node. */
  advertiseAddress: string;
  /** Namespaces this deployment manages; empty: all. */
  namespaces: string[];
  /** Passes at once (jobs of both queues, events and sweeps share them). */
  concurrency: number;
  sweepIntervalMs: number;
  restart: Omit<RestartPolicyOptions, 'maxBackoffMs'>;
}

/** A job waiting for the pass that carries it out. */
interface Demand {
  job: InstanceJob;
  context: JobContext;
  resolve: (outcome: JobOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * What a pass's Run came to: the container ready (with its endpoints), the
 * instance deleted while it started (`gone`), or a restarted container that
 * exited again before it was ready (`exited-again`: one more crash, which the
 * next pass plans).
 */
/** Observed states refreshed at once by a sweep. */
const HEALTHY_BATCH = 50;

/** The progress steps that mark a stage of a start's {@link StartTimeline}. */
const TIMELINE_STEPS: Record<string, keyof StartTimeline> = {
  'creating container': 'image',
  'claiming a pool container': 'image',
  started: 'started',
};

type RunEnd = { outcome: 'started' | 'adopted' | 'claimed'; containerId: string; endpoints: Endpoint[]; timeline: StartTimeline } | 'gone' | 'exited-again';

/** Refusals that name a spec's field. */
const FIELD_REFUSALS: ReadonlySet<string> = new Set(['InvalidSpec', 'ImageNotAllowed']);
/** The fields of an instance of a Challenge that come from the Challenge (the instance cannot set them). */
const FROM_CHALLENGE: ReadonlySet<string> = new Set([...CHALLENGE_OWNED_FIELDS, 'flag', 'readiness']);

/**
 * Names the Challenge in a refusal of one of its fields (`spec.resources.memory: …`
 * of an instance of a Challenge: the instance cannot set it, its Challenge does).
 * A refusal of the instance's own fields (`spec.ttlSeconds`) is left as it is.
 */
export function attributeToChallenge(error: CtfleetError, instance: ChallengeInstance): CtfleetError {
  const ref = instance.spec.challengeRef;
  const field = /^spec\.(\w+)/.exec(error.message)?.[1];
  if (ref === undefined || !FIELD_REFUSALS.has(error.code) || field === undefined || !FROM_CHALLENGE.has(field)) return error;
  return permanent(error.code, `Challenge ${ref.name}: ${error.message}`, error);
}

/** Where an instance lives: enough to read it from the API server and name its container. */
interface Target {
  namespace: string;
  name: string;
}

/** A container younger than this is left out of a sweep: its instance may not say so yet. */
const SWEEP_GRACE_MS = 15_000;
const MAX_RESTART_BACKOFF_MS = 60_000;
/** A container ctfleet itself stopped or removed: its exit events in this time are no news. */
const OWN_DOING_MS = 60_000;

/**
 * The worker's reconciler: one level-triggered loop per node, keyed by instance
 * uid, on the same {@link WorkQueue} as the controller.
 *
 * Jobs from BullMQ, Docker's exit events and the periodic sweep only add a uid
 * (a job also waits for the pass that carries it out). Each pass reads what
 * should be (the instance, from the API server, and the jobs waiting) and what
 * is (this node's containers of the uid), runs the pure {@link planNode}, carries
 * out its actions through the container operations and the status reporter,
 * settles the jobs, and returns when to look again (a restart's backoff).
 *
 * Guarantees: one pass per uid at a time, so a job, an event and a sweep never
 * race over one container. Every action is idempotent, so a pass cut short (a
 * crash, a handed-back job) is simply run again.
 */
export class NodeReconciler {
  private readonly api: InstanceApi;
  private readonly runtime: ContainerRuntime;
  private readonly ops: ContainerOperations;
  private readonly listing: NodeListing;
  private readonly reporter: StatusReporter;
  private readonly settings: NodeSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly isolation: { repair(): Promise<void> } | undefined;
  private readonly challenges: ChallengeSource | undefined;
  private readonly maxLifetimeSeconds: number;
  private readonly flags: FlagStore | undefined;
  private readonly pool: PoolKeeper | undefined;
  private readonly claims: ClaimBook | undefined;
  private readonly queue: WorkQueue;
  private readonly events: EngineEvents;
  private readonly restarts: RestartPolicy;
  private readonly targets = new Map<string, Target>();
  private readonly demands = new Map<string, Demand[]>();
  private readonly exits = new Map<string, ExitNote>();
  /** Restarts waiting for their backoff, as the last pass of each uid planned them. */
  private readonly due = new Map<string, number>();
  private readonly ownDoing = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;

  constructor(deps: {
    api: InstanceApi;
    runtime: ContainerRuntime;
    ops: ContainerOperations;
    reporter: StatusReporter;
    settings: NodeSettings;
    clock: Clock;
    logger: Logger;
    metrics?: Metrics;
    /** The node's networks and firewall rules, repaired by every sweep. */
    isolation?: { repair(): Promise<void> };
    /** Where instances with `spec.challengeRef` get their container from. */
    challenges?: ChallengeSource;
    /** The deployment's cap on lifetimes, which resolving a Challenge applies. */
    maxLifetimeSeconds?: number;
    /** Where flags' secrets live; a Challenge with a flag fails FlagKeyInvalid without it. */
    flags?: FlagStore;
    /** The node's warm pools: a pooled Challenge's instance claims from them first. */
    pool?: PoolKeeper;
    /** Claims of pool containers, which make them instances' containers. */
    claims?: ClaimBook;
    /** The node's listing, shared with port allocation and the heartbeat: each sweep lists afresh. */
    listing?: NodeListing;
  }) {
    this.listing = deps.listing ?? new NodeListing(deps.runtime, deps.clock);
    this.flags = deps.flags;
    this.pool = deps.pool;
    this.claims = deps.claims;
    this.challenges = deps.challenges;
    this.maxLifetimeSeconds = deps.maxLifetimeSeconds ?? Number.MAX_SAFE_INTEGER;
    this.isolation = deps.isolation;
    this.api = deps.api;
    this.runtime = deps.runtime;
    this.ops = deps.ops;
    this.reporter = deps.reporter;
    this.settings = deps.settings;
    this.clock = deps.clock;
    this.logger = deps.logger.child({ component: 'node-reconciler' });
    this.metrics = deps.metrics;
    this.queue = new WorkQueue({ concurrency: deps.settings.concurrency, baseBackoffMs: 500, maxBackoffMs: 30_000 }, deps.clock);
    this.events = new EngineEvents({ runtime: deps.runtime, clock: deps.clock, logger: this.logger });
    this.restarts = new RestartPolicy({ ...deps.settings.restart, maxBackoffMs: MAX_RESTART_BACKOFF_MS });
  }

  /** Starts the loop, follows Docker's events (a sweep each time they connect) and sweeps every interval. */
  start(): void {
    this.queue.start(
      (uid) => this.reconcile(uid),
      (uid, error) => {
        const target = this.targets.get(uid);
        this.logger.warn({ err: error, uid, ...(target === undefined ? {} : { instance: `${target.namespace}/${target.name}` }) }, 'A node pass failed; retrying with backoff');
      },
    );
    this.events.start({
      onExit: (exit) => {
        this.onExit(exit);
      },
      onConnected: () => void this.sweep(),
      onDisconnected: () => {
        // The exits and refusals just before were the engine's doing, not the containers'.
        this.restarts.forgiveSince(this.clock.now() - ENGINE_DISRUPTION_MS);
        this.ops.forgetRefusals();
      },
    });
    this.scheduleSweep();
  }

  /**
   * Handles one job: it waits for the pass that carries it out and gets that
   * pass's outcome, or its error (permanent errors fail the job for good).
   */
  async handle(data: unknown, context: JobContext): Promise<JobOutcome> {
    const parsed = parseJob(data);
    if (!parsed.ok) throw permanent('InvalidJob', `Refused a malformed job payload: ${parsed.problems}`);
    const { job } = parsed;
    if (this.closed) throw transient('ShuttingDown', 'The worker is shutting down; the job goes back to its queue.');
    return new Promise<JobOutcome>((resolve, reject) => {
      const { uid, namespace, name } = job.target;
      this.demands.set(uid, [...(this.demands.get(uid) ?? []), { job, context, resolve, reject }]);
      this.targets.set(uid, { namespace, name });
      this.queue.add(uid);
    });
  }

  /** One sweep now (a sweep already running is joined, not doubled). */
  async sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = setTimeout(() => {
      void this.sweep().then(() => {
        this.scheduleSweep();
      });
    }, this.settings.sweepIntervalMs);
  }

  /** Plans the whole node from one listing and queues a pass for every uid with something to do. */
  private async sweepOnce(): Promise<void> {
    const end = this.metrics?.sweepDuration.startTimer();
    await this.isolation?.repair().catch((error: unknown) => {
      this.logger.error({ err: error }, 'Repairing the node\'s instance networks or firewall rules failed; the next sweep retries');
    });
    try {
      const [listed, placed] = await Promise.all([this.listing.fresh(), this.instancesPlacedHere()]);
      const containers = await this.instanceContainers(listed, placed);
      const instances = await this.withOwners(placed, containers);
      const now = this.clock.now();
      const actions = planDrift({ node: this.settings.node, namespaces: this.settings.namespaces, containers, instances, isBusy: (uid) => this.demands.has(uid), now, graceMs: SWEEP_GRACE_MS });
      // A healthy instance needs no pass: its observed state in Redis is refreshed
      // from this snapshot. A pass each (a listing of its uid's containers) made a
      // sweep cost one Docker listing per running container: at 500 running, the
      // engine spent its time listing (docs/benchmark.md).
      const healthy = actions.filter((action) => action.type === 'healthy');
      await this.reporter.checkStore().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'Checking Redis for lost observed state failed; the next sweep retries');
      });
      this.reporter.forgetOthers(new Set(instances.map((instance) => instance.metadata.uid)));
      for (let i = 0; i < healthy.length; i += HEALTHY_BATCH) {
        // A uid whose job arrived since the snapshot is its pass's to report: a stale `running` would overwrite it.
        await Promise.all(healthy.slice(i, i + HEALTHY_BATCH).filter((action) => !this.demands.has(action.instance.metadata.uid)).map((action) => this.reporter.healthy(action.instance, action.container).catch((error: unknown) => {
          this.logger.warn({ err: error, uid: action.instance.metadata.uid }, 'Refreshing an observed state in Redis failed; the next sweep retries');
        })));
      }
      for (const action of actions) {
        if (action.type === 'healthy') continue;
        const labels = action.type === 'remove' ? action.container.labels : undefined;
        const uid = action.type === 'remove' ? (labels?.[LABELS.uid] ?? '') : action.instance.metadata.uid;
        const target = action.type === 'remove' ? { namespace: labels?.[LABELS.namespace] ?? '', name: labels?.[LABELS.name] ?? '' } : action.instance.metadata;
        this.targets.set(uid, { namespace: target.namespace, name: target.name });
        this.queue.add(uid);
      }
      this.restarts.prune(now);
      for (const [id, until] of this.ownDoing) if (until <= now) this.ownDoing.delete(id);
      const drifts = actions.filter((action) => action.type !== 'healthy').length;
      this.logger.debug({ actions: actions.map((action) => `${action.type} ${action.type === 'remove' ? action.container.name : `${action.instance.metadata.namespace}/${action.instance.metadata.name}`}`) }, 'Swept the node');
      if (drifts > 0) this.logger.info({ drifts, containers: containers.length }, `Sweep found ${drifts} drift${drifts === 1 ? '' : 's'} to repair`);
      end?.({ result: 'success' });
    } catch (error) {
      end?.({ result: 'error' });
      this.logger.warn({ err: error }, 'Sweep failed; next interval retries');
    }
  }

  /**
   * The instances placed on this node, selected by the API server on
   * `status.node`: a sweep costs the node's share, not every instance of the
   * cluster. Without that selector (before Kubernetes 1.31), every instance.
   */
  private async instancesPlacedHere(): Promise<ChallengeInstance[]> {
    return (await this.api.listPlacedOn(this.settings.node, this.settings.namespaces)) ?? this.api.list(this.settings.namespaces);
  }

  /**
   * `placed` and the owners of this node's containers it left out (a start not
   * yet reported, an instance moved to another node), each read by name: the
   * sweep decides every container with its instance, as a full listing would.
   */
  private async withOwners(placed: ChallengeInstance[], containers: ContainerInfo[]): Promise<ChallengeInstance[]> {
    const known = new Set(placed.map((instance) => instance.metadata.uid));
    const owners = new Map<string, { namespace: string; name: string }>();
    for (const container of containers) {
      if (!isOwnContainer(container.labels, this.settings.node, this.settings.namespaces)) continue;
      const uid = container.labels[LABELS.uid];
      const namespace = container.labels[LABELS.namespace];
      const name = container.labels[LABELS.name];
      if (uid !== undefined && namespace !== undefined && name !== undefined && !known.has(uid)) owners.set(uid, { namespace, name });
    }
    const found = await Promise.all([...owners].map(async ([uid, { namespace, name }]) => {
      const instance = await this.api.get(namespace, name);
      return instance?.metadata.uid === uid ? instance : undefined;
    }));
    return [...placed, ...found.filter((instance) => instance !== undefined)];
  }

  /**
   * The listing as the instances see it: claimed pool containers with their
   * claims' labels; idle ones (and claims cut short, still under their pool
   * name) left to the pool keeper. A container a claim renamed whose record is
   * lost (Redis lost its keys) stays the instance's whose status names it, its
   * claim written again; with no such instance it is removed.
   */
  private async instanceContainers(listed: ContainerInfo[], instances: ChallengeInstance[]): Promise<ContainerInfo[]> {
    const claims = this.claims;
    if (claims === undefined) return listed.filter((container) => container.labels[POOL_LABEL] === undefined);
    const containers: ContainerInfo[] = [];
    for (const container of listed) {
      if (container.labels[POOL_LABEL] === undefined) containers.push(container);
      else if (hasPoolName(container.name)) continue;
      else if (!claims.isUnclaimedPoolContainer(container)) containers.push(claims.apply(container));
      else if (isOwnContainer(container.labels, this.settings.node, this.settings.namespaces)) {
        const owner = instances.find((instance) => instance.status?.containerId === container.id && instance.status.node === this.settings.node);
        if (owner !== undefined && (await claims.claim(container.id, claimOf(owner, this.clock.now())))) {
          this.logger.warn({ instance: `${owner.metadata.namespace}/${owner.metadata.name}`, uid: owner.metadata.uid, container: container.id }, `Recovered the lost claim of pool container ${container.name} from its instance's status`);
          containers.push(claims.apply(container));
        } else {
          this.ownDoing.set(container.id, this.clock.now() + OWN_DOING_MS);
          await this.ops.remove(container);
          this.metrics?.driftRepairs.inc({ kind: 'remove' });
          this.logger.info({ container: container.id }, `Removed pool container ${container.name}: renamed by a claim that no instance holds`);
        }
      }
    }
    await claims.prune(new Set(listed.map((container) => container.id)));
    return containers;
  }

  private onExit(exit: ContainerExit): void {
    const labels = this.claims?.labelsOf(exit.id, exit.labels) ?? exit.labels;
    if (labels[POOL_LABEL] !== undefined && labels[LABELS.uid] === undefined) {
      if (labels[LABELS.node] === this.settings.node) this.pool?.onExit(exit.id);
      return;
    }
    const uid = labels[LABELS.uid];
    const namespace = labels[LABELS.namespace];
    const name = labels[LABELS.name];
    if (uid === undefined || namespace === undefined || name === undefined) return;
    if (!isOwnContainer(labels, this.settings.node, this.settings.namespaces)) return;
    if ((this.ownDoing.get(exit.id) ?? 0) > this.clock.now()) return;
    // `die` then `destroy` of one removal: the die is what counts.
    const before = this.exits.get(uid);
    const died = exit.action === 'die' || (before?.died === true && before.containerId === exit.id);
    this.exits.set(uid, { containerId: exit.id, died });
    this.targets.set(uid, { namespace, name });
    this.logger.debug({ instance: `${namespace}/${name}`, uid, container: exit.id, event: exit.action, exitCode: exit.exitCode }, 'Docker reported a container exit');
    this.queue.add(uid);
  }

  /**
   * The spec to make the container from, read afresh from the API server: the
   * instance's own, or for a `challengeRef` its Challenge's as it is now (a
   * running container made from an older generation keeps it: the container's
   * identity is the stored spec's hash). Fails permanently with
   * ChallengeNotFound or InvalidSpec, as the controller does.
   */
  private async effectiveSpec(instance: ChallengeInstance, stored: InstanceSpec): Promise<Made> {
    const ref = stored.challengeRef;
    const challenge = ref === undefined || this.challenges === undefined ? undefined : await this.challenges.get(instance.metadata.namespace, ref.name);
    const resolution = resolveInstanceSpec({ metadata: instance.metadata, spec: stored }, challenge, { maxLifetimeSeconds: this.maxLifetimeSeconds });
    if (!resolution.ok) throw permanent(resolution.reason, resolution.message);
    const { spec, challengeGeneration } = resolution;
    const pooled = challenge?.spec.pool === undefined || ref === undefined ? {} : { pooled: `${instance.metadata.namespace}/${ref.name}` };
    if (spec.flag === undefined) return { spec, challengeGeneration, files: [], ...pooled };
    // The flag goes straight into the container: never into a log, status or Redis.
    if (this.flags === undefined) throw permanent('FlagKeyInvalid', 'The Challenge has a flag, but this worker has no flag store (CTFLEET_FLAG_KEY_SECRET).');
    const { namespace, name, uid } = instance.metadata;
    const value = await flagOf(spec.flag, { namespace, name, uid, team: spec.team, challenge: spec.challenge }, this.flags);
    return { ...deliverFlag(spec, spec.flag, value), challengeGeneration, ...pooled };
  }

  /** One pass for one instance uid. */
  private async reconcile(uid: string): Promise<WorkResult> {
    const demands = this.demands.get(uid) ?? [];
    this.demands.delete(uid);
    const target = this.targets.get(uid) ?? demands[0]?.job.target;
    if (target === undefined) return { requeueAfterMs: null };
    const exit = this.exits.get(uid);
    this.exits.delete(uid);
    const jobIds = demands.map((demand) => demand.context.id).join(',');
    const instanceLog = this.logger.child({ instance: `${target.namespace}/${target.name}`, uid });
    const log = jobIds === '' ? instanceLog : instanceLog.child({ job: jobIds });
    try {
      // A delete job needs nothing from the API server (the instance is going, and
      // the controller learns the outcome from the job): teardown spares it a read.
      const deleting = demands.some((demand) => demand.job.action === 'delete');
      const timeline: StartTimeline = { pass: this.clock.now() };
      const [found, containers] = await Promise.all([
        deleting || target.name === '' ? undefined : this.api.get(target.namespace, target.name),
        this.ops.observe(uid, demands.length > 0 ? containerName(target.namespace, target.name) : undefined, exit?.died === true),
      ]);
      const instance = found?.metadata.uid === uid ? found : undefined;
      const now = this.clock.now();
      timeline.read = now;
      const plan = planNode({
        node: this.settings.node,
        uid,
        instance,
        containers,
        jobs: demands.map((demand) => demand.job),
        exit,
        restart: { dueAt: this.due.get(uid), next: this.restarts.peek(restartKey(uid, instance), now), limit: this.settings.restart.limit, windowMs: this.settings.restart.windowMs },
        engineDisrupted: this.events.isDisrupted(),
        now,
      });
      const run = await this.carryOut(plan, { uid, target, instance, demands, log, timeline });
      if (plan.restart.count) this.restarts.record(restartKey(uid, instance), now);
      if (plan.restart.dueAt === undefined) this.due.delete(uid);
      else this.due.set(uid, plan.restart.dueAt);
      this.settle(plan.verdicts, demands, run, instanceLog);
      // Nothing of it left here, and nothing new arrived during the pass: forget it.
      if (instance === undefined && containers.length === 0 && !this.demands.has(uid) && !this.exits.has(uid)) this.targets.delete(uid);
      return { requeueAfterMs: run === 'exited-again' ? 0 : plan.requeueAfterMs };
    } catch (error) {
      for (const demand of demands) demand.reject(error);
      // An exit not acted on still counts next pass.
      if (exit !== undefined && !this.exits.has(uid)) this.exits.set(uid, exit);
      throw error;
    }
  }

  /** Carries out a plan's actions in order; says what its Run came to, if it had one. */
  private async carryOut(
    plan: NodePlan,
    pass: { uid: string; target: Target; instance: ChallengeInstance | undefined; demands: Demand[]; log: Logger; timeline: StartTimeline },
  ): Promise<RunEnd | undefined> {
    const { uid, instance, demands, log, timeline } = pass;
    const where = `ChallengeInstance ${pass.target.namespace}/${pass.target.name}`;
    const jobTarget: JobTarget = { ...pass.target, uid, generation: instance?.metadata.generation ?? demands[0]?.job.target.generation ?? 0 };
    const progress = (percent: number, step: string): void => {
      const stage = TIMELINE_STEPS[step];
      if (stage !== undefined) timeline[stage] = this.clock.now();
      for (const demand of demands) if (demand.job.action === 'start') demand.context.progress(percent, step);
    };
    let run: Awaited<ReturnType<ContainerOperations['run']>> | undefined;
    // The spec the container is made from: the instance's own, or its Challenge's.
    let made: Made | undefined;
    let end: RunEnd | undefined;
    for (const action of plan.actions) {
      switch (action.type) {
        case 'Remove':
          this.ownDoing.set(action.container.id, this.clock.now() + OWN_DOING_MS);
          await this.ops.remove(action.container);
          if (action.reason === 'Requested') {
            log.info({ container: action.container.id }, `Removed container for ${where}`);
          } else {
            this.metrics?.driftRepairs.inc({ kind: 'remove' });
            log.info({ container: action.container.id, reason: action.reason }, `Removed orphan container ${action.container.name} (${action.reason})`);
          }
          break;
        case 'Stop':
          this.ownDoing.set(action.container.id, this.clock.now() + OWN_DOING_MS);
          await this.ops.stop(action.container);
          if (action.repair) this.metrics?.driftRepairs.inc({ kind: 'stop' });
          log.info({ container: action.container.id }, `Stopped container for ${where}: its instance asks to be stopped`);
          break;
        case 'Run': {
          if (instance === undefined) break;
          if (action.cause === 'restart') this.metrics?.driftRepairs.inc({ kind: 'revive' });
          try {
            made = await this.effectiveSpec(instance, action.spec);
            run = await this.claimFromPool(made, action, instance, progress);
            run ??= await this.ops.run(
              {
                target: { ...jobTarget, generation: action.generation },
                spec: made.spec,
                specHash: specHash(action.spec),
                challengeGeneration: made.challengeGeneration,
                files: made.files,
                existing: action.existing,
                preferredPorts: action.preferredPorts,
                renewGeneration: action.cause === 'job',
              },
              progress,
              log,
            );
            timeline.ready = this.clock.now();
          } catch (thrown) {
            if (!(thrown instanceof CtfleetError) || !isPermanentReason(thrown.code)) throw thrown;
            const error = attributeToChallenge(thrown, instance);
            if (action.cause === 'restart' && (error.code === 'ContainerExited' || error.code === 'OOMKilled')) {
              log.info({ err: error }, `The restarted container of ${where} exited again before it was ready`);
              this.exits.set(uid, { containerId: '', died: true, oomKilled: error.code === 'OOMKilled' });
              return 'exited-again';
            }
            await this.reporter.failed(instance, action.generation, error.code, error.message).catch((reportError: unknown) => {
              log.warn({ err: reportError }, 'Reporting a failure to the resource failed');
            });
            throw error;
          }
          break;
        }
        case 'ReportReady': {
          if (instance === undefined || run === undefined) break;
          const endpoints = endpointsOf(run.container.hostPorts, made?.spec ?? instance.spec, this.settings.advertiseAddress);
          if (!(await this.reporter.ready(instance, instance.metadata.generation, run.container, endpoints))) {
            // Deleted while it started: nothing will ask for this container again.
            this.ownDoing.set(run.container.id, this.clock.now() + OWN_DOING_MS);
            await this.ops.remove(run.container);
            return 'gone';
          }
          timeline.reported = this.clock.now();
          progress(100, 'ready');
          end = { outcome: run.outcome, containerId: run.container.id, endpoints, timeline };
          const restarted = plan.actions.some((step) => step.type === 'Run' && step.cause === 'restart');
          const did = restarted ? `Restarted the container of ${where}` : run.outcome === 'claimed' ? `Claimed pool container ${run.container.id.slice(0, 12)} for ${where}` : `Started container for ${where}`;
          log.info({ container: run.container.id, outcome: run.outcome }, did);
          break;
        }
        case 'ReportStopped':
          await this.reporter.stopped(instance, jobTarget, action.containerId);
          break;
        case 'ReportRemoved':
          await this.reporter.removed(action.expired ? instance : undefined, jobTarget);
          break;
        case 'ReportRestarting':
          if (instance === undefined) break;
          this.metrics?.containerRestarts.inc({ decision: 'restart' });
          log.info({ container: instance.status?.containerId }, `Container of ${where} exited or went away behind ctfleet's back: ${action.message}`);
          await this.reporter.restarting(instance, action.message);
          break;
        case 'ReportCrashLoop':
          if (instance === undefined) break;
          this.metrics?.containerRestarts.inc({ decision: 'crashloop' });
          await this.reporter.crashLoop(instance, action.message);
          log.warn(`${where} is in CrashLoop`);
          break;
        case 'RecordHealthy':
          if (instance !== undefined) await this.reporter.healthy(instance, action.container);
          break;
      }
    }
    return end;
  }

  /**
   * A fresh start of a pooled Challenge's instance takes an idle pool container
   * instead, when this node has one of the Challenge's generation; undefined:
   * none (or not pooled), start one as usual.
   */
  private async claimFromPool(made: Made, action: Extract<NodePlan['actions'][number], { type: 'Run' }>, instance: ChallengeInstance, progress: (percent: number, step: string) => void): Promise<{ outcome: 'claimed'; container: ContainerInfo } | undefined> {
    if (this.pool === undefined || made.pooled === undefined || made.challengeGeneration === undefined || action.existing !== undefined || action.cause !== 'job') return undefined;
    progress(40, 'claiming a pool container');
    const { namespace, name, uid } = instance.metadata;
    const record = { uid, namespace, name, team: made.spec.team, generation: action.generation, specHash: specHash(action.spec), claimedAt: this.clock.now() };
    const container = await this.pool.claim({ key: made.pooled, generation: made.challengeGeneration, record, files: made.files });
    return container === undefined ? undefined : { outcome: 'claimed', container };
  }

  /** Resolves each job of the pass with its verdict (`log`: the instance's, without job ids). */
  private settle(verdicts: JobVerdict[], demands: Demand[], run: RunEnd | undefined, log: Logger): void {
    for (const demand of demands) {
      const verdict = verdicts.find((candidate) => candidate.job === demand.job);
      const outcome = outcomeOf(verdict, run);
      if (outcome.outcome === 'skipped') log.info({ job: demand.context.id, reason: outcome.reason }, 'Skipped a job that no longer matches its instance');
      demand.resolve(outcome);
    }
  }

  /**
   * Stops taking keys and fails the jobs still waiting (they go back to their
   * queue). Passes in flight get `graceMs` to finish; after that they are left to
   * the process's exit: every action is idempotent, so whoever takes the uid next
   * adopts or redoes what a cut pass left.
   */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all([this.events.close(), this.queue.close(), this.sweeping]), deadline]);
    clearTimeout(timer);
    for (const demands of this.demands.values()) {
      for (const demand of demands) demand.reject(transient('ShuttingDown', 'The worker stopped before the job ran; it goes back to its queue.'));
    }
    this.demands.clear();
  }
}

/**
 * The claim a renamed pool container stands for, rebuilt from the instance
 * whose status names it. Its spec hash is the instance's only when the status
 * says it ran this generation; otherwise it is left unknown, so the container
 * counts as outdated and is replaced.
 */
function claimOf(instance: ChallengeInstance, now: number): ClaimRecord {
  const { metadata, spec } = instance;
  const ready = findCondition(instance.status, 'Ready');
  const current = ready?.observedGeneration === metadata.generation;
  return { uid: metadata.uid, namespace: metadata.namespace, name: metadata.name, team: spec.team, generation: ready?.observedGeneration ?? metadata.generation, specHash: current ? specHash(spec) : 'unknown', claimedAt: now };
}

/** Restart counts are per generation: a spec change starts afresh. */
function restartKey(uid: string, instance: ChallengeInstance | undefined): string {
  return `${uid}/${instance?.metadata.generation ?? 0}`;
}

function outcomeOf(verdict: JobVerdict | undefined, run: RunEnd | undefined): JobOutcome {
  if (verdict === undefined) return { outcome: 'skipped', reason: SKIP_REASONS.notPlanned };
  switch (verdict.outcome) {
    case 'skipped':
      return { outcome: 'skipped', reason: verdict.reason };
    case 'stopped':
    case 'removed':
      return verdict.containerId === undefined ? { outcome: verdict.outcome, reason: ALREADY_GONE } : { outcome: verdict.outcome, containerId: verdict.containerId };
    case 'ran':
      if (run === undefined || typeof run === 'string') return { outcome: 'skipped', reason: SKIP_REASONS.instanceGone };
      return run;
  }
}
