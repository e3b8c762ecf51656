import type { InstanceApi, InstanceCache, JobQueue } from '../domain/ports.ts';
import { describeError } from '../health/dependency-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { LifetimePolicy } from './plan.ts';
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

  constructor(deps: { cache: InstanceCache; api: InstanceApi; jobs: JobQueue; logger: Logger; now?: () => Date }, options: ControllerOptions) {
    this.cache = deps.cache;
    this.jobs = deps.jobs;
    this.logger = deps.logger;
    this.queue = new WorkQueue({ concurrency: options.concurrency, baseBackoffMs: 50, maxBackoffMs: 60_000 });
    this.reconciler = new Reconciler({ ...deps, lifetime: options.lifetime, now: deps.now ?? (() => new Date()) });
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
    this.logger.info({ instances: this.cache.keys().length }, 'Controller started');
  }

  isReady(): boolean {
    return this.cache.hasSynced();
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.cache.close();
  }
}
