import type { InstanceApi, InstanceCache, JobQueue } from '../domain/ports.ts';
import { describeError } from '../health/dependency-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { NodeMonitor } from './node-monitor.ts';
import { NO_LOST_NODES, type LifetimePolicy } from './plan.ts';
import { Reconciler } from './reconciler.ts';
import { WorkQueue } from './work-queue.ts';

export interface ControllerOptions {
  concurrency: number;
  lifetime: LifetimePolicy;
}

/**
 * The ChallengeInstance controller: informer events and job changes only enqueue
 * keys; a work queue feeds them to the reconciler, level-triggered.
 */
export class Controller {
  private readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly cache: InstanceCache;
  private readonly jobs: JobQueue;
  private readonly logger: Logger;
  private readonly nodes: NodeMonitor | undefined;

  constructor(deps: { cache: InstanceCache; api: InstanceApi; jobs: JobQueue; logger: Logger; nodes?: NodeMonitor; now?: () => Date }, options: ControllerOptions) {
    this.cache = deps.cache;
    this.jobs = deps.jobs;
    this.logger = deps.logger;
    this.nodes = deps.nodes;
    this.queue = new WorkQueue({ concurrency: options.concurrency, baseBackoffMs: 50, maxBackoffMs: 60_000 });
    this.reconciler = new Reconciler({ ...deps, nodes: deps.nodes ?? NO_LOST_NODES, lifetime: options.lifetime, now: deps.now ?? (() => new Date()) });
  }

  async start(): Promise<void> {
    this.jobs.onJobChange((jobId) => {
      const key = this.cache.keyForUid(jobId.split('.')[0] ?? '');
      if (key !== undefined) this.queue.add(key);
    });
    await this.cache.start((key) => {
      this.queue.add(key);
    });
    this.queue.start(
      (key) => this.reconciler.reconcile(key),
      (key, error) => {
        this.logger.warn({ instance: key, code: (error as { code?: unknown }).code }, `Reconciling ChallengeInstance ${key} failed: ${describeError(error)}`);
      },
    );
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

  isReady(): boolean {
    return this.cache.hasSynced();
  }

  async close(): Promise<void> {
    this.nodes?.close();
    await this.queue.close();
    await this.cache.close();
  }
}
