import { QueueEvents, type Queue } from 'bullmq';
import { QueueCache } from './queue-cache.ts';
import type { Redis } from 'ioredis';
import { SHARED_QUEUE, type InstanceJob } from '../../domain/jobs.ts';
import type { JobQueue, QueuedJob } from '../../domain/ports.ts';
import { transient } from '../../domain/errors.ts';

/** Transient failures retry after backoffMs, 2×, 4×… each drawn at random from its upper half. */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, backoffMs: 1_000 };

/** Half of each backoff is random, so jobs that failed together do not retry together. */
export const BACKOFF_JITTER = 0.5;

/** How long finished jobs stay readable (Celery's result expiry): 1 hour, at most 10,000 per queue. */
export const RESULT_RETENTION = { age: 3_600, count: 10_000 } as const;

/**
 * {@link JobQueue} over BullMQ. One Queue (and one QueueEvents listener) per queue
 * name in use, created on first use.
 *
 * Assumptions: `producer` fails fast (command connection); `blocking` is a
 * connection with `maxRetriesPerRequest: null`, duplicated for each listener.
 */
export class BullJobQueue implements JobQueue {
  private readonly queues: QueueCache;
  private readonly events = new Map<string, { listener: QueueEvents; connection: Redis }>();
  private readonly listeners: ((jobId: string) => void)[] = [];

  private readonly producer: Redis;
  private readonly blocking: Redis;
  private readonly prefix: string;
  private readonly retry: RetryPolicy;

  constructor(producer: Redis, blocking: Redis, prefix: string, retry: RetryPolicy = DEFAULT_RETRY) {
    this.producer = producer;
    this.blocking = blocking;
    this.prefix = prefix;
    this.retry = retry;
    this.queues = new QueueCache(producer, prefix);
  }

  private queue(name: string): Queue {
    const { queue, opened } = this.queues.open(name);
    if (opened) this.listen(name);
    return queue;
  }

  private listen(name: string): void {
    if (this.events.has(name)) return;
    const connection = this.blocking.duplicate();
    const listener = new QueueEvents(name, { connection, prefix: this.prefix });
    listener.on('error', () => undefined);
    const notify = ({ jobId }: { jobId: string }): void => {
      for (const callback of this.listeners) callback(jobId);
    };
    // Not 'active': waking the controller only to write phase Starting would cost
    // a status write and an event per instance for a state that lasts a second.
    // A pass that happens while the job runs still shows Starting.
    listener.on('completed', notify);
    listener.on('failed', notify);
    this.events.set(name, { listener, connection });
  }

  async enqueue(queueName: string, jobId: string, job: InstanceJob, priority: number): Promise<void> {
    try {
      await this.queue(queueName).add(job.action, job, {
        jobId,
        priority,
        // Transient failures retry with backoff and jitter; the worker marks
        // permanent ones unrecoverable so they fail at once.
        attempts: this.retry.attempts,
        backoff: { type: 'exponential', delay: this.retry.backoffMs, jitter: BACKOFF_JITTER },
        removeOnComplete: RESULT_RETENTION,
        removeOnFail: RESULT_RETENTION,
      });
    } catch (error) {
      throw transient('QueueUnavailable', `enqueue ${job.action} job ${jobId}: ${error instanceof Error ? error.message : String(error)}`, error);
    }
  }

  async inspect(queueName: string, jobId: string): Promise<QueuedJob> {
    try {
      // State first, then the job: BullMQ writes a failure's reason in the same
      // step as the move to failed, so a job read after its state always carries
      // it. The other order could read the job just before it failed and the
      // state just after: failed, with no reason.
      const queue = this.queue(queueName);
      const state = await queue.getJobState(jobId);
      if (state === 'unknown') return { state: 'missing' };
      const job = await queue.getJob(jobId);
      if (job === undefined) return { state: 'missing' };
      const result: QueuedJob = { state, attempts: job.attemptsMade };
      if (job.timestamp > 0) result.queuedAt = job.timestamp;
      if (job.failedReason) result.failedReason = job.failedReason;
      return result;
    } catch (error) {
      throw transient('QueueUnavailable', `inspect job ${jobId}: ${error instanceof Error ? error.message : String(error)}`, error);
    }
  }

  /** Job counts by state of the shared queue and every queue used so far. */
  async counts(): Promise<{ queue: string; state: string; count: number }[]> {
    this.queue(SHARED_QUEUE);
    const rows = await Promise.all(this.queues.entries().map(async ([name, queue]) => {
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
      return Object.entries(counts).map(([state, count]) => ({ queue: name, state, count }));
    }));
    return rows.flat();
  }

  onJobChange(listener: (jobId: string) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map(async ({ listener, connection }) => {
      await listener.close();
      connection.disconnect();
    }));
    await this.queues.close();
    this.events.clear();
  }
}
