import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CtfleetError, retryClassOf } from '../../domain/errors.ts';
import type { JobContext, JobOutcome } from '../../worker/instance-worker.ts';
import type { Logger } from '../../observability/logger.ts';

export type JobHandler = (data: unknown, context: JobContext) => Promise<JobOutcome>;

/**
 * Consumes BullMQ queues with one handler. A failure's message starts with its
 * stable code (`ImagePullFailed: …`) so other processes can classify it without
 * `instanceof`; permanent failures are unrecoverable (no retry), everything else
 * retries with the job's backoff.
 */
export class BullWorkerPool {
  private readonly workers: Worker[] = [];
  private readonly connections: Redis[] = [];
  private readonly blocking: Redis;
  private readonly prefix: string;
  private readonly logger: Logger;

  constructor(blocking: Redis, prefix: string, logger: Logger) {
    this.blocking = blocking;
    this.prefix = prefix;
    this.logger = logger;
  }

  consume(queue: string, concurrency: number, handler: JobHandler): void {
    const connection = this.blocking.duplicate();
    const worker = new Worker(
      queue,
      async (job: Job) => {
        const context: JobContext = {
          id: job.id ?? '',
          progress: async (percent, step) => {
            await job.updateProgress({ percent, step });
          },
        };
        try {
          return await handler(job.data, context);
        } catch (error) {
          throw asJobError(error);
        }
      },
      { connection, prefix: this.prefix, concurrency, autorun: true },
    );
    worker.on('error', (error) => {
      this.logger.warn({ err: error, queue }, 'Queue connection failed; BullMQ retries');
    });
    worker.on('failed', (job, error) => {
      this.logger.warn({ job: job?.id, queue, attempts: job?.attemptsMade }, `Job failed: ${error.message}`);
    });
    this.workers.push(worker);
    this.connections.push(connection);
  }

  /** Waits for BullMQ to connect every worker. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.waitUntilReady()));
  }

  /** Stops taking jobs and waits for the ones in flight. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
    for (const connection of this.connections) connection.disconnect();
  }
}

function asJobError(error: unknown): Error {
  const code = error instanceof CtfleetError ? error.code : 'WorkerError';
  const message = `${code}: ${error instanceof CtfleetError ? error.message : error instanceof Error ? error.message : String(error)}`;
  if (retryClassOf(error) === 'permanent') return new UnrecoverableError(message);
  return new Error(message, { cause: error });
}
