import type { Job, Queue } from 'bullmq';
import { QueueCache } from './queue-cache.ts';
import type { Redis } from 'ioredis';
import { transient } from '../../domain/errors.ts';

/** A job as the CLI shows it. */
export interface JobSummary {
  id: string;
  queue: string;
  action: string;
  /** `namespace/name` of the instance the job is for. */
  instance: string;
  state: string;
  attempts: number;
  progress: string;
  failedReason?: string;
  createdAt: string;
}

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
export type ListedState = 'active' | 'failed' | 'waiting';

/**
 * Inspection and maintenance of every ctfleet queue under one prefix: the
 * counterpart of `celery inspect` and `celery purge`. Queues are found from
 * Redis (each BullMQ queue keeps a `<prefix>:<name>:meta` hash), so node queues of
 * workers that left are listed too.
 */
export class QueueAdmin {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly queues: QueueCache;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
    this.queues = new QueueCache(redis, prefix);
  }

  async queueNames(): Promise<string[]> {
    const names = new Set<string>();
    let cursor = '0';
    const escaped = this.prefix.replace(/[?*[\]\\]/g, (char) => `\\${char}`);
    try {
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${escaped}:*:meta`, 'COUNT', 500);
        cursor = next;
        for (const key of keys) names.add(key.slice(this.prefix.length + 1, -':meta'.length));
      } while (cursor !== '0');
    } catch (error) {
      throw transient('QueueUnavailable', `list queues: ${error instanceof Error ? error.message : String(error)}`, error);
    }
    return [...names].sort();
  }

  /** The BullMQ queue of that name (opened once, closed by `close`). */
  queue(name: string): Queue {
    return this.queues.open(name).queue;
  }

  async stats(): Promise<{ queue: string; counts: Record<string, number> }[]> {
    const names = await this.queueNames();
    return Promise.all(names.map(async (name) => ({ queue: name, counts: await this.queue(name).getJobCounts(...JOB_STATES) })));
  }

  async list(state: ListedState, limit: number): Promise<JobSummary[]> {
    const names = await this.queueNames();
    const types = state === 'waiting' ? ['waiting', 'prioritized', 'delayed'] as const : [state];
    const perQueue = await Promise.all(names.map(async (name) => {
      const jobs = await this.queue(name).getJobs([...types], 0, limit - 1, true);
      return Promise.all(jobs.map((job) => summarise(name, job)));
    }));
    return perQueue.flat().sort((a, b) => a.createdAt.localeCompare(b.createdAt)).slice(0, limit);
  }

  /** Retries failed jobs (all, or those with the given ids); returns the ids retried. */
  async retryFailed(ids: readonly string[]): Promise<string[]> {
    const retried: string[] = [];
    for (const name of await this.queueNames()) {
      const failed = await this.queue(name).getJobs(['failed'], 0, -1, true);
      for (const job of failed) {
        if (ids.length > 0 && !ids.includes(job.id ?? '')) continue;
        await job.retry('failed');
        retried.push(job.id ?? '');
      }
    }
    return retried;
  }

  /** Removes every job waiting, prioritized or delayed; running, finished and failed jobs stay. Returns how many. */
  async purge(): Promise<number> {
    let removed = 0;
    for (const name of await this.queueNames()) {
      const queue = this.queue(name);
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
      await queue.drain(true);
      removed += (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
    }
    return removed;
  }

  /** The state of one job, `missing` when its queue no longer has it. */
  async jobState(queue: string, id: string): Promise<string> {
    const job = await this.queue(queue).getJob(id);
    return job === undefined ? 'missing' : job.getState();
  }

  async close(): Promise<void> {
    await this.queues.close();
  }
}

async function summarise(queue: string, job: Job): Promise<JobSummary> {
  const data = job.data as { action?: string; target?: { namespace?: string; name?: string } } | undefined;
  const progress = job.progress as { percent?: number; step?: string } | number | undefined;
  const summary: JobSummary = {
    id: job.id ?? '',
    queue,
    action: data?.action ?? job.name,
    instance: `${data?.target?.namespace ?? '?'}/${data?.target?.name ?? '?'}`,
    state: await job.getState(),
    attempts: job.attemptsMade,
    progress: typeof progress === 'object' ? `${String(progress.percent ?? 0)}% ${progress.step ?? ''}`.trim() : `${String(progress ?? 0)}%`,
    createdAt: new Date(job.timestamp).toISOString(),
  };
  if (job.failedReason) summary.failedReason = job.failedReason;
  return summary;
}
