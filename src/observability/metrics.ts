import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds buckets for work that takes milliseconds to a minute. */
const OPERATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds buckets for creation-to-ready: a second to several minutes. */
const READY_BUCKETS = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300];

/**
 * Every Prometheus series ctfleet publishes, on a registry of its own (never the
 * global one, so nothing else in the process leaks into /metrics).
 *
 * Labels are bounded sets only: results, actions, outcomes, phases, operations,
 * queue names (`start`, `node.<name>`) and states; the pool series add the
 * pooled Challenge (`namespace/name`, a set the organisers declare and bound).
 * Never an instance or team name, and never a spec value: flags and env values
 * must not leak.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({ name: 'ctfleet_reconcile_total', help: 'Reconcile passes by result (success, error).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly reconcileDuration = new Histogram({ name: 'ctfleet_reconcile_duration_seconds', help: 'Duration of reconcile passes by result.', labelNames: ['result'] as const, buckets: OPERATION_BUCKETS, registers: [this.registry] });
  readonly workQueueDepth = new Gauge({ name: 'ctfleet_workqueue_depth', help: 'Instance keys waiting in the controller work queue.', registers: [this.registry] });
  readonly jobs = new Counter({ name: 'ctfleet_jobs_total', help: 'Jobs handled by workers, by action and outcome (started, adopted, stopped, removed, skipped, failed).', labelNames: ['action', 'outcome'] as const, registers: [this.registry] });
  readonly jobDuration = new Histogram({ name: 'ctfleet_job_duration_seconds', help: 'Duration of job handling by action and outcome.', labelNames: ['action', 'outcome'] as const, buckets: OPERATION_BUCKETS, registers: [this.registry] });
  readonly queueJobs = new Gauge({ name: 'ctfleet_queue_jobs', help: 'Jobs in each queue by state, read from Redis at scrape time.', labelNames: ['queue', 'state'] as const, registers: [this.registry] });
  readonly instances = new Gauge({ name: 'ctfleet_instances', help: 'ChallengeInstances by phase, from the controller cache.', labelNames: ['phase'] as const, registers: [this.registry] });
  readonly timeToReady = new Histogram({ name: 'ctfleet_instance_time_to_ready_seconds', help: 'Time from a ChallengeInstance\'s creation to its first Running phase.', buckets: READY_BUCKETS, registers: [this.registry] });
  readonly dockerDuration = new Histogram({ name: 'ctfleet_docker_operation_duration_seconds', help: 'Docker Engine API calls by operation and result.', labelNames: ['operation', 'result'] as const, buckets: OPERATION_BUCKETS, registers: [this.registry] });
  readonly heartbeats = new Counter({ name: 'ctfleet_worker_heartbeats_total', help: 'Heartbeats this worker wrote to Redis, by result.', labelNames: ['result'] as const, registers: [this.registry] });
  readonly workerCapacity = new Gauge({ name: 'ctfleet_worker_capacity', help: 'Jobs this worker takes at once from each queue.', registers: [this.registry] });
  readonly workerRunning = new Gauge({ name: 'ctfleet_worker_running_containers', help: 'ctfleet containers running on this worker\'s node, as of the last heartbeat.', registers: [this.registry] });
  readonly nodes = new Gauge({ name: 'ctfleet_nodes', help: 'Worker nodes seen by the controller, by state (live, lost).', labelNames: ['state'] as const, registers: [this.registry] });
  readonly containerRestarts = new Counter({ name: 'ctfleet_container_restarts_total', help: 'Containers that exited behind ctfleet\'s back, by decision (restart, crashloop).', labelNames: ['decision'] as const, registers: [this.registry] });
  readonly isolationRepairs = new Counter({ name: 'ctfleet_isolation_repairs_total', help: 'Instance networks and firewall rules the worker created or put back, by kind (network, rules, jump).', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly sweepDuration = new Histogram({ name: 'ctfleet_sweep_duration_seconds', help: 'Duration of the worker\'s sweeps of its node (firewall and networks repaired, containers listed, instances listed, drift planned), by result.', labelNames: ['result'] as const, buckets: OPERATION_BUCKETS, registers: [this.registry] });
  readonly driftRepairs = new Counter({ name: 'ctfleet_drift_repairs_total', help: 'Repairs the worker made on its own, found by a sweep or a Docker event, by kind (remove, stop, revive).', labelNames: ['kind'] as const, registers: [this.registry] });

  readonly eventsSkipped = new Counter({ name: 'ctfleet_events_skipped_total', help: 'Normal Events of instances the controller left out during bursts (more than 30 at once, then 10 a second); Warnings are never left out.', registers: [this.registry] });
  readonly poolTarget = new Gauge({ name: 'ctfleet_pool_target', help: 'Idle containers this node keeps for each pooled Challenge (its share of spec.pool).', labelNames: ['challenge'] as const, registers: [this.registry] });
  readonly poolIdle = new Gauge({ name: 'ctfleet_pool_idle', help: 'Idle, ready pool containers on this node, by Challenge.', labelNames: ['challenge'] as const, registers: [this.registry] });
  readonly poolClaims = new Counter({ name: 'ctfleet_pool_claims_total', help: 'Starts of pooled Challenges\' instances, by result (claimed: got a pool container; empty: none idle, started fresh).', labelNames: ['challenge', 'result'] as const, registers: [this.registry] });
  readonly poolClaimDuration = new Histogram({ name: 'ctfleet_pool_claim_duration_seconds', help: 'Time to claim a pool container: record the claim, write the flag, rename, open its ports.', buckets: OPERATION_BUCKETS, registers: [this.registry] });
  readonly poolRefills = new Counter({ name: 'ctfleet_pool_refills_total', help: 'Pool containers made, by Challenge and result (created, failed); its rate is the refill rate.', labelNames: ['challenge', 'result'] as const, registers: [this.registry] });
  readonly poolRemovals = new Counter({ name: 'ctfleet_pool_removals_total', help: 'Idle pool containers removed, by Challenge and reason (Outdated, Aged, Surplus, Exited, ChallengeGone, NotPooled, AbandonedClaim).', labelNames: ['challenge', 'reason'] as const, registers: [this.registry] });

  private readonly collectors: (() => Promise<void> | void)[] = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ctfleet_' });
  }

  /** Runs before each scrape: for values read at scrape time (cache, queues). */
  onCollect(collector: () => Promise<void> | void): void {
    this.collectors.push(collector);
  }

  /** The text exposition, after running every collector (one failing does not spoil the rest). */
  async exposition(): Promise<string> {
    await Promise.all(this.collectors.map(async (collect) => {
      try {
        await collect();
      } catch {
        // A dependency is down: its series keep their last values until it returns.
      }
    }));
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Times `work` into `histogram` with `labels` plus result=success|error. */
  static async time<T>(histogram: Histogram<'operation' | 'result'>, operation: string, work: () => Promise<T>): Promise<T> {
    const end = histogram.startTimer({ operation });
    try {
      const value = await work();
      end({ result: 'success' });
      return value;
    } catch (error) {
      end({ result: 'error' });
      throw error;
    }
  }
}
